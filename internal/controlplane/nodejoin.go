package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/auth"
)

// Node identities, as Kubernetes names them.
const (
	// NodeUserPrefix starts a node's user name: "system:node:<name>".
	NodeUserPrefix = "system:node:"
	// NodesGroup is the group of every node identity.
	NodesGroup = "system:nodes"
	// NodeTokenFile (in DataDir) holds the token agents join with. It is
	// distinct from the server join token: neither is accepted for the other.
	NodeTokenFile = "node-token"
	// NodeJoinPath (POST, node token secret as bearer token, a CSR in the
	// body) returns a client certificate for system:node:<name>.
	NodeJoinPath = "/drover/v1/nodes/join"
	// NodeRenewPath (POST, authenticated by the node's current client
	// certificate, a CSR in the body) returns a new certificate for the
	// same node identity: renewal needs no token.
	NodeRenewPath = "/drover/v1/nodes/renew"
	// NodeCredentialName names the agent's certificate and key files
	// (node.crt, node.key) in its credential directory, next to ca.crt.
	NodeCredentialName = "node"
)

// NodeUser is the user name of node name's identity.
func NodeUser(name string) string { return NodeUserPrefix + name }

// nodeJoinRequest is what a joining agent sends.
type nodeJoinRequest struct {
	NodeName string `json:"nodeName"`
	// CSR is a PEM certificate request; its subject is ignored, the
	// identity comes from NodeName.
	CSR string `json:"csr"`
}

// nodeJoinResponse is what it receives.
type nodeJoinResponse struct {
	CACert string `json:"caCert"`
	Cert   string `json:"cert"`
}

// EnsureNodeToken returns the node join token kept in dataDir, creating it
// (mode 0600) on first use for the CA caPEM.
func EnsureNodeToken(dataDir string, caPEM []byte) (auth.JoinToken, error) {
	tok, err := auth.EnsureJoinToken(filepath.Join(dataDir, NodeTokenFile), caPEM)
	if err != nil {
		return auth.JoinToken{}, fmt.Errorf("node token: %w", err)
	}
	return tok, nil
}

// RotateNodeToken replaces the node join token in dataDir with a fresh one
// and returns it. A running server accepts only the new token from its next
// join request on; nodes that already joined keep their certificates.
func RotateNodeToken(dataDir string) (auth.JoinToken, error) {
	caPEM, err := os.ReadFile(filepath.Join(dataDir, PKIDir, auth.CACertFile))
	if err != nil {
		return auth.JoinToken{}, fmt.Errorf("rotate node token: no cluster CA in %s: %w", dataDir, err)
	}
	tok, err := auth.NewJoinToken(caPEM)
	if err != nil {
		return auth.JoinToken{}, err
	}
	if err := auth.WriteJoinToken(filepath.Join(dataDir, NodeTokenFile), tok); err != nil {
		return auth.JoinToken{}, err
	}
	return tok, nil
}

// nodeJoinHandler serves NodeJoinPath and passes everything else to next.
// It reads the token file on every join, so a rotation needs no restart.
type nodeJoinHandler struct {
	next      http.Handler
	ca        *auth.CA
	tokenPath string
	log       *slog.Logger
}

// NewNodeJoinHandler serves node joins against the node token in dataDir,
// signing with ca, in front of next.
func NewNodeJoinHandler(next http.Handler, ca *auth.CA, dataDir string, log *slog.Logger) http.Handler {
	return &nodeJoinHandler{next: next, ca: ca, tokenPath: filepath.Join(dataDir, NodeTokenFile), log: log}
}

func (h *nodeJoinHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case NodeJoinPath:
		h.join(w, r)
	case NodeRenewPath:
		h.renew(w, r)
	default:
		h.next.ServeHTTP(w, r)
	}
}

// renew issues a new certificate to a node that presents its current one.
func (h *nodeJoinHandler) renew(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		httpError(w, http.StatusUnauthorized, "renewal needs the node's client certificate")
		return
	}
	leaf := r.TLS.VerifiedChains[0][0]
	name, ok := strings.CutPrefix(leaf.Subject.CommonName, NodeUserPrefix)
	if !ok || name == "" || !slices.Contains(leaf.Subject.Organization, NodesGroup) {
		httpError(w, http.StatusForbidden, "only a node identity ("+NodeUserPrefix+"NAME in "+NodesGroup+") may renew its certificate")
		return
	}
	var req nodeJoinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "decode node renew request: "+err.Error())
		return
	}
	certPEM, err := h.ca.SignClientCSR([]byte(req.CSR), NodeUser(name), []string{NodesGroup})
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.log.Info("node certificate renewed", "node", name)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(nodeJoinResponse{CACert: string(h.ca.CertPEM()), Cert: string(certPEM)})
}

func (h *nodeJoinHandler) join(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok, err := h.token()
	if err != nil {
		h.log.Error("node join: reading the node token", "err", err)
		httpError(w, http.StatusInternalServerError, "the server cannot read its node token")
		return
	}
	if !tok.CheckSecret(strings.TrimSpace(secret)) {
		httpError(w, http.StatusUnauthorized, "bad node token")
		return
	}
	var req nodeJoinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "decode node join request: "+err.Error())
		return
	}
	if errs := validation.IsDNS1123Subdomain(req.NodeName); len(errs) > 0 {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("invalid node name %q: %s", req.NodeName, strings.Join(errs, "; ")))
		return
	}
	certPEM, err := h.ca.SignClientCSR([]byte(req.CSR), NodeUser(req.NodeName), []string{NodesGroup})
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.log.Info("node joined: issued a client certificate", "node", req.NodeName, "user", NodeUser(req.NodeName))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(nodeJoinResponse{CACert: string(h.ca.CertPEM()), Cert: string(certPEM)})
}

func (h *nodeJoinHandler) token() (auth.JoinToken, error) {
	data, err := os.ReadFile(h.tokenPath)
	if err != nil {
		return auth.JoinToken{}, err
	}
	return auth.ParseJoinToken(string(data))
}

// NodeJoin describes an agent's credentials: where they live and how to
// get them.
type NodeJoin struct {
	// Server is the API server's URL.
	Server string
	// Token is the node join token ("K10<ca hash>::<secret>"). It may be
	// empty when Dir already holds a certificate that needs no renewal.
	Token string
	// NodeName names the node; its identity is system:node:<NodeName>.
	NodeName string
	// Dir keeps ca.crt, node.crt and node.key (created 0700, files 0600).
	Dir string
	// Logger, if set, hears about joins and renewals.
	Logger *slog.Logger
	// Now is the clock for renewal decisions; nil means time.Now.
	Now func() time.Time
	// CurrentServer, if set, names the server KeepNodeCredentials renews
	// through, asked before each check (a client that fails over among
	// servers); nil means Server.
	CurrentServer func() string
}

// NodeCredentials returns a client configuration for the node identity
// system:node:<NodeName>. It reuses the certificate in Dir while it names
// this node, is signed by the token's CA and has more than a third of its
// life left; otherwise it joins: fetches /cacerts, checks it against the
// token's CA hash, and posts a CSR with the token's secret to
// NodeJoinPath over TLS verified with that CA. The private key never
// leaves Dir.
func NodeCredentials(ctx context.Context, j NodeJoin) (*rest.Config, error) {
	if j.Server == "" || j.NodeName == "" || j.Dir == "" {
		return nil, errors.New("node credentials: need a server, a node name and a directory")
	}
	if j.Now == nil {
		j.Now = time.Now
	}
	if j.Logger == nil {
		j.Logger = slog.Default()
	}
	var tok auth.JoinToken
	if j.Token != "" {
		var err error
		if tok, err = auth.ParseJoinToken(j.Token); err != nil {
			return nil, err
		}
	}
	caPath := filepath.Join(j.Dir, auth.CACertFile)
	cred, ok, err := auth.LoadClientCredential(j.Dir, NodeCredentialName)
	if err != nil {
		return nil, err
	}
	if ok {
		caPEM, caErr := os.ReadFile(caPath)
		why := reuseProblem(cred, caPEM, caErr, tok, j.NodeName, j.Now())
		if why == "" {
			return nodeRestConfig(j.Server, caPEM, cred), nil
		}
		if auth.NeedsRenewal(cred.Cert, j.Now()) && j.Now().Before(cred.Cert.NotAfter) && caErr == nil {
			// Still valid: renew with the certificate itself.
			cfg, err := renewNodeCredentials(ctx, j, caPEM, cred)
			if err == nil {
				return cfg, nil
			}
			j.Logger.Warn("renewing the node certificate", "err", err)
		}
		if j.Token == "" {
			return nil, fmt.Errorf("node credentials in %s: %s, and no --token to join again", j.Dir, why)
		}
		j.Logger.Info("joining again for a new node certificate", "reason", why)
	} else if j.Token == "" {
		return nil, fmt.Errorf("node credentials: none in %s; give a node join token", j.Dir)
	}
	csrPEM, keyPEM, err := auth.NewClientCSR(NodeUser(j.NodeName), []string{NodesGroup})
	if err != nil {
		return nil, err
	}
	resp, err := requestNodeJoin(ctx, j.Server, tok, nodeJoinRequest{NodeName: j.NodeName, CSR: string(csrPEM)}, j.Logger)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("node credentials dir: %w", err)
	}
	if err := os.WriteFile(caPath, []byte(resp.CACert), 0o600); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	cred, err = auth.WriteClientCredential(j.Dir, NodeCredentialName, []byte(resp.Cert), keyPEM)
	if err != nil {
		return nil, err
	}
	j.Logger.Info("node certificate issued", "user", cred.Cert.Subject.CommonName, "expires", cred.Cert.NotAfter.UTC().Format(time.RFC3339))
	return nodeRestConfig(j.Server, []byte(resp.CACert), cred), nil
}

// reuseProblem says why a stored credential cannot be reused ("" if it can).
func reuseProblem(cred *auth.ClientCredential, caPEM []byte, caErr error, tok auth.JoinToken, node string, now time.Time) string {
	switch {
	case caErr != nil:
		return "no CA certificate"
	case tok.CAHash != "" && tok.VerifyCA(caPEM) != nil:
		return "the stored CA is not the token's"
	case cred.Cert.Subject.CommonName != NodeUser(node):
		return fmt.Sprintf("the certificate names %q", cred.Cert.Subject.CommonName)
	case auth.NeedsRenewal(cred.Cert, now):
		return "the certificate is close to expiry"
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return "the stored CA does not parse"
	}
	if _, err := cred.Cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "the certificate is not the stored CA's"
	}
	return ""
}

func nodeRestConfig(server string, caPEM []byte, cred *auth.ClientCredential) *rest.Config {
	c := &rest.Config{Host: server, Timeout: 30 * time.Second}
	c.TLSClientConfig.CAData = caPEM
	c.TLSClientConfig.CertFile = cred.CertFile
	c.TLSClientConfig.KeyFile = cred.KeyFile
	return c
}

// requestNodeJoin is the agent's side of the join: /cacerts pinned by the
// token's hash, then the CSR over verified TLS. Errors that may pass
// (connection refused, 5xx) are retried until joinTimeout.
func requestNodeJoin(ctx context.Context, server string, tok auth.JoinToken, req nodeJoinRequest, log *slog.Logger) (*nodeJoinResponse, error) {
	server = strings.TrimRight(server, "/")
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	for {
		resp, retry, err := nodeJoinOnce(ctx, server, tok, req)
		if err == nil {
			return resp, nil
		}
		if !retry {
			return nil, fmt.Errorf("node join %s: %w", server, err)
		}
		log.Info("node join attempt failed; retrying", "server", server, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node join %s: gave up after %s: %w", server, joinTimeout, err)
		case <-time.After(time.Second):
		}
	}
}

func nodeJoinOnce(ctx context.Context, server string, tok auth.JoinToken, req nodeJoinRequest) (*nodeJoinResponse, bool, error) {
	pinned, caPEM, retry, err := pinnedClient(ctx, server, tok)
	if err != nil {
		return nil, retry, err
	}
	defer pinned.CloseIdleConnections()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false, err
	}
	data, code, err := doRequest(ctx, pinned, http.MethodPost, server+NodeJoinPath, tok.Secret, body)
	if err != nil {
		return nil, true, err
	}
	if code != http.StatusOK {
		return nil, code >= 500 || code == http.StatusTooManyRequests, fmt.Errorf("%d %s", code, bytes.TrimSpace(data))
	}
	var resp nodeJoinResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, false, fmt.Errorf("decode node join response: %w", err)
	}
	if resp.CACert != string(caPEM) {
		return nil, false, errors.New("node join response carries another CA than the pinned one")
	}
	return &resp, false, nil
}

// pinnedClient fetches the server's CA without verifying TLS, checks it
// against the token's hash and returns a client that trusts only it.
func pinnedClient(ctx context.Context, server string, tok auth.JoinToken) (*http.Client, []byte, bool, error) {
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // pinned by hash below
	}}
	defer insecure.CloseIdleConnections()
	caPEM, code, err := doRequest(ctx, insecure, http.MethodGet, server+CACertsPath, "", nil)
	if err != nil {
		return nil, nil, true, err
	}
	if code != http.StatusOK {
		return nil, nil, code >= 500, fmt.Errorf("GET %s: %d %s", CACertsPath, code, bytes.TrimSpace(caPEM))
	}
	if err := tok.VerifyCA(caPEM); err != nil {
		return nil, nil, false, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, false, errors.New("the server's CA certificate does not parse")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}, caPEM, false, nil
}

// renewNodeCredentials gets a new certificate for the node by presenting
// its current one, and stores it in place: clients built from the returned
// configuration (client-go reloads certificate files) switch to it.
func renewNodeCredentials(ctx context.Context, j NodeJoin, caPEM []byte, cred *auth.ClientCredential) (*rest.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the stored CA does not parse")
	}
	pair, err := tls.LoadX509KeyPair(cred.CertFile, cred.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	csrPEM, keyPEM, err := auth.NewClientCSR(NodeUser(j.NodeName), []string{NodesGroup})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(nodeJoinRequest{NodeName: j.NodeName, CSR: string(csrPEM)})
	if err != nil {
		return nil, err
	}
	data, code, err := doRequest(ctx, client, http.MethodPost, strings.TrimRight(j.Server, "/")+NodeRenewPath, "", body)
	if err != nil {
		return nil, fmt.Errorf("node renew: %w", err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("node renew: %d %s", code, bytes.TrimSpace(data))
	}
	var resp nodeJoinResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode node renew response: %w", err)
	}
	if resp.CACert != string(caPEM) {
		return nil, errors.New("node renew response carries another CA than the stored one")
	}
	renewed, err := auth.WriteClientCredential(j.Dir, NodeCredentialName, []byte(resp.Cert), keyPEM)
	if err != nil {
		return nil, err
	}
	j.Logger.Info("node certificate renewed", "user", renewed.Cert.Subject.CommonName, "expires", renewed.Cert.NotAfter.UTC().Format(time.RFC3339))
	return nodeRestConfig(j.Server, caPEM, renewed), nil
}

// KeepNodeCredentials checks the node certificate in j.Dir every interval
// until ctx is done, and renews it (with itself, else with j.Token) once a
// third of its life is left. Run it next to an agent whose client was
// built by NodeCredentials.
func KeepNodeCredentials(ctx context.Context, j NodeJoin, interval time.Duration) {
	if j.Logger == nil {
		j.Logger = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if j.CurrentServer != nil {
			j.Server = j.CurrentServer()
		}
		if _, err := NodeCredentials(ctx, j); err != nil && ctx.Err() == nil {
			j.Logger.Warn("node certificate check", "err", err)
		}
	}
}
