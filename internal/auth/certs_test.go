package auth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestEnsureCAGeneratesOnceAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatalf("EnsureCA: %v", err)
	}
	if !ca.Cert.IsCA {
		t.Error("CA certificate is not a CA")
	}
	if got := time.Until(ca.Cert.NotAfter); got < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want about 10 years", got)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, CAKeyFile), 0o600)

	again, err := EnsureCA(dir)
	if err != nil {
		t.Fatalf("EnsureCA (restart): %v", err)
	}
	if !bytes.Equal(ca.CertPEM(), again.CertPEM()) {
		t.Error("restart generated a new CA instead of reusing the stored one")
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Error("reloaded CA certificate differs")
	}
}

func TestEnsureCARefusesIncompleteOrMismatched(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsureCA(dir); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := EnsureCA(other); err != nil {
		t.Fatal(err)
	}
	// A key from another CA must not be accepted.
	key, err := os.ReadFile(filepath.Join(other, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(dir); err == nil {
		t.Error("EnsureCA accepted a key that does not match the certificate")
	}
	// A certificate without its key must not be replaced silently.
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(dir); err == nil {
		t.Error("EnsureCA accepted a CA certificate without its key")
	}
}

func TestServingCertCoversLocalNamesAndVerifies(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, []string{"10.1.2.3", "api.example.test"})
	if err != nil {
		t.Fatalf("EnsureServingCert: %v", err)
	}
	assertMode(t, keyFile, 0o600)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load serving pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	hostname, _ := os.Hostname()
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "10.1.2.3", "api.example.test", hostname} {
		if name == "" {
			continue
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:   name,
			Roots:     ca.Pool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("serving certificate does not verify for %q: %v", name, err)
		}
	}
	if err := leaf.VerifyHostname("not-listed.example.test"); err == nil {
		t.Error("serving certificate verifies for a name it was not issued for")
	}
}

func TestServingCertReusedUntilNamesChange(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, _, err := ca.EnsureServingCert(dir, []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	first := readFile(t, certFile)

	// Same names, and a subset of them: reused.
	for _, hosts := range [][]string{{"10.0.0.1"}, nil} {
		if _, _, err := ca.EnsureServingCert(dir, hosts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, readFile(t, certFile)) {
			t.Fatalf("serving certificate reissued for hosts %v although it covers them", hosts)
		}
	}

	// A new name: reissued, keeping the old names.
	if _, _, err := ca.EnsureServingCert(dir, []string{"node-b.example.test"}); err != nil {
		t.Fatal(err)
	}
	second := readFile(t, certFile)
	if bytes.Equal(first, second) {
		t.Fatal("serving certificate not reissued for a new name")
	}
	leaf, err := parseCert(second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(leaf.DNSNames, "node-b.example.test") {
		t.Errorf("reissued certificate lacks the new name: %v", leaf.DNSNames)
	}
	if !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP("10.0.0.1").Equal) {
		t.Errorf("reissued certificate dropped the old IP: %v", leaf.IPAddresses)
	}

	// A certificate from another CA (e.g. after the CA was replaced): reissued.
	otherCA, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := otherCA.EnsureServingCert(dir, nil); err != nil {
		t.Fatal(err)
	}
	leaf, err = parseCert(readFile(t, certFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(otherCA.Cert); err != nil {
		t.Errorf("certificate signed by a different CA was not replaced: %v", err)
	}
}

func TestIssueClientCert(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueClientCert("system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatalf("IssueClientCert: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("client pair does not load: %v", err)
	}
	leaf, err := parseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "system:node:n1" || !slices.Equal(leaf.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject = %v", leaf.Subject)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	if _, _, err := ca.IssueClientCert("", nil); err == nil {
		t.Error("IssueClientCert accepted an empty common name")
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
