package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestEnsureTokenGeneratesOnceAndReuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "admin.token")
	token, err := EnsureToken(path)
	if err != nil {
		t.Fatalf("EnsureToken: %v", err)
	}
	if raw, err := hex.DecodeString(token); err != nil || len(raw) != 32 {
		t.Errorf("token %q is not 32 hex-encoded bytes (err %v)", token, err)
	}
	assertMode(t, path, 0o600)
	again, err := EnsureToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if again != token {
		t.Errorf("second EnsureToken = %q, want the stored %q", again, token)
	}
	other, err := EnsureToken(filepath.Join(t.TempDir(), "t"))
	if err != nil {
		t.Fatal(err)
	}
	if other == token {
		t.Error("two fresh tokens are equal")
	}

	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureToken(path); err == nil {
		t.Error("EnsureToken accepted an empty token file")
	}
}

func TestTokenAuthenticatorBearer(t *testing.T) {
	var a TokenAuthenticator // the zero value works
	a.Add("s3cret", User{Name: "admin", Groups: []string{"system:masters"}})

	cases := []struct {
		name   string
		header string
		want   string // user name; "" means rejected
	}{
		{"valid", "Bearer s3cret", "admin"},
		{"scheme is case-insensitive", "bearer s3cret", "admin"},
		{"no header", "", ""},
		{"wrong token", "Bearer s3cre", ""},
		{"longer token", "Bearer s3cret2", ""},
		{"empty token", "Bearer ", ""},
		{"basic auth", "Basic s3cret", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			u, ok := a.Authenticate(r)
			if tc.want == "" {
				if ok {
					t.Errorf("accepted as %+v, want rejected", u)
				}
				return
			}
			if !ok || u.Name != tc.want || !slices.Equal(u.Groups, []string{"system:masters"}) {
				t.Errorf("got %+v, %v; want %s in system:masters", u, ok, tc.want)
			}
		})
	}

	// The returned user is a copy: changing it does not change the authenticator.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer s3cret")
	u, _ := a.Authenticate(r)
	u.Groups[0] = "hacked"
	u2, _ := a.Authenticate(r)
	if u2.Groups[0] != "system:masters" {
		t.Error("mutating a returned user changed the stored one")
	}

	a.Remove("s3cret")
	if _, ok := a.Authenticate(r); ok {
		t.Error("removed token still accepted")
	}
}

func TestTokenAuthenticatorConcurrent(t *testing.T) {
	a := NewTokenAuthenticator()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := strings.Repeat("x", i+1)
			a.Add(tok, User{Name: tok})
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			if u, ok := a.Authenticate(r); !ok || u.Name != tok {
				t.Errorf("token %q: got %+v %v", tok, u, ok)
			}
		}()
	}
	wg.Wait()
}

// TestTokenAuthenticatorOverTLS runs a real TLS server that asks for (but does
// not require) client certificates, as the control plane does, and checks who
// each kind of caller is taken to be.
func TestTokenAuthenticatorOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	a := NewTokenAuthenticator()
	a.Add("tok", User{Name: "admin", Groups: []string{"system:masters"}})

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := a.Authenticate(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, u.Name+"|"+strings.Join(u.Groups, ","))
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	defer srv.Close()

	client := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	get := func(c *http.Client, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, _ := get(client(nil), ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: status %d, want 401", code)
	}
	if code, _ := get(client(nil), "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", code)
	}
	if code, body := get(client(nil), "tok"); code != http.StatusOK || body != "admin|system:masters" {
		t.Errorf("token: %d %q", code, body)
	}

	certPEM, keyPEM, err := ca.IssueClientCert("system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(client(&nodeCert), ""); code != http.StatusOK || body != "system:node:n1|system:nodes" {
		t.Errorf("client certificate: %d %q", code, body)
	}

	// A certificate from another CA is refused by the TLS layer itself.
	rogueCA, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = rogueCA.IssueClientCert("admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if resp, err := client(&rogue).Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("certificate from an unknown CA was accepted")
		}
	}
}

func TestCertUserNeedsVerifiedChain(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueClientCert("mallory", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := parseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	// Presented but not verified (e.g. a server that does not check client certificates).
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	if u, ok := NewTokenAuthenticator().Authenticate(r); ok {
		t.Errorf("unverified certificate accepted as %+v", u)
	}
}
