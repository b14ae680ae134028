package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// tokenBytes is the entropy of generated tokens (hex-encoded to twice as many characters).
const tokenBytes = 32

// EnsureToken returns the token stored in path, generating a random one
// (32 bytes, hex-encoded) on first use and writing it with mode 0600.
func EnsureToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		token := strings.TrimSpace(string(data))
		if token == "" {
			return "", fmt.Errorf("auth: token file %s is empty", path)
		}
		return token, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("auth: read token: %w", err)
	}
	token, err := NewToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("auth: create token dir: %w", err)
	}
	if err := writeFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("auth: write token: %w", err)
	}
	return token, nil
}

// NewToken returns a fresh random token: 32 bytes, hex-encoded.
func NewToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// TokenAuthenticator authenticates requests by bearer token, and by TLS
// client certificate when the TLS layer has verified one (the common name
// is the user name, the organizations its groups). Its zero value is ready
// to use and it is safe for concurrent use.
type TokenAuthenticator struct {
	mu sync.RWMutex
	// tokens is keyed by the token's SHA-256, so the map lookup's timing says
	// nothing about the token; the token itself is then compared in constant time.
	tokens map[[sha256.Size]byte]tokenEntry
}

type tokenEntry struct {
	token string
	user  User
}

var _ Authenticator = (*TokenAuthenticator)(nil)

// NewTokenAuthenticator returns an empty TokenAuthenticator.
func NewTokenAuthenticator() *TokenAuthenticator { return &TokenAuthenticator{} }

// Add makes token identify user, replacing any user it named before.
func (a *TokenAuthenticator) Add(token string, user User) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = make(map[[sha256.Size]byte]tokenEntry)
	}
	user.Groups = slices.Clone(user.Groups)
	a.tokens[sha256.Sum256([]byte(token))] = tokenEntry{token: token, user: user}
}

// Remove forgets token.
func (a *TokenAuthenticator) Remove(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tokens, sha256.Sum256([]byte(token)))
}

// Authenticate implements Authenticator. A verified client certificate
// wins; otherwise the request needs a known "Authorization: Bearer" token.
func (a *TokenAuthenticator) Authenticate(r *http.Request) (*User, bool) {
	if u, ok := certUser(r); ok {
		return u, true
	}
	token, ok := bearerToken(r)
	if !ok {
		return nil, false
	}
	a.mu.RLock()
	entry, found := a.tokens[sha256.Sum256([]byte(token))]
	a.mu.RUnlock()
	if !found || subtle.ConstantTimeCompare([]byte(entry.token), []byte(token)) != 1 {
		return nil, false
	}
	u := entry.user
	u.Groups = slices.Clone(u.Groups)
	return &u, true
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// certUser names the user of a TLS client certificate, but only one the TLS
// layer verified against the configured client CAs.
func certUser(r *http.Request) (*User, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if leaf.Subject.CommonName == "" {
		return nil, false
	}
	return &User{Name: leaf.Subject.CommonName, Groups: slices.Clone(leaf.Subject.Organization)}, true
}
