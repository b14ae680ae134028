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
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/auth"
)

// Paths of the cluster endpoints every server serves next to the API.
const (
	// CACertsPath serves the cluster CA certificate without authentication:
	// a joiner checks it against its join token's hash before trusting it.
	CACertsPath = "/cacerts"
	// JoinPath (POST, join secret as bearer token) hands a joining server
	// the cluster's credentials and adds its etcd member.
	JoinPath = "/drover/v1/join"
	// MembersPath lists (GET) the etcd members; MembersPath/NAME (DELETE)
	// removes one. Admin only.
	MembersPath = "/drover/v1/members"
)

// joinTimeout bounds a joiner's retries (the cluster may be busy adding
// another member: etcd takes one learner at a time).
const joinTimeout = 2 * time.Minute

// joinRequest is what a joining server sends.
type joinRequest struct {
	Name string `json:"name"`
	// PeerURL is the joiner's etcd peer URL; empty for a server on
	// external etcd, which only needs the credentials.
	PeerURL string `json:"peerURL,omitempty"`
}

// joinResponse is what it receives.
type joinResponse struct {
	CACert     string `json:"caCert"`
	CAKey      string `json:"caKey"`
	AdminToken string `json:"adminToken"`
	// NodeToken is the cluster's node join token, so that agents may join
	// through any server.
	NodeToken string `json:"nodeToken,omitempty"`
	// InitialCluster is etcd's "name=peerURL,..." including the joiner,
	// which starts its member with cluster state "existing".
	InitialCluster string `json:"initialCluster,omitempty"`
}

// MemberInfo describes one etcd member of an HA control plane.
type MemberInfo struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	// Learner: joined, not yet promoted to a voting member.
	Learner bool `json:"learner,omitempty"`
}

// clusterHandler serves the cluster endpoints and passes everything else to api.
type clusterHandler struct {
	api   http.Handler
	c     *clusterSetup
	ca    *auth.CA
	authn auth.Authenticator
	admin string // admin token, handed to joiners
}

func (c *clusterSetup) handler(api http.Handler, ca *auth.CA, authn auth.Authenticator, adminToken string) http.Handler {
	return &clusterHandler{api: api, c: c, ca: ca, authn: authn, admin: adminToken}
}

func (h *clusterHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == CACertsPath:
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(h.ca.CertPEM())
	case p == JoinPath:
		h.join(w, r)
	case p == MembersPath || strings.HasPrefix(p, MembersPath+"/"):
		h.members(w, r)
	default:
		h.api.ServeHTTP(w, r)
	}
}

func (h *clusterHandler) join(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if h.c.joinTok.Secret == "" {
		httpError(w, http.StatusNotFound, "this server was not started with --cluster-init or --join: it takes no servers")
		return
	}
	if !h.c.joinTok.CheckSecret(strings.TrimSpace(secret)) {
		httpError(w, http.StatusUnauthorized, "bad join token")
		return
	}
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "decode join request: "+err.Error())
		return
	}
	keyPEM, err := h.ca.KeyPEM()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp := joinResponse{CACert: string(h.ca.CertPEM()), CAKey: string(keyPEM), AdminToken: h.admin}
	if nodeTok, err := os.ReadFile(filepath.Join(h.c.dataDir, NodeTokenFile)); err == nil {
		resp.NodeToken = strings.TrimSpace(string(nodeTok))
	}
	if req.PeerURL != "" {
		if !h.c.ha() || h.c.etcd == nil {
			httpError(w, http.StatusConflict, "this server has no HA etcd cluster to join (start the first server with --cluster-init)")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		initial, code, err := addLearner(ctx, h.c.etcd, req)
		if err != nil {
			httpError(w, code, err.Error())
			return
		}
		resp.InitialCluster = initial
		h.c.log.Info("server joining: added etcd learner", "name", req.Name, "peerURL", req.PeerURL)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// addLearner adds req's member as a learner and returns the initial cluster
// it must start with. A stale member with the same peer URL (a joiner that
// lost its data, or failed before starting) is replaced. It returns an
// HTTP status for errors: 409 for conflicts, 503 for what may pass.
func addLearner(ctx context.Context, cli *clientv3.Client, req joinRequest) (string, int, error) {
	if errs := joinRequestErrors(req); errs != "" {
		return "", http.StatusBadRequest, errors.New(errs)
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		return "", http.StatusServiceUnavailable, fmt.Errorf("etcd member list: %w", err)
	}
	for _, m := range list.Members {
		samePeer := slices.Contains(m.PeerURLs, req.PeerURL)
		switch {
		case m.Name == req.Name && !samePeer:
			return "", http.StatusConflict, fmt.Errorf("a member named %q already exists with peer URLs %v: remove it first (drover server remove %s)", req.Name, m.PeerURLs, req.Name)
		case samePeer && m.Name != "" && m.Name != req.Name:
			return "", http.StatusConflict, fmt.Errorf("peer URL %s belongs to member %q", req.PeerURL, m.Name)
		case samePeer:
			if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
				return "", http.StatusServiceUnavailable, fmt.Errorf("remove stale member %x: %w", m.ID, err)
			}
		}
	}
	added, err := cli.MemberAddAsLearner(ctx, []string{req.PeerURL})
	if err != nil {
		return "", http.StatusServiceUnavailable, fmt.Errorf("etcd member add: %w", err)
	}
	return initialCluster(added.Members, added.Member.ID, req.Name), 0, nil
}

func joinRequestErrors(req joinRequest) string {
	if req.Name == "" {
		return "join request without a name"
	}
	if !strings.HasPrefix(req.PeerURL, "https://") {
		return "peer URL must be https"
	}
	return ""
}

// initialCluster formats etcd's initial cluster "name=url,..." from the
// member list after an add, naming the new member newName (etcd knows no
// name for it until it starts), as etcdctl member add does.
func initialCluster(members []*etcdserverpb.Member, newID uint64, newName string) string {
	var parts []string
	for _, m := range members {
		name := m.Name
		if m.ID == newID {
			name = newName
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

func (h *clusterHandler) members(w http.ResponseWriter, r *http.Request) {
	u, ok := h.authn.Authenticate(r)
	if !ok {
		httpError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if !slices.Contains(u.Groups, AdminGroup) {
		httpError(w, http.StatusForbidden, "only "+AdminGroup+" may manage servers")
		return
	}
	if !h.c.ha() || h.c.etcd == nil {
		httpError(w, http.StatusNotFound, "this server runs no HA etcd cluster")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	list, err := h.c.etcd.MemberList(ctx)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "etcd member list: "+err.Error())
		return
	}
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, MembersPath), "/")
	switch {
	case r.Method == http.MethodGet && name == "":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(memberInfos(list.Members))
	case r.Method == http.MethodDelete && name != "":
		for _, m := range list.Members {
			if m.Name != name {
				continue
			}
			if _, err := h.c.etcd.MemberRemove(ctx, m.ID); err != nil {
				httpError(w, http.StatusServiceUnavailable, "etcd member remove: "+err.Error())
				return
			}
			h.c.log.Info("removed etcd member", "name", name, "id", fmt.Sprintf("%x", m.ID))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		httpError(w, http.StatusNotFound, fmt.Sprintf("no member named %q", name))
	default:
		httpError(w, http.StatusMethodNotAllowed, "GET "+MembersPath+" or DELETE "+MembersPath+"/NAME")
	}
}

func memberInfos(members []*etcdserverpb.Member) []MemberInfo {
	out := make([]MemberInfo, 0, len(members))
	for _, m := range members {
		out = append(out, MemberInfo{
			Name: m.Name, ID: strconv.FormatUint(m.ID, 16), PeerURLs: m.PeerURLs,
			ClientURLs: m.ClientURLs, Learner: m.IsLearner,
		})
	}
	slices.SortFunc(out, func(a, b MemberInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// requestJoin runs the joiner's side of the protocol against server:
//  1. GET /cacerts without verifying TLS, and check that the certificate
//     hashes to the token's CA hash (this pins the cluster CA);
//  2. POST /drover/v1/join over TLS verified with that CA, authenticated by
//     the token's secret.
//
// Errors that may pass (connection refused, 5xx: the cluster is busy adding
// another member) are retried until joinTimeout.
func requestJoin(ctx context.Context, server string, tok auth.JoinToken, req joinRequest, log *slog.Logger) (*joinResponse, error) {
	server = strings.TrimRight(server, "/")
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	var lastErr error
	for {
		resp, retry, err := joinOnce(ctx, server, tok, req)
		if err == nil {
			return resp, nil
		}
		if !retry {
			return nil, fmt.Errorf("join %s: %w", server, err)
		}
		log.Info("join attempt failed; retrying", "server", server, "err", err)
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join %s: gave up after %s: %w", server, joinTimeout, lastErr)
		case <-time.After(time.Second):
		}
	}
}

func joinOnce(ctx context.Context, server string, tok auth.JoinToken, req joinRequest) (*joinResponse, bool, error) {
	// Step 1: the CA, unverified, checked against the token.
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // pinned by hash below
	}}
	defer insecure.CloseIdleConnections()
	caPEM, code, err := doRequest(ctx, insecure, http.MethodGet, server+CACertsPath, "", nil)
	if err != nil {
		return nil, true, err
	}
	if code != http.StatusOK {
		return nil, code >= 500, fmt.Errorf("GET %s: %d %s", CACertsPath, code, bytes.TrimSpace(caPEM))
	}
	if err := tok.VerifyCA(caPEM); err != nil {
		return nil, false, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, false, errors.New("the server's CA certificate does not parse")
	}
	// Step 2: verified TLS, secret as bearer token.
	pinned := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer pinned.CloseIdleConnections()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false, err
	}
	data, code, err := doRequest(ctx, pinned, http.MethodPost, server+JoinPath, tok.Secret, body)
	if err != nil {
		return nil, true, err
	}
	if code != http.StatusOK {
		return nil, code >= 500, fmt.Errorf("%d %s", code, bytes.TrimSpace(data))
	}
	var resp joinResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, false, fmt.Errorf("decode join response: %w", err)
	}
	if resp.CACert != string(caPEM) {
		return nil, false, errors.New("join response carries another CA than the pinned one")
	}
	return &resp, false, nil
}

func doRequest(ctx context.Context, client *http.Client, method, url, bearer string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, err
	}
	return data, resp.StatusCode, nil
}

// ListMembers lists the etcd members of the HA control plane that cfg (an
// admin client configuration) reaches.
func ListMembers(ctx context.Context, cfg *rest.Config) ([]MemberInfo, error) {
	data, err := adminRequest(ctx, cfg, http.MethodGet, MembersPath)
	if err != nil {
		return nil, err
	}
	var out []MemberInfo
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("decode members: %w", err)
	}
	return out, nil
}

// RemoveMember removes the named server's etcd member from the cluster,
// through the server cfg reaches. The removed server's member stops, and
// with it that server.
// etcd refuses removals for a few seconds after a member (re)connects
// ("unhealthy cluster"): those are retried for up to 30 seconds.
func RemoveMember(ctx context.Context, cfg *rest.Config, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := adminRequest(ctx, cfg, http.MethodDelete, MembersPath+"/"+name)
		if err == nil || !errors.Is(err, errUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// errUnavailable marks a 503 from a cluster endpoint.
var errUnavailable = errors.New("service unavailable")

func adminRequest(ctx context.Context, cfg *rest.Config, method, path string) ([]byte, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	data, code, err := doRequest(ctx, client, method, strings.TrimRight(cfg.Host, "/")+path, "", nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if code == http.StatusServiceUnavailable {
		return nil, fmt.Errorf("%s %s: %w: %s", method, path, errUnavailable, bytes.TrimSpace(data))
	}
	if code/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, code, bytes.TrimSpace(data))
	}
	return data, nil
}
