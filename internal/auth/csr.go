package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// NewClientCSR generates a private key and a certificate signing request
// for it, naming commonName in groups orgs. The key never leaves the
// caller: a joining node sends only the request. Both are PEM-encoded.
func NewClientCSR(commonName string, orgs []string) (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName, Organization: slices.Clone(orgs)},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: create certificate request: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), keyPEM, nil
}

// SignClientCSR issues a client certificate (valid for a year, like
// IssueClientCert) for the public key of csrPEM. The identity is the
// caller's to decide: commonName and orgs replace whatever the request
// asked for. The request's signature must verify, proving its sender holds
// the key.
func (ca *CA) SignClientCSR(csrPEM []byte, commonName string, orgs []string) ([]byte, error) {
	if commonName == "" {
		return nil, errors.New("auth: client certificate needs a common name")
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("auth: no PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("auth: certificate request signature: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: slices.Clone(orgs)},
		NotBefore:    now.Add(-clockSkewSlack),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("auth: sign certificate for %q: %w", commonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ClientCredential is a client certificate and key kept in a directory.
type ClientCredential struct {
	CertFile, KeyFile string
	// Cert is the parsed certificate.
	Cert *x509.Certificate
}

// WriteClientCredential stores certPEM and keyPEM in dir (created 0700) as
// name.crt and name.key (0600), after checking that they form a pair.
func WriteClientCredential(dir, name string, certPEM, keyPEM []byte) (*ClientCredential, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("auth: client certificate and key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create credential dir: %w", err)
	}
	c := &ClientCredential{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"), Cert: pair.Leaf}
	if err := writeFileAtomic(c.KeyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("auth: write client key: %w", err)
	}
	if err := writeFileAtomic(c.CertFile, certPEM, 0o600); err != nil {
		return nil, fmt.Errorf("auth: write client certificate: %w", err)
	}
	return c, nil
}

// LoadClientCredential reads dir/name.crt and dir/name.key. It returns
// ok=false (and no error) when they are missing; a pair that does not
// match is an error.
func LoadClientCredential(dir, name string) (c *ClientCredential, ok bool, err error) {
	c = &ClientCredential{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	if !fileExists(c.CertFile) || !fileExists(c.KeyFile) {
		return nil, false, nil
	}
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, false, fmt.Errorf("auth: load client credential: %w", err)
	}
	c.Cert = pair.Leaf
	return c, true, nil
}

// NeedsRenewal reports whether cert, at now, has less than a third of its
// lifetime left (or is not yet or no longer valid).
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return true
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) < life/3
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
