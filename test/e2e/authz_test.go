package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMintedKubeconfigAndCanI mints a kubeconfig for a user bound to view
// in one namespace, and checks with the real kubectl that the user can
// read there, not write, not elsewhere, and that `auth can-i` agrees.
func TestMintedKubeconfigAndCanI(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, freeAddr(t))
	s.mustKubectl(t, "create", "namespace", "team")
	s.mustKubectl(t, "create", "configmap", "cfg", "-n", "team", "--from-literal=k=v")

	jane := filepath.Join(t.TempDir(), "jane.kubeconfig")
	mint := exec.Command(droverBin, "kubeconfig", "--data-dir", dir, "--user", "jane", "--group", "qa",
		"--clusterrole", "view", "--namespace", "team", "-o", jane)
	if out, err := mint.CombinedOutput(); err != nil {
		t.Fatalf("drover kubeconfig: %v\n%s", err, out)
	} else if !strings.Contains(string(out), `rolebinding team/jane-view: ClusterRole view to user jane created`) {
		t.Errorf("drover kubeconfig said:\n%s", out)
	}
	if fi, err := os.Stat(jane); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("minted kubeconfig: %v %v", fi, err)
	}

	as := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(droverBin, append([]string{"kubectl", "--kubeconfig", jane}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}

	// The binding reaches the authorizer's cache within moments.
	waitFor(t, 10*time.Second, func() error {
		if out, code := as("get", "configmap", "cfg", "-n", "team"); code != 0 {
			return &kubectlErr{out}
		}
		return nil
	})
	if out, code := as("create", "configmap", "x", "-n", "team"); code == 0 ||
		!strings.Contains(out, `configmaps is forbidden: User "jane" cannot create resource "configmaps" in API group "" in the namespace "team"`) {
		t.Errorf("jane creates a config map (%d):\n%s", code, out)
	}
	if out, code := as("get", "pods", "-n", "default"); code == 0 || !strings.Contains(out, "forbidden") {
		t.Errorf("jane lists pods in default (%d):\n%s", code, out)
	}
	for _, q := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "pods", "-n", "team"}, "yes"},
		{[]string{"watch", "deployments.apps", "-n", "team"}, "yes"},
		{[]string{"create", "configmaps", "-n", "team"}, "no"},
		{[]string{"get", "secrets", "-n", "team"}, "no"},
		{[]string{"list", "pods", "-n", "default"}, "no"},
		{[]string{"create", "rolebindings.rbac.authorization.k8s.io", "-n", "team"}, "no"},
	} {
		out, _ := as(append([]string{"auth", "can-i"}, q.args...)...)
		if got := strings.TrimSpace(out); got != q.want {
			t.Errorf("can-i %s = %q, want %q", strings.Join(q.args, " "), got, q.want)
		}
	}
	out, _ := as("auth", "can-i", "--list", "-n", "team")
	expectLines(t, "can-i --list", out, `^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs$`, `^pods\s+\[\]\s+\[\]\s+\[get list watch\]$`)

	// The admin can do anything.
	if out := strings.TrimSpace(s.mustKubectl(t, "auth", "can-i", "*", "*")); out != "yes" {
		t.Errorf("admin can-i '*' '*' = %q", out)
	}

	// RBAC objects are applied and created as kubectl users do.
	manifest := filepath.Join(t.TempDir(), "rbac.yaml")
	writeFile(t, manifest, `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-writer, namespace: team}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: jane-cm-writer, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-writer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}
`)
	out = s.mustKubectl(t, "apply", "-f", manifest)
	expectLines(t, "apply rbac", out, `^role.rbac.authorization.k8s.io/cm-writer created$`, `^rolebinding.rbac.authorization.k8s.io/jane-cm-writer created$`)
	waitFor(t, 10*time.Second, func() error {
		if out, code := as("create", "configmap", "x", "-n", "team"); code != 0 {
			return &kubectlErr{out}
		}
		return nil
	})
	out = s.mustKubectl(t, "create", "clusterrole", "pod-reader", "--verb=get,list", "--resource=pods")
	expectLines(t, "create clusterrole", out, `^clusterrole.rbac.authorization.k8s.io/pod-reader created$`)

	// RBAC objects print as upstream's tables.
	out = s.mustKubectl(t, "get", "clusterroles")
	expectLines(t, "get clusterroles", out, `^NAME\s+CREATED AT$`, `^cluster-admin\s+\d{4}-\d\d-\d\dT`, `^view\s+`, `^system:discovery\s+`)
	out = s.mustKubectl(t, "get", "rolebindings", "-n", "team")
	expectLines(t, "get rolebindings", out, `^NAME\s+ROLE\s+AGE$`, `^jane-view\s+ClusterRole/view\s+\S+$`)
	out = s.mustKubectl(t, "get", "clusterrolebindings", "-o", "wide")
	expectLines(t, "get clusterrolebindings -o wide", out, `^cluster-admin\s+ClusterRole/cluster-admin\s+\S+\s+system:masters`)
}

type kubectlErr struct{ out string }

func (e *kubectlErr) Error() string { return e.out }
