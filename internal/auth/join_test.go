package auth

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseJoinToken(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in      string
		want    JoinToken
		wantErr string
	}{
		{in: "K10" + hash + "::s3cret", want: JoinToken{CAHash: hash, Secret: "s3cret"}},
		{in: "  K10" + strings.ToUpper(hash) + "::a::b\n", want: JoinToken{CAHash: hash, Secret: "a::b"}},
		{in: hash + "::s3cret", wantErr: "want K10"},
		{in: "K10" + hash, wantErr: "missing"},
		{in: "K10" + hash + "::", wantErr: "missing"},
		{in: "K10abc::s3cret", wantErr: "not a hex SHA-256"},
		{in: "K10" + strings.Repeat("zz", 32) + "::s", wantErr: "not a hex SHA-256"},
	} {
		got, err := ParseJoinToken(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseJoinToken(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseJoinToken(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestJoinTokenPinsCAAndChecksSecret(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewJoinToken(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseJoinToken(tok.String())
	if err != nil || parsed != tok {
		t.Fatalf("round trip: %+v, %v; want %+v", parsed, err, tok)
	}
	if err := tok.VerifyCA(ca.CertPEM()); err != nil {
		t.Errorf("VerifyCA(own CA) = %v", err)
	}
	if err := tok.VerifyCA(other.CertPEM()); err == nil {
		t.Error("VerifyCA(another CA) = nil, want an error")
	}
	if !tok.CheckSecret(tok.Secret) || tok.CheckSecret(tok.Secret+"x") || tok.CheckSecret("") {
		t.Error("CheckSecret accepts the wrong secret or refuses the right one")
	}
	if (JoinToken{}).CheckSecret("") {
		t.Error("an empty token accepts an empty secret")
	}
}

func TestEnsureJoinToken(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "join-token")
	tok, err := EnsureJoinToken(path, ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v; want mode 600", info, err)
	}
	again, err := EnsureJoinToken(path, ca.CertPEM())
	if err != nil || again != tok {
		t.Fatalf("second EnsureJoinToken = %+v, %v; want the stored %+v", again, err, tok)
	}
	other, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureJoinToken(path, other.CertPEM()); err == nil {
		t.Error("a token pinning another CA was accepted")
	}
}

func TestInstallCA(t *testing.T) {
	src, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := src.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	got, err := InstallCA(dir, src.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(src.Cert) {
		t.Error("installed CA differs from the source")
	}
	loaded, err := EnsureCA(dir)
	if err != nil || !loaded.Cert.Equal(src.Cert) {
		t.Fatalf("EnsureCA after install: %v", err)
	}
	// The same CA again is fine; another one is refused.
	if _, err := InstallCA(dir, src.CertPEM(), keyPEM); err != nil {
		t.Errorf("reinstalling the same CA: %v", err)
	}
	other, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := other.KeyPEM()
	if _, err := InstallCA(dir, other.CertPEM(), otherKey); err == nil {
		t.Error("installing another cluster's CA over this one succeeded")
	}
	// A key that does not match the certificate is refused.
	if _, err := InstallCA(t.TempDir(), src.CertPEM(), otherKey); err == nil {
		t.Error("a CA with a mismatched key was installed")
	}
}

func TestEnsurePeerCertServesAndDials(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, _, err := ca.EnsurePeerCert(dir, []string{"10.0.0.7", "node-a.example"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCert(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			t.Errorf("peer certificate lacks extended key usage %v", u)
		}
	}
	for _, name := range []string{"10.0.0.7", "node-a.example", "127.0.0.1"} {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("peer certificate not valid for %s: %v", name, err)
		}
	}
	// The serving certificate in the same directory is separate and server-only.
	srvFile, _, err := ca.EnsureServingCert(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if srvFile == certFile {
		t.Fatal("serving and peer certificates share a file")
	}
	again, _, err := ca.EnsurePeerCert(dir, []string{"10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	data2, _ := os.ReadFile(again)
	if string(data2) != string(data) {
		t.Error("a covering peer certificate was reissued")
	}
}
