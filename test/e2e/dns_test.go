package e2e

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/image"
)

const dnsManifest = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: ` + image.WebImage + `
        imagePullPolicy: Never
        args: ["-version=backend"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: shop}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: ` + image.WebImage + `
        imagePullPolicy: Never
        args: ["-version=client"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
`

// TestClusterDNSOnCRI checks the cluster DNS with real containers on
// `drover up --runtime cri`: a pod resolves another namespace-mate
// Service by its full name <svc>.<ns>.svc.cluster.local, by <svc>.<ns>
// and by its short name (the search path in the resolv.conf the agent
// gives it), gets the Service's cluster IP, and reaches the backend
// through it (the iptables proxy); a missing service's name is not found.
func TestClusterDNSOnCRI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	up, dir := startCRIUp(t, ctx, "cri-dns", "10.248.0.0/24")
	t.Cleanup(func() {
		if _, err := up.kubectl(t, "delete", "namespace", "shop", "--wait=true", "--timeout=60s"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	tar, err := image.BuildPackage(ctx, image.WebPackage, image.WebImage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	importImages(t, ctx, dir, tar)
	path := filepath.Join(t.TempDir(), "shop.yaml")
	writeFile(t, path, dnsManifest)
	up.mustKubectl(t, "apply", "-f", path)
	for _, d := range []string{"backend", "client"} {
		up.mustKubectl(t, "rollout", "status", "-n", "shop", "deployment/"+d, "--timeout=2m")
	}
	cs := up.clientset(t)
	svc, err := cs.CoreV1().Services("shop").Get(ctx, "backend", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=client"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("client pod: %v %v", pods, err)
	}
	client := pods.Items[0]
	if client.Status.PodIP == "" || client.Status.Phase != corev1.PodRunning {
		t.Fatalf("client pod %s: %s, IP %q", client.Name, client.Status.Phase, client.Status.PodIP)
	}
	ask := func(path string, q url.Values) (string, int, error) {
		u := fmt.Sprintf("http://%s:8080%s?%s", client.Status.PodIP, path, q.Encode())
		resp, err := insecureClient.Get(u)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), resp.StatusCode, err
	}
	for _, name := range []string{"backend.shop.svc.cluster.local", "backend.shop", "backend"} {
		// The DNS may still be binding the gateway address the bridge
		// got with the first pod: a first query can time out.
		waitFor(t, 30*time.Second, func() error {
			addrs, code, err := ask("/lookup", url.Values{"host": {name}})
			if err != nil || code != 200 || addrs != svc.Spec.ClusterIP {
				return fmt.Errorf("lookup %s in pod %s: %d %q %v, want the cluster IP %s", name, client.Name, code, addrs, err, svc.Spec.ClusterIP)
			}
			return nil
		})
		body, code, err := ask("/fetch", url.Values{"url": {"http://" + name + "/"}})
		if err != nil || code != 200 || !strings.HasPrefix(body, "backend ") {
			t.Errorf("GET http://%s/ from pod %s: %d %q %v, want the backend's answer", name, client.Name, code, body, err)
		}
	}
	if out, code, err := ask("/lookup", url.Values{"host": {"nosuch.shop.svc.cluster.local"}}); err != nil || code != 502 || !strings.Contains(out, "no such host") {
		t.Errorf("lookup of a missing service: %d %q %v, want no such host", code, out, err)
	}
}

// TestNodeRunsOnWhenDNSCannotListen gives `drover up` a cluster DNS
// address that is not on this machine: the node still registers and runs
// pods, and the log says clearly why there is no DNS.
func TestNodeRunsOnWhenDNSCannotListen(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "the cluster DNS is served only as root")
	}
	up := startControlPlane(t, "up", t.TempDir(), freeAddr(t), "--runtime", "process", "--node-name", "no-dns",
		"--agent-listen", freeAddr(t), "--node-ip", "127.0.0.1", "--pod-subnet", "127.80.0.0/16",
		"--proxy-mode", "none", "--cluster-dns", "192.0.2.99")
	cs := up.clientset(t)
	waitFor(t, time.Minute, func() error {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), "no-dns", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node no-dns not Ready: %+v", n.Status.Conditions)
	})
	waitFor(t, 30*time.Second, func() error {
		if log := up.log.String(); !strings.Contains(log, "cluster DNS cannot serve") || !strings.Contains(log, "192.0.2.99:53") {
			return fmt.Errorf("no word of the DNS failing to listen on 192.0.2.99:53:\n%s", tail(log, 30))
		}
		return nil
	})
	if !strings.Contains(up.log.String(), "no service proxy, cluster DNS 192.0.2.99:53") {
		t.Errorf("drover up did not say what it serves:\n%s", tail(up.log.String(), 40))
	}
}
