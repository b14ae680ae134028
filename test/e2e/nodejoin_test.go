package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// TestNodeJoinAndInflightLimit: `drover server` (with small in-flight
// limits) and `drover agent --runtime sim --server URL --token NODE_TOKEN`.
// The agent joins with the node token for a certificate naming
// system:node:NAME and registers its node with it; the admin token is
// nowhere in its data dir. A flood from the node's identity beyond the
// limit gets 429s with Retry-After while the admin's kubectl still works.
// After `drover server rotate-node-token` the old token joins no more.
func TestNodeJoinAndInflightLimit(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	s := startControlPlane(t, "server", dir, listen, "--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2")
	token := strings.TrimSpace(readFileString(t, filepath.Join(dir, "node-token")))
	waitFor(t, 30*time.Second, func() error {
		if !strings.Contains(s.log.String(), token) {
			return fmt.Errorf("the server did not print its node token:\n%s", tail(s.log.String(), 20))
		}
		return nil
	})

	agentDir := filepath.Join(t.TempDir(), "agent")
	a := &agentProc{name: "joined", dataDir: agentDir, args: []string{"agent", "--runtime", "sim", "--node-name", "joined",
		"--server", "https://" + listen, "--token", token, "--data-dir", agentDir, "--listen", "127.0.0.1:0"}}
	startAgentProc(t, a)
	cs := s.clientset(t)
	waitFor(t, 60*time.Second, func() error {
		if ready, err := nodeReady(cs, "joined"); err != nil || !ready {
			return fmt.Errorf("node joined not Ready (%v); agent log:\n%s", err, tail(a.log.String(), 20))
		}
		return nil
	})

	// Its identity is a certificate, and nothing of the admin's is in its dir.
	certPEM := readFileString(t, filepath.Join(agentDir, "pki", "node.crt"))
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		t.Fatal("no node certificate in the agent's data dir")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:joined" || strings.Join(cert.Subject.Organization, ",") != "system:nodes" {
		t.Errorf("node certificate subject %v", cert.Subject)
	}
	adminToken := strings.TrimSpace(readFileString(t, filepath.Join(dir, "admin.token")))
	_ = filepath.WalkDir(agentDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, []byte(adminToken)) {
			t.Errorf("%s holds the admin token", path)
		}
		return nil
	})
	for path, want := range map[string]os.FileMode{agentDir: 0o700, filepath.Join(agentDir, "pki"): 0o700, filepath.Join(agentDir, "pki", "node.key"): 0o600, dir: 0o700, filepath.Join(dir, "node-token"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, want)
		}
	}

	// Secret data and credentials never reach the logs: a secret consumed
	// by a pod's environment on the joined node.
	const sentinel = "s3cr3t-sentinel-value"
	s.mustKubectl(t, "create", "secret", "generic", "creds", "--from-literal=password="+sentinel)
	pod := filepath.Join(t.TempDir(), "pod.yaml")
	writeFile(t, pod, `apiVersion: v1
kind: Pod
metadata: {name: uses-secret}
spec:
  nodeName: joined
  containers:
  - name: c
    image: example.local/web:1.0
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
`)
	s.mustKubectl(t, "apply", "-f", pod)
	waitFor(t, 60*time.Second, func() error {
		out, err := s.kubectl(t, "get", "pod", "uses-secret", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return fmt.Errorf("pod uses-secret: %q %v", out, err)
		}
		return nil
	})
	if events := s.mustKubectl(t, "get", "events", "-A", "-o", "yaml"); strings.Contains(events, sentinel) {
		t.Error("an event holds the secret's data")
	}
	keyPEM := strings.TrimSpace(readFileString(t, filepath.Join(agentDir, "pki", "node.key")))
	for what, secret := range map[string]string{"secret data": sentinel, "admin token": adminToken, "node key": keyPEM} {
		for name, log := range map[string]string{"server": s.log.String(), "agent": a.log.String()} {
			if strings.Contains(log, secret) {
				t.Errorf("the %s log holds the %s", name, what)
			}
		}
	}

	// A flood from the node's identity, with a client that does not retry.
	nodeCfg := &rest.Config{Host: "https://" + listen}
	nodeCfg.TLSClientConfig = rest.TLSClientConfig{CAFile: filepath.Join(agentDir, "pki", "ca.crt"),
		CertFile: filepath.Join(agentDir, "pki", "node.crt"), KeyFile: filepath.Join(agentDir, "pki", "node.key")}
	client, err := rest.HTTPClientFor(nodeCfg)
	if err != nil {
		t.Fatal(err)
	}
	var ok200, tooMany, badRetryAfter atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 48; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(nodeCfg.Host + "/api/v1/nodes/joined")
				if err != nil {
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok200.Add(1)
				case http.StatusTooManyRequests:
					tooMany.Add(1)
					if resp.Header.Get("Retry-After") == "" {
						badRetryAfter.Add(1)
					}
				}
			}
		}()
	}
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopFlood)
	waitFor(t, 60*time.Second, func() error {
		if tooMany.Load() < 20 {
			return fmt.Errorf("%d requests got 429 so far (%d got 200)", tooMany.Load(), ok200.Load())
		}
		return nil
	})
	// The admin's kubectl works during the flood.
	for i := 0; i < 3; i++ {
		out := s.mustKubectl(t, "get", "nodes", "joined", "-o", "name")
		if strings.TrimSpace(out) != "node/joined" {
			t.Errorf("admin kubectl during the flood: %q", out)
		}
	}
	flooding := tooMany.Load()
	stopFlood()
	t.Logf("flood: %d answered 200, %d answered 429 (%d while kubectl ran)", ok200.Load(), tooMany.Load(), tooMany.Load()-flooding)
	if ok200.Load() == 0 || badRetryAfter.Load() != 0 {
		t.Errorf("flood: %d 200s, %d 429s without Retry-After", ok200.Load(), badRetryAfter.Load())
	}

	// Rotation: the old token no longer joins.
	out, err := exec.Command(droverBin, "server", "rotate-node-token", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "K10") || strings.TrimSpace(string(out)) == token {
		t.Fatalf("rotate-node-token: %v %q", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	late := exec.CommandContext(ctx, droverBin, "agent", "--runtime", "sim", "--node-name", "late", "--server", "https://"+listen,
		"--token", token, "--data-dir", filepath.Join(t.TempDir(), "late"), "--listen", "127.0.0.1:0")
	msg, err := late.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "401") {
		t.Errorf("agent with the rotated-out token: %v\n%s", err, tail(string(msg), 5))
	}
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
