package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	metaGet        = metav1.GetOptions{}
	insecureClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
)

// expectLines checks that every pattern matches some line of out.
func expectLines(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile("(?m)" + p).MatchString(out) {
			t.Errorf("%s: no line matches %q in:\n%s", what, p, out)
		}
	}
}

func TestKubectlWorkflow(t *testing.T) {
	s := startServer(t, t.TempDir(), freeAddr(t))
	ctx := context.Background()
	cs := s.clientset(t)

	if code := httpGetCode("https://" + s.listen + "/api/v1/namespaces"); code != http.StatusUnauthorized {
		t.Errorf("request without credentials: %d, want 401", code)
	}

	out := s.mustKubectl(t, "apply", "-f", "testdata/shop.yaml")
	expectLines(t, "apply", out,
		`^namespace/shop created$`, `^deployment.apps/web created$`, `^service/web created$`,
		`^configmap/web-config created$`, `^secret/web-secret created$`)

	out = s.mustKubectl(t, "get", "deployments", "-n", "shop")
	expectLines(t, "get deployments", out, `^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$`, `^web\s+0/2\s+\d\s+0\s+\S+$`) // no nodes: nothing ready
	out = s.mustKubectl(t, "get", "svc,cm,secret", "-n", "shop")
	expectLines(t, "get svc,cm,secret", out, `^service/web\s+ClusterIP\s`, `^configmap/web-config\s+1\s`, `^secret/web-secret\s+Opaque\s+1\s`)
	out = s.mustKubectl(t, "get", "ns")
	expectLines(t, "get ns", out, `^NAME\s+STATUS\s+AGE$`, `^default\s+Active\s`, `^kube-system\s+Active\s`, `^kube-node-lease\s+Active\s`, `^shop\s+Active\s`)

	out = s.mustKubectl(t, "get", "deployment", "web", "-n", "shop", "-o", "yaml")
	expectLines(t, "get -o yaml", out, `^kind: Deployment$`, `^  replicas: 2$`, `kubectl.kubernetes.io/last-applied-configuration`, `^    app: web$`)
	out = s.mustKubectl(t, "get", "deployment", "web", "-n", "shop", "-o", "json")
	var d appsv1.Deployment
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("-o json: %v", err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "example.local/web:1.0" {
		t.Errorf("-o json: %+v", d.Spec)
	}

	out = s.mustKubectl(t, "describe", "deployment", "web", "-n", "shop")
	expectLines(t, "describe", out, `^Name:\s+web$`, `^Namespace:\s+shop$`, `^Selector:\s+app=web$`, `^Replicas:\s+2 desired`, `^StrategyType:\s+RollingUpdate$`)

	expectLines(t, "label", s.mustKubectl(t, "label", "deployment", "web", "-n", "shop", "tier=front"), `^deployment.apps/web labeled$`)
	expectLines(t, "annotate", s.mustKubectl(t, "annotate", "deployment", "web", "-n", "shop", "owner=team-a"), `^deployment.apps/web annotated$`)
	expectLines(t, "patch strategic", s.mustKubectl(t, "patch", "deployment", "web", "-n", "shop", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"example.local/web:2.0"}]}}}}`), `^deployment.apps/web patched$`)
	expectLines(t, "patch merge", s.mustKubectl(t, "patch", "configmap", "web-config", "-n", "shop", "--type", "merge", "-p", `{"data":{"extra":"1"}}`), `^configmap/web-config patched$`)
	expectLines(t, "patch json", s.mustKubectl(t, "patch", "service", "web", "-n", "shop", "--type", "json", "-p", `[{"op":"add","path":"/metadata/labels","value":{"exposed":"yes"}}]`), `^service/web patched$`)

	got, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metaGet)
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["tier"] != "front" || got.Annotations["owner"] != "team-a" || got.Spec.Template.Spec.Containers[0].Image != "example.local/web:2.0" || len(got.Spec.Template.Spec.Containers) != 1 {
		t.Errorf("after label/annotate/patch: labels %v annotations %v containers %+v", got.Labels, got.Annotations, got.Spec.Template.Spec.Containers)
	}
	if got.Generation != 2 {
		t.Errorf("generation %d after one spec change, want 2", got.Generation)
	}
	if cm, _ := cs.CoreV1().ConfigMaps("shop").Get(ctx, "web-config", metaGet); cm.Data["extra"] != "1" || cm.Data["greeting"] != "hello" {
		t.Errorf("merge patch: %v", cm.Data)
	}
	if svc, _ := cs.CoreV1().Services("shop").Get(ctx, "web", metaGet); svc.Labels["exposed"] != "yes" {
		t.Errorf("json patch: %v", svc.Labels)
	}

	// replace: the edit-equivalent round trip through a file.
	yamlOut := s.mustKubectl(t, "get", "configmap", "web-config", "-n", "shop", "-o", "yaml")
	edited := strings.Replace(yamlOut, "greeting: hello", "greeting: hallo", 1)
	path := t.TempDir() + "/cm.yaml"
	writeFile(t, path, edited)
	expectLines(t, "replace", s.mustKubectl(t, "replace", "-f", path), `^configmap/web-config replaced$`)
	// The same file again carries a stale resourceVersion: 409.
	if out, err := s.kubectl(t, "replace", "-f", path); err == nil || !strings.Contains(out, "the object has been modified") {
		t.Errorf("stale replace: err %v, out %s", err, out)
	}

	expectLines(t, "scale", s.mustKubectl(t, "scale", "deployment", "web", "-n", "shop", "--replicas=5"), `^deployment.apps/web scaled$`)
	if out := s.mustKubectl(t, "get", "deployment", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}"); out != "5" {
		t.Errorf("replicas after scale: %q", out)
	}

	out = s.mustKubectl(t, "apply", "-f", "testdata/shop-changed.yaml")
	// A Secret written with stringData is always "configured", as upstream
	// (kubernetes/kubernetes#87736): the live object holds only data.
	expectLines(t, "apply changed", out, `^namespace/shop unchanged$`, `^deployment.apps/web configured$`, `^service/web unchanged$`, `^configmap/web-config configured$`, `^secret/web-secret configured$`)
	got, _ = cs.AppsV1().Deployments("shop").Get(ctx, "web", metaGet)
	if *got.Spec.Replicas != 3 {
		t.Errorf("replicas after re-apply: %d, want 3", *got.Spec.Replicas)
	}
	if cm, _ := cs.CoreV1().ConfigMaps("shop").Get(ctx, "web-config", metaGet); cm.Data["greeting"] != "bonjour" {
		t.Errorf("configmap after re-apply: %v", cm.Data)
	}

	// Invalid input: 422 naming the field, nothing stored.
	out, err = s.kubectl(t, "apply", "-f", "testdata/invalid.yaml")
	if err == nil || !strings.Contains(out, "Invalid value") || !strings.Contains(out, "spec.template.metadata.labels") || !strings.Contains(out, "selector` does not match template `labels`") {
		t.Errorf("invalid apply: err %v out %s", err, out)
	}
	if _, err := cs.AppsV1().Deployments("default").Get(ctx, "broken", metaGet); !apierrors.IsNotFound(err) {
		t.Errorf("invalid deployment was stored: %v", err)
	}
	out, err = s.kubectl(t, "apply", "-f", "testdata/malformed.yaml")
	if err == nil || !strings.Contains(strings.ToLower(out), "error") {
		t.Errorf("malformed apply: err %v out %s", err, out)
	}

	// The namespace comes first in the file, so the namespace controller may
	// remove its contents before kubectl reaches them: not-found is fine.
	out = s.mustKubectl(t, "delete", "-f", "testdata/shop-changed.yaml", "--ignore-not-found")
	expectLines(t, "delete", out, `^namespace "shop" deleted`)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metaGet); !apierrors.IsNotFound(err) {
		t.Errorf("namespace shop still exists after delete: %v", err)
	}
}
