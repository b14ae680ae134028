package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names inside a PKI directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	PeerCertFile   = "peer.crt"
	PeerKeyFile    = "peer.key"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	leafValidity   = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour // a leaf closer than this to expiry is reissued
	clockSkewSlack = time.Hour           // NotBefore is backdated by this much
)

// CA is the cluster's certificate authority: it signs the API server's
// serving certificate and client certificates for node identities.
type CA struct {
	// Cert is the CA's self-signed certificate.
	Cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// EnsureCA loads the CA from dir (ca.crt, ca.key), generating it on first
// use. dir is created with mode 0700 and the key is written with mode 0600.
// A CA whose certificate and key do not match, or only one of whose files
// exists, is an error: it is never silently replaced.
func EnsureCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create pki dir: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("auth: load CA from %s: %w", dir, err)
		}
		return ca, nil
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return generateCA(certPath, keyPath)
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("auth: read CA certificate: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("auth: read CA key: %w", keyErr)
	default:
		return nil, fmt.Errorf("auth: incomplete CA in %s: need both %s and %s", dir, CACertFile, CAKeyFile)
	}
}

func generateCA(certPath, keyPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("drover-ca@%d", now.Unix())},
		NotBefore:             now.Add(-clockSkewSlack),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("auth: sign CA certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	// Key first: a certificate without its key would make the next start fail.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("auth: write CA key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("auth: write CA certificate: %w", err)
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("CA certificate and key do not match")
	}
	return &CA{Cert: cert, key: key, pem: certPEM}, nil
}

// CertPEM returns the CA certificate, PEM-encoded, for clients to trust.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.pem) }

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// EnsureServingCert makes sure dir holds a serving certificate (server.crt,
// server.key) signed by ca and valid for localhost, 127.0.0.1, ::1, this
// machine's hostname and every entry of hosts (DNS names or IP addresses).
// An existing certificate is reused when it covers all of them and is not
// close to expiry; otherwise a new one is issued, covering the old names too.
func (ca *CA) EnsureServingCert(dir string, hosts []string) (certFile, keyFile string, err error) {
	return ca.ensureLeaf(dir, ServerCertFile, ServerKeyFile, "drover-apiserver",
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, hosts)
}

// EnsurePeerCert is EnsureServingCert for an etcd member's peer
// certificate (peer.crt, peer.key): members both serve and dial with it, so
// it is valid for server and client authentication.
func (ca *CA) EnsurePeerCert(dir string, hosts []string) (certFile, keyFile string, err error) {
	return ca.ensureLeaf(dir, PeerCertFile, PeerKeyFile, "drover-etcd-peer",
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, hosts)
}

// ensureLeaf keeps dir/certName and dir/keyName a certificate signed by ca
// for the local names and hosts, with the given extended key usages.
func (ca *CA) ensureLeaf(dir, certName, keyName, commonName string, usages []x509.ExtKeyUsage, hosts []string) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("auth: create pki dir: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, certName), filepath.Join(dir, keyName)
	dnsNames, ips := servingNames(hosts)

	if old, ok := ca.loadLeaf(certFile, keyFile); ok {
		if covers(old, dnsNames, ips) && time.Until(old.NotAfter) > renewBefore && slices.Equal(old.ExtKeyUsage, usages) {
			return certFile, keyFile, nil
		}
		// Keep what the old certificate served, so clients using those names keep working.
		dnsNames, ips = mergeNames(dnsNames, ips, old.DNSNames, old.IPAddresses)
	}

	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: usages,
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	certPEM, keyPEM, err := ca.issue(tmpl)
	if err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("auth: write %s: %w", keyName, err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("auth: write %s: %w", certName, err)
	}
	return certFile, keyFile, nil
}

// IssueClientCert issues a client certificate, valid for one year, naming
// user commonName in groups orgs (as Kubernetes reads client certificates).
// It returns the PEM-encoded certificate and private key.
func (ca *CA) IssueClientCert(commonName string, orgs []string) (certPEM, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, errors.New("auth: client certificate needs a common name")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName, Organization: slices.Clone(orgs)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl)
}

// issue fills in the serial, validity and key of tmpl and signs it.
func (ca *CA) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkewSlack)
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// loadLeaf returns the certificate in certFile if it and keyFile form a
// pair signed by ca.
func (ca *CA) loadLeaf(certFile, keyFile string) (*x509.Certificate, bool) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, false
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, false
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, false
	}
	key, err := parseKey(keyPEM)
	if err != nil || !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, false
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, false
	}
	return cert, true
}

// servingNames splits the wanted names into DNS names and IPs, always
// including the local ones.
func servingNames(hosts []string) ([]string, []net.IP) {
	all := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		all = append(all, h)
	}
	all = append(all, hosts...)
	var dnsNames []string
	var ips []net.IP
	for _, h := range all {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	return mergeNames(nil, nil, dnsNames, ips)
}

// mergeNames returns the union of two name sets, without duplicates.
func mergeNames(dnsA []string, ipsA []net.IP, dnsB []string, ipsB []net.IP) ([]string, []net.IP) {
	var dns []string
	for _, n := range slices.Concat(dnsA, dnsB) {
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	var ips []net.IP
	for _, ip := range slices.Concat(ipsA, ipsB) {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	return dns, ips
}

// covers reports whether cert names every wanted DNS name and IP.
func covers(cert *x509.Certificate, dnsNames []string, ips []net.IP) bool {
	for _, n := range dnsNames {
		if !slices.Contains(cert.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("auth: random serial: %w", err)
	}
	return serial, nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM key found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported key type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// writeFileAtomic writes data to path via a temporary file in the same
// directory, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
