package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// joinTokenPrefix starts a server join token, as in k3s: "K10" then the
// hex SHA-256 of the cluster CA certificate (PEM), "::", then the secret.
const joinTokenPrefix = "K10"

// JoinToken lets a new server join a cluster. CAHash pins the cluster CA
// (the joiner trusts only a server whose CA certificate hashes to it); the
// Secret proves to that server that the joiner may have the cluster's keys.
type JoinToken struct {
	CAHash string // hex SHA-256 of the CA certificate's PEM bytes
	Secret string
}

// CAHash returns the hex SHA-256 of a PEM-encoded CA certificate, as a join
// token carries it.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// NewJoinToken returns a join token for the CA caPEM with a fresh secret.
func NewJoinToken(caPEM []byte) (JoinToken, error) {
	secret, err := NewToken()
	if err != nil {
		return JoinToken{}, err
	}
	return JoinToken{CAHash: CAHash(caPEM), Secret: secret}, nil
}

// String formats the token as "K10<ca hash>::<secret>".
func (t JoinToken) String() string { return joinTokenPrefix + t.CAHash + "::" + t.Secret }

// ParseJoinToken parses "K10<ca hash>::<secret>".
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, joinTokenPrefix)
	if !ok {
		return JoinToken{}, fmt.Errorf("auth: join token: want %s<ca hash>::<secret>", joinTokenPrefix)
	}
	hash, secret, ok := strings.Cut(rest, "::")
	if !ok || secret == "" {
		return JoinToken{}, errors.New("auth: join token: missing \"::<secret>\"")
	}
	if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
		return JoinToken{}, errors.New("auth: join token: the CA hash is not a hex SHA-256")
	}
	return JoinToken{CAHash: strings.ToLower(hash), Secret: secret}, nil
}

// VerifyCA checks that caPEM is the CA the token pins.
func (t JoinToken) VerifyCA(caPEM []byte) error {
	if subtle.ConstantTimeCompare([]byte(CAHash(caPEM)), []byte(t.CAHash)) != 1 {
		return errors.New("auth: the server's CA certificate does not match the join token's hash")
	}
	return nil
}

// CheckSecret reports, in constant time, whether secret is the token's.
func (t JoinToken) CheckSecret(secret string) bool {
	return t.Secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(t.Secret)) == 1
}

// EnsureJoinToken returns the join token stored in path, generating one for
// caPEM on first use (written with mode 0600). A stored token that pins a
// different CA is an error.
func EnsureJoinToken(path string, caPEM []byte) (JoinToken, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok, err := ParseJoinToken(string(data))
		if err != nil {
			return JoinToken{}, fmt.Errorf("%w (in %s)", err, path)
		}
		if err := tok.VerifyCA(caPEM); err != nil {
			return JoinToken{}, fmt.Errorf("auth: join token in %s is for another CA", path)
		}
		return tok, nil
	case !errors.Is(err, fs.ErrNotExist):
		return JoinToken{}, fmt.Errorf("auth: read join token: %w", err)
	}
	tok, err := NewJoinToken(caPEM)
	if err != nil {
		return JoinToken{}, err
	}
	if err := WriteJoinToken(path, tok); err != nil {
		return JoinToken{}, err
	}
	return tok, nil
}

// WriteJoinToken stores tok in path with mode 0600.
func WriteJoinToken(path string, tok JoinToken) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: create join token dir: %w", err)
	}
	if err := writeFileAtomic(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("auth: write join token: %w", err)
	}
	return nil
}

// KeyPEM returns the CA's private key, PEM-encoded, for handing to a server
// joining the cluster (every server issues its own certificates).
func (ca *CA) KeyPEM() ([]byte, error) { return encodeKey(ca.key) }

// InstallCA writes a CA received from another server into dir (ca.crt,
// ca.key) and loads it. If dir already holds a CA it must be the same one:
// a server never silently switches clusters.
func InstallCA(dir string, certPEM, keyPEM []byte) (*CA, error) {
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("auth: received CA: %w", err)
	}
	if old, err := os.ReadFile(filepath.Join(dir, CACertFile)); err == nil {
		if !bytes.Equal(bytes.TrimSpace(old), bytes.TrimSpace(certPEM)) {
			return nil, fmt.Errorf("auth: %s already holds another cluster's CA", dir)
		}
		return EnsureCA(dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create pki dir: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("auth: write CA key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("auth: write CA certificate: %w", err)
	}
	return ca, nil
}

// WriteToken stores a token received from another server in path (mode
// 0600), where EnsureToken will find it.
func WriteToken(path, token string) error {
	if strings.TrimSpace(token) == "" {
		return errors.New("auth: empty token")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: create token dir: %w", err)
	}
	if err := writeFileAtomic(path, []byte(strings.TrimSpace(token)+"\n"), 0o600); err != nil {
		return fmt.Errorf("auth: write token: %w", err)
	}
	return nil
}
