package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/auth"
)

// TestNodeJoin runs the agent's side of the node join against a control
// plane: the certificate names system:node:<name> in system:nodes, the
// API server authenticates it, it is reused on restart and renewed near
// expiry, the node token rotates without a restart, and the server join
// token and the node token are not accepted for each other's join.
func TestNodeJoin(t *testing.T) {
	dir := t.TempDir()
	s := startWith(t, dir, Config{Cluster: Cluster{Init: true}})
	ctx := context.Background()
	if s.info.NodeToken == "" || s.info.NodeToken == s.info.JoinToken {
		t.Fatalf("node token %q, join token %q: want a node token of its own", s.info.NodeToken, s.info.JoinToken)
	}
	nodeTok, err := auth.ParseJoinToken(s.info.NodeToken)
	if err != nil {
		t.Fatal(err)
	}
	serverTok, err := auth.ParseJoinToken(s.info.JoinToken)
	if err != nil {
		t.Fatal(err)
	}

	agentDir := filepath.Join(t.TempDir(), "pki")
	cfg, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, Token: s.info.NodeToken, NodeName: "n1", Dir: agentDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BearerToken != "" || cfg.Username != "" {
		t.Fatalf("node config carries a token or password: %+v", cfg)
	}
	cred, ok, err := auth.LoadClientCredential(agentDir, NodeCredentialName)
	if err != nil || !ok {
		t.Fatalf("no credential stored: %v", err)
	}
	if cred.Cert.Subject.CommonName != "system:node:n1" || !slices.Equal(cred.Cert.Subject.Organization, []string{NodesGroup}) {
		t.Fatalf("certificate subject %v", cred.Cert.Subject)
	}
	assertModes(t, map[string]os.FileMode{
		agentDir: 0o700, cred.KeyFile: 0o600, cred.CertFile: 0o600, filepath.Join(agentDir, auth.CACertFile): 0o600,
	})
	// The API server takes the certificate (401 would fail this).
	client := kubernetes.NewForConfigOrDie(cfg)
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("node creates itself with its certificate: %v", err)
	}

	// Restart: reused without a token, and without a new certificate.
	again, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, NodeName: "n1", Dir: agentDir})
	if err != nil {
		t.Fatal(err)
	}
	cred2, _, _ := auth.LoadClientCredential(agentDir, NodeCredentialName)
	if again.CertFile != cfg.CertFile || !cred2.Cert.Equal(cred.Cert) {
		t.Error("restart issued a new certificate; want the stored one reused")
	}
	// Another node name in the same dir is not reused, and needs a token.
	if _, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, NodeName: "n2", Dir: agentDir}); err == nil {
		t.Error("credentials of n1 served n2")
	}
	// Near expiry: joins again for a new certificate.
	late := func() time.Time { return cred.Cert.NotAfter.Add(-time.Hour) }
	if _, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, Token: s.info.NodeToken, NodeName: "n1", Dir: agentDir, Now: late, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	cred3, _, _ := auth.LoadClientCredential(agentDir, NodeCredentialName)
	if cred3.Cert.Equal(cred.Cert) || cred3.Cert.NotAfter.Before(cred.Cert.NotAfter) {
		t.Error("a certificate close to expiry was not renewed")
	}

	// Renewal needs no token: the certificate itself is enough.
	if _, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, NodeName: "n1", Dir: agentDir, Now: func() time.Time { return cred3.Cert.NotAfter.Add(-time.Hour) }, Logger: testLogger(t)}); err != nil {
		t.Fatalf("renewal with the certificate: %v", err)
	}
	cred4, _, _ := auth.LoadClientCredential(agentDir, NodeCredentialName)
	if cred4.Cert.Equal(cred3.Cert) || cred4.Cert.Subject.CommonName != "system:node:n1" {
		t.Error("renewal with the certificate did not issue a new one for the node")
	}
	// Only node identities renew, and only with a certificate.
	ca, err := auth.EnsureCA(filepath.Join(dir, PKIDir))
	if err != nil {
		t.Fatal(err)
	}
	userCert, userKey, err := ca.IssueClientCert("bob", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := auth.WriteClientCredential(t.TempDir(), "bob", userCert, userKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := ca.CertPEM()
	if _, err := renewNodeCredentials(ctx, NodeJoin{Server: s.info.URL, NodeName: "bob", Dir: t.TempDir(), Logger: testLogger(t)}, caPEM, bob); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("renewal by a non-node certificate: %v, want 403", err)
	}
	if code := postJoin(t, s.info.URL, NodeRenewPath, "", nodeJoinBody(t, "n1")); code != http.StatusUnauthorized {
		t.Errorf("renewal without a certificate: %d, want 401", code)
	}

	// A token pinning another CA is refused before any secret is sent.
	otherCA, err := auth.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrong := auth.JoinToken{CAHash: auth.CAHash(otherCA.CertPEM()), Secret: nodeTok.Secret}
	if _, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, Token: wrong.String(), NodeName: "n3", Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("join with another CA's hash: %v", err)
	}

	// The tokens are not interchangeable.
	if code := postJoin(t, s.info.URL, NodeJoinPath, serverTok.Secret, nodeJoinBody(t, "n4")); code != http.StatusUnauthorized {
		t.Errorf("node join with the server join token: %d, want 401", code)
	}
	if code := postJoin(t, s.info.URL, JoinPath, nodeTok.Secret, []byte(`{"name":"evil","peerURL":"https://127.0.0.1:1"}`)); code != http.StatusUnauthorized {
		t.Errorf("server join with the node token: %d, want 401", code)
	}
	if code := postJoin(t, s.info.URL, NodeJoinPath, nodeTok.Secret, nodeJoinBody(t, "Not_A_Name")); code != http.StatusBadRequest {
		t.Errorf("node join with an invalid name: %d, want 400", code)
	}

	// Rotation: the old token stops working at once, the new one works.
	rotated, err := RotateNodeToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == nodeTok.Secret || rotated.CAHash != nodeTok.CAHash {
		t.Fatalf("rotated token %v", rotated)
	}
	if _, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, Token: s.info.NodeToken, NodeName: "n5", Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("join with the rotated-out token: %v, want 401", err)
	}
	if _, err := NodeCredentials(ctx, NodeJoin{Server: s.info.URL, Token: rotated.String(), NodeName: "n5", Dir: t.TempDir()}); err != nil {
		t.Errorf("join with the new token: %v", err)
	}
	// The already joined node keeps working.
	if _, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Errorf("joined node after rotation: %v", err)
	}
	assertModes(t, map[string]os.FileMode{
		dir: 0o700, filepath.Join(dir, PKIDir): 0o700, filepath.Join(dir, PKIDir, auth.CAKeyFile): 0o600,
		filepath.Join(dir, NodeTokenFile): 0o600, filepath.Join(dir, JoinTokenFile): 0o600,
		filepath.Join(dir, TokenFile): 0o600, filepath.Join(dir, KubeconfigFile): 0o600,
		filepath.Join(dir, PKIDir, auth.ServerKeyFile): 0o600, filepath.Join(dir, PKIDir, auth.PeerKeyFile): 0o600,
	})
}

func nodeJoinBody(t *testing.T, name string) []byte {
	t.Helper()
	csr, _, err := auth.NewClientCSR("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(nodeJoinRequest{NodeName: name, CSR: string(csr)})
	return b
}

// postJoin posts body to path with a bearer secret and returns the status
// code. (CA pinning is tested through NodeCredentials.)
func postJoin(t *testing.T, server, path, secret string, body []byte) int {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	defer client.CloseIdleConnections()
	_, code, err := doRequest(context.Background(), client, http.MethodPost, server+path, secret, body)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func assertModes(t *testing.T, want map[string]os.FileMode) {
	t.Helper()
	for path, mode := range want {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
}

// TestNodeTokenSharedByJoinedServers: a server that joins an HA cluster
// takes the cluster's node token, so an agent may join through any server.
func TestNodeTokenSharedByJoinedServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two control planes")
	}
	a := startWith(t, filepath.Join(t.TempDir(), "a"), Config{Cluster: Cluster{Init: true, Name: "a"}})
	b := startWith(t, filepath.Join(t.TempDir(), "b"), Config{Cluster: Cluster{JoinURL: a.info.URL, Token: a.info.JoinToken, Name: "b"}})
	if b.info.NodeToken != a.info.NodeToken {
		t.Fatalf("joined server's node token %q, want the first server's %q", b.info.NodeToken, a.info.NodeToken)
	}
	if _, err := NodeCredentials(context.Background(), NodeJoin{Server: b.info.URL, Token: a.info.NodeToken, NodeName: "via-b", Dir: t.TempDir()}); err != nil {
		t.Errorf("node join through the second server: %v", err)
	}
}
