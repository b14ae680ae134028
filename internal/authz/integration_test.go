package authz_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/authz"
	"github.com/drover/drover/internal/testenv"
)

const wait = 10 * time.Second

// cluster is a test API server with the default authorizer, the bootstrap
// policy, and clients for a few identities.
type cluster struct {
	env     *testenv.Env
	clients map[string]kubernetes.Interface
}

var users = map[string]auth.User{
	"node-a": {Name: "system:node:a", Groups: []string{authz.NodesGroup}},
	"node-b": {Name: "system:node:b", Groups: []string{authz.NodesGroup}},
	"alice":  {Name: "alice"},
	"eve":    {Name: "eve", Groups: []string{"editors"}},
	"nobody": {Name: "nobody"},
	"adam":   {Name: "adam"},
}

func start(t *testing.T) *cluster {
	t.Helper()
	cache := authz.NewCache()
	tokens := map[string]auth.User{}
	for token, u := range users {
		tokens[token+"-token"] = u
	}
	authorizer := authz.Default(cache)
	env := testenv.StartWith(t, testenv.Options{Authorizer: authorizer, Admission: authz.NewAdmission(cache, authorizer), Users: tokens})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := cache.Start(ctx, env.Kube); err != nil {
		t.Fatal(err)
	}
	if err := authz.EnsureBootstrap(ctx, env.Kube); err != nil {
		t.Fatal(err)
	}
	// A second run finds everything and changes nothing.
	if err := authz.EnsureBootstrap(ctx, env.Kube); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	c := &cluster{env: env, clients: map[string]kubernetes.Interface{}}
	for name := range users {
		cfg := rest.CopyConfig(env.Config)
		cfg.BearerToken = name + "-token"
		c.clients[name] = kubernetes.NewForConfigOrDie(cfg)
	}
	return c
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: want 403, got %v", what, err)
	}
}

// eventually retries fn while it is refused: the authorizer reads from
// informers that follow the API by a few milliseconds.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	testenv.Eventually(t, wait, func() error {
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

func TestNodeIdentity(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	admin := c.env.Kube
	for _, n := range []string{"a", "b"} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"a-secret", "b-secret", "unrelated"} {
		if _, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(name, node, secret string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes:    []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}},
		}}
	}
	for _, p := range []*corev1.Pod{pod("web", "a", "a-secret"), pod("db", "b", "b-secret")} {
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	na := c.clients["node-a"]

	// Its own node: update and status.
	eventually(t, "update own node", func() error {
		n, err := na.CoreV1().Nodes().Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Labels = map[string]string{"zone": "z1"}
		if n, err = na.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
		_, err = na.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	// Another node: 403 in upstream's words.
	b, err := na.CoreV1().Nodes().Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Labels = map[string]string{"zone": "stolen"}
	_, err = na.CoreV1().Nodes().Update(ctx, b, metav1.UpdateOptions{})
	forbidden(t, "update node b", err)
	want := `nodes "b" is forbidden: User "system:node:a" cannot update resource "nodes" in API group "" at the cluster scope: node 'a' cannot modify node 'b'`
	if err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
	_, err = na.CoreV1().Nodes().UpdateStatus(ctx, b, metav1.UpdateOptions{})
	forbidden(t, "update node b status", err)
	forbidden(t, "delete node b", na.CoreV1().Nodes().Delete(ctx, "b", metav1.DeleteOptions{}))

	// Its pods' status; not another node's pods.
	eventually(t, "update status of own pod", func() error {
		p, err := na.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status.Phase = corev1.PodRunning
		_, err = na.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	db, err := na.CoreV1().Pods("default").Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db.Status.Phase = corev1.PodFailed
	_, err = na.CoreV1().Pods("default").UpdateStatus(ctx, db, metav1.UpdateOptions{})
	forbidden(t, "update status of node b's pod", err)
	forbidden(t, "delete node b's pod", na.CoreV1().Pods("default").Delete(ctx, "db", metav1.DeleteOptions{}))
	if _, err := na.CoreV1().Pods("default").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=a"}); err != nil {
		t.Errorf("list own pods: %v", err)
	}

	// Secrets its pods use, and no others.
	eventually(t, "get own pod's secret", func() error {
		_, err := na.CoreV1().Secrets("default").Get(ctx, "a-secret", metav1.GetOptions{})
		return err
	})
	_, err = na.CoreV1().Secrets("default").Get(ctx, "b-secret", metav1.GetOptions{})
	forbidden(t, "get node b's pod's secret", err)
	_, err = na.CoreV1().Secrets("default").Get(ctx, "unrelated", metav1.GetOptions{})
	forbidden(t, "get unrelated secret", err)
	_, err = na.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	forbidden(t, "list secrets", err)

	// No workloads.
	_, err = na.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
	forbidden(t, "list deployments", err)
	_, err = na.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"}}, metav1.CreateOptions{})
	forbidden(t, "create deployment", err)

	// Its lease; events.
	holder := "a"
	if _, err := na.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("create own lease: %v", err)
	}
	if _, err := na.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"}, Reason: "Started"}, metav1.CreateOptions{}); err != nil {
		t.Errorf("create event: %v", err)
	}

	// Deleting its own pod (the kubelet's final delete) is allowed.
	if err := na.CoreV1().Pods("default").Delete(ctx, "web", *metav1.NewDeleteOptions(0)); err != nil {
		t.Errorf("delete own pod: %v", err)
	}
}

func TestRolesViewEdit(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	admin := c.env.Kube
	c.env.CreateNamespace(t, "team")
	for _, b := range []*rbacv1.RoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "alice-view"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "editors"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "edit"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "editors"}}},
	} {
		if _, err := admin.RbacV1().RoleBindings("team").Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	alice, eve, nobody := c.clients["alice"], c.clients["eve"], c.clients["nobody"]

	// view: get, list, watch; not create, not elsewhere, not secrets.
	eventually(t, "alice lists pods", func() error {
		_, err := alice.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := alice.CoreV1().ConfigMaps("team").Get(ctx, "cfg", metav1.GetOptions{}); err != nil {
		t.Errorf("alice gets a config map: %v", err)
	}
	w, err := alice.CoreV1().ConfigMaps("team").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("alice watches config maps: %v", err)
	} else {
		w.Stop()
	}
	_, err = alice.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	forbidden(t, "alice creates a config map", err)
	_, err = alice.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{})
	forbidden(t, "alice lists secrets", err)
	_, err = alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	forbidden(t, "alice lists pods in default", err)
	_, err = alice.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	forbidden(t, "alice lists pods everywhere", err)

	// edit: workloads yes, RBAC no.
	eventually(t, "eve creates a config map", func() error {
		_, err := eve.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "eve"}}, metav1.CreateOptions{})
		return err
	})
	if _, err := eve.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("eve lists secrets: %v", err)
	}
	_, err = eve.RbacV1().Roles("team").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r"}}, metav1.CreateOptions{})
	forbidden(t, "eve creates a role", err)
	_, err = eve.RbacV1().RoleBindings("team").List(ctx, metav1.ListOptions{})
	forbidden(t, "eve lists role bindings", err)
	forbidden(t, "eve deletes a role binding", eve.RbacV1().RoleBindings("team").Delete(ctx, "alice-view", metav1.DeleteOptions{}))

	// Anyone authenticated may discover the API and ask what they may do.
	if _, err := nobody.Discovery().ServerGroups(); err != nil {
		t.Errorf("discovery as nobody: %v", err)
	}
	_, err = nobody.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
	forbidden(t, "nobody lists pods", err)

	// kubectl auth can-i: SelfSubjectAccessReview answers as the requests did.
	canI := func(client kubernetes.Interface, verb, group, resource, ns string) bool {
		t.Helper()
		r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Group: group, Resource: resource, Namespace: ns}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("can-i %s %s: %v", verb, resource, err)
		}
		return r.Status.Allowed
	}
	for _, q := range []struct {
		who                       string
		verb, group, resource, ns string
		want                      bool
	}{
		{"alice", "list", "", "pods", "team", true},
		{"alice", "watch", "", "configmaps", "team", true},
		{"alice", "create", "", "configmaps", "team", false},
		{"alice", "list", "", "pods", "default", false},
		{"eve", "create", "apps", "deployments", "team", true},
		{"eve", "create", "rbac.authorization.k8s.io", "roles", "team", false},
		{"nobody", "get", "", "pods", "team", false},
		{"node-a", "update", "", "nodes", "", false}, // no name: a node may only touch its own
	} {
		if got := canI(c.clients[q.who], q.verb, q.group, q.resource, q.ns); got != q.want {
			t.Errorf("%s can-i %s %s in %q = %v, want %v", q.who, q.verb, q.resource, q.ns, got, q.want)
		}
	}
	// kubectl auth can-i --list: SelfSubjectRulesReview lists view's rules in team.
	rr, err := alice.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "team"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listsPods, discovers := false, false
	for _, r := range rr.Status.ResourceRules {
		for _, res := range r.Resources {
			listsPods = listsPods || (res == "pods" && slices.Contains(r.Verbs, "list"))
		}
	}
	for _, r := range rr.Status.NonResourceRules {
		discovers = discovers || slices.Contains(r.NonResourceURLs, "/apis/*")
	}
	if !listsPods || !discovers || rr.Status.Incomplete {
		t.Errorf("alice's rules in team: %+v", rr.Status)
	}

	// The admin asks about someone else.
	sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "eve", Groups: []string{"editors"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "delete", Resource: "pods", Namespace: "team"}}}, metav1.CreateOptions{})
	if err != nil || !sar.Status.Allowed || sar.Status.Reason == "" {
		t.Errorf("SubjectAccessReview for eve = %+v, %v", sar, err)
	}
	// A user may not ask about others unless granted.
	_, err = alice.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "eve", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods"}}}, metav1.CreateOptions{})
	forbidden(t, "alice reviews eve", err)
}

func TestNoEscalation(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	c.env.CreateNamespace(t, "team")
	if _, err := c.env.Kube.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "adam-admin"},
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "adam"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	adam := c.clients["adam"]
	role := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
		return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	}
	// A namespace admin may hand out what it holds...
	eventually(t, "adam creates a pod reader role", func() error {
		_, err := adam.RbacV1().Roles("team").Create(ctx, role("pod-reader",
			rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}), metav1.CreateOptions{})
		return err
	})
	if _, err := adam.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-view"},
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("adam binds view in team: %v", err)
	}
	// ...and nothing more.
	_, err := adam.RbacV1().Roles("team").Create(ctx, role("node-lister",
		rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}), metav1.CreateOptions{})
	forbidden(t, "adam creates an all-powerful role", err)
	if err == nil || !strings.Contains(err.Error(), `user "adam" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held`) {
		t.Errorf("message: %v", err)
	}
	_, err = adam.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "adam-root"},
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "adam"}}}, metav1.CreateOptions{})
	forbidden(t, "adam binds cluster-admin", err)
	// Growing an existing role is the same as creating it.
	r, err := adam.RbacV1().Roles("team").Get(ctx, "pod-reader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Rules = append(r.Rules, rbacv1.PolicyRule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"nodes"}})
	_, err = adam.RbacV1().Roles("team").Update(ctx, r, metav1.UpdateOptions{})
	forbidden(t, "adam grows a role beyond his rights", err)

	// The admin (system:masters) may escalate and bind anything.
	if _, err := c.env.Kube.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "root"}}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("admin binds cluster-admin: %v", err)
	}

	// A node creates only its own Node and Lease.
	na := c.clients["node-a"]
	_, err = na.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{})
	forbidden(t, "node a creates node b", err)
	if err == nil || !strings.Contains(err.Error(), `node "a" is not allowed to modify node "b"`) {
		t.Errorf("message: %v", err)
	}
	if _, err := na.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("node a creates node a: %v", err)
	}
	_, err = na.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{})
	forbidden(t, "node a creates node b's lease", err)
}
