package auth

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSignClientCSR(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The request asks for the admin's identity; the signer decides.
	csrPEM, keyPEM, err := NewClientCSR("admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignClientCSR(csrPEM, "system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	cred, err := WriteClientCredential(dir, "node", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Cert.Subject.CommonName != "system:node:n1" || !slices.Equal(cred.Cert.Subject.Organization, []string{"system:nodes"}) {
		t.Fatalf("subject %v, want system:node:n1 in system:nodes", cred.Cert.Subject)
	}
	if _, err := cred.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not verify as a client of the CA: %v", err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, cred.KeyFile: 0o600, cred.CertFile: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	loaded, ok, err := LoadClientCredential(dir, "node")
	if err != nil || !ok || !loaded.Cert.Equal(cred.Cert) {
		t.Fatalf("LoadClientCredential = %v, %v, %v; want the written certificate", loaded, ok, err)
	}
	if _, ok, err := LoadClientCredential(t.TempDir(), "node"); ok || err != nil {
		t.Fatalf("missing credential: ok=%v err=%v, want false, nil", ok, err)
	}
	// A key that is not the certificate's is refused.
	_, otherKey, _ := NewClientCSR("x", nil)
	if _, err := WriteClientCredential(dir, "bad", certPEM, otherKey); err == nil {
		t.Fatal("WriteClientCredential accepted a mismatched key")
	}
}

func TestSignClientCSRRejects(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _, err := NewClientCSR("n", nil)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	tampered := slices.Clone(block.Bytes)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	for name, in := range map[string][]byte{
		"not PEM":        []byte("hello"),
		"wrong type":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}),
		"bad signature":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}),
		"garbage in PEM": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := ca.SignClientCSR(in, "system:node:n", nil); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := ca.SignClientCSR(csrPEM, "", nil); err == nil {
		t.Error("signed without a common name")
	}
}

func TestNeedsRenewal(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(300 * time.Hour)}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{-time.Hour, true}, {0, false}, {199 * time.Hour, false}, {201 * time.Hour, true}, {300 * time.Hour, true}, {400 * time.Hour, true},
	} {
		if got := NeedsRenewal(cert, start.Add(tc.at)); got != tc.want {
			t.Errorf("NeedsRenewal at +%v = %v, want %v", tc.at, got, tc.want)
		}
	}
}
