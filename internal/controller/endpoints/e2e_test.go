package endpoints_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/drover/drover/internal/controller/endpoints"
	"github.com/drover/drover/internal/testenv"
	"github.com/drover/drover/internal/testenv/nodesim"
)

const (
	ns = "default"
	// manualNode is a node no simulation runs: tests set the status of
	// its pods themselves, and nothing finishes their deletion.
	manualNode = "manual"
)

type cluster struct {
	env  *testenv.Env
	kube kubernetes.Interface
	ctx  context.Context
	ips  int
}

// start runs an API server, simulated nodes n1 and n2 (binding pods
// without a node), and, once before has run, the controllers with opts.
func start(t testing.TB, opts endpoints.Options, before func(c *cluster)) *cluster {
	t.Helper()
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	log := testenv.Logger(t)
	_, err := nodesim.Start(ctx, env.Kube, nodesim.Options{Nodes: []string{"n1", "n2"}, Bind: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{env: env, kube: env.Kube, ctx: ctx}
	if _, err := env.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: manualNode}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(c)
	}
	wg.Go(func() {
		if err := endpoints.Run(ctx, env.Kube, log, opts); err != nil {
			t.Errorf("endpoints.Run: %v", err)
		}
	})
	return c
}

func service(name string, target intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"team": "t"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: target}},
		},
	}
}

func (c *cluster) createService(t testing.TB, svc *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := c.kube.CoreV1().Services(ns).Create(c.ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pod is a pod of app app (simulated: bound, run and readied by nodesim).
func pod(name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "web:1",
			Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}},
		}}},
	}
}

func (c *cluster) createPod(t testing.TB, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := c.kube.CoreV1().Pods(ns).Create(c.ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manualPod creates a pod on the manual node and gives it an IP, running,
// with the given readiness.
func (c *cluster) manualPod(t testing.TB, name, app string, ready bool) *corev1.Pod {
	t.Helper()
	p := pod(name, app)
	p.Spec.NodeName = manualNode
	created := c.createPod(t, p)
	c.ips++
	ip := fmt.Sprintf("10.250.%d.%d", c.ips/250, c.ips%250+1)
	created.Status.Phase = corev1.PodRunning
	created.Status.PodIP, created.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	return c.setReady(t, created, ready)
}

func (c *cluster) setReady(t testing.TB, p *corev1.Pod, ready bool) *corev1.Pod {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p = p.DeepCopy()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	out, err := c.kube.CoreV1().Pods(ns).UpdateStatus(c.ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) endpoints(name string) (*corev1.Endpoints, error) {
	return c.kube.CoreV1().Endpoints(ns).Get(c.ctx, name, metav1.GetOptions{})
}

func (c *cluster) slices(t testing.TB, name string) []discoveryv1.EndpointSlice {
	t.Helper()
	list, err := c.kube.DiscoveryV1().EndpointSlices(ns).List(c.ctx, metav1.ListOptions{
		LabelSelector: labels.Set{discoveryv1.LabelServiceName: name}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// addressNames returns the pod names of an Endpoints' ready and not
// ready addresses, sorted.
func addressNames(ep *corev1.Endpoints) (ready, notReady []string) {
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			ready = append(ready, a.TargetRef.Name)
		}
		for _, a := range s.NotReadyAddresses {
			notReady = append(notReady, a.TargetRef.Name)
		}
	}
	sort.Strings(ready)
	sort.Strings(notReady)
	return ready, notReady
}

// waitEndpoints waits until the service's Endpoints list these pods.
func (c *cluster) waitEndpoints(t testing.TB, name string, ready, notReady []string) *corev1.Endpoints {
	t.Helper()
	var ep *corev1.Endpoints
	testenv.Eventually(t, 20*time.Second, func() error {
		var err error
		if ep, err = c.endpoints(name); err != nil {
			return err
		}
		r, nr := addressNames(ep)
		if !slices.Equal(r, ready) || !slices.Equal(nr, notReady) {
			return fmt.Errorf("endpoints %s: ready %v not ready %v; want %v and %v", name, r, nr, ready, notReady)
		}
		return nil
	})
	return ep
}

type conds struct{ ready, serving, terminating bool }

func (c conds) String() string {
	return fmt.Sprintf("ready=%v serving=%v terminating=%v", c.ready, c.serving, c.terminating)
}

// sliceState returns, per pod, the conditions of its endpoint in the
// service's slices.
func (c *cluster) sliceState(t testing.TB, name string) map[string]conds {
	out := map[string]conds{}
	for _, es := range c.slices(t, name) {
		for _, ep := range es.Endpoints {
			c := ep.Conditions
			out[ep.TargetRef.Name] = conds{*c.Ready, *c.Serving, *c.Terminating}
		}
	}
	return out
}

func (c *cluster) waitSlices(t testing.TB, name string, want map[string]conds) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		got := c.sliceState(t, name)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("slices of %s: %v, want %v", name, got, want)
		}
		return nil
	})
}

func TestEndpointsFollowPods(t *testing.T) {
	c := start(t, endpoints.Options{}, nil)
	svc := c.createService(t, service("web", intstr.FromInt32(8080)))
	for _, name := range []string{"a", "b", "c"} {
		c.createPod(t, pod(name, "web"))
	}
	c.createPod(t, pod("other", "db")) // not selected

	ep := c.waitEndpoints(t, "web", []string{"a", "b", "c"}, nil)
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Ports) != 1 || ep.Subsets[0].Ports[0].Port != 8080 || ep.Subsets[0].Ports[0].Name != "http" {
		t.Errorf("subsets = %+v", ep.Subsets)
	}
	for _, a := range ep.Subsets[0].Addresses {
		if a.NodeName == nil || (*a.NodeName != "n1" && *a.NodeName != "n2") || a.TargetRef.Kind != "Pod" || a.TargetRef.UID == "" || a.TargetRef.Namespace != ns || a.IP == "" {
			t.Errorf("address %+v (targetRef %+v)", a, a.TargetRef)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, ep.Annotations[corev1.EndpointsLastChangeTriggerTime]); err != nil {
		t.Errorf("trigger time annotation: %v (annotations %v)", err, ep.Annotations)
	}
	if ep.Labels["team"] != "t" || ep.Labels[endpoints.LabelEndpointsManagedBy] != endpoints.EndpointsControllerName || len(ep.OwnerReferences) != 0 {
		t.Errorf("endpoints labels %v owners %v: want the service's labels and no owner", ep.Labels, ep.OwnerReferences)
	}
	ready := conds{true, true, false}
	c.waitSlices(t, "web", map[string]conds{"a": ready, "b": ready, "c": ready})
	sl := c.slices(t, "web")
	if len(sl) != 1 {
		t.Fatalf("%d slices, want 1", len(sl))
	}
	es := sl[0]
	ref := metav1.GetControllerOf(&es)
	if ref == nil || ref.UID != svc.UID || ref.Kind != "Service" || ref.APIVersion != "v1" {
		t.Errorf("slice controller ref = %+v, want the service", ref)
	}
	if es.AddressType != discoveryv1.AddressTypeIPv4 || es.Labels[discoveryv1.LabelManagedBy] != endpoints.ControllerName || es.Labels["team"] != "t" {
		t.Errorf("slice type %s labels %v", es.AddressType, es.Labels)
	}
	if len(es.Ports) != 1 || *es.Ports[0].Port != 8080 || *es.Ports[0].Name != "http" || *es.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("slice ports %+v", es.Ports)
	}

	// An unready pod is a not-ready address.
	slow := pod("slow", "web")
	slow.Annotations = map[string]string{nodesim.NeverReady: "true"}
	c.createPod(t, slow)
	c.waitEndpoints(t, "web", []string{"a", "b", "c"}, []string{"slow"})
	c.waitSlices(t, "web", map[string]conds{"a": ready, "b": ready, "c": ready, "slow": {false, false, false}})

	// A deleted pod leaves (the simulation finishes its graceful deletion).
	if err := c.kube.CoreV1().Pods(ns).Delete(c.ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitEndpoints(t, "web", []string{"b", "c"}, []string{"slow"})
	c.waitSlices(t, "web", map[string]conds{"b": ready, "c": ready, "slow": {false, false, false}})

	// A pod whose labels stop matching leaves.
	patch := []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`)
	if _, err := c.kube.CoreV1().Pods(ns).Patch(c.ctx, "b", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitEndpoints(t, "web", []string{"c"}, []string{"slow"})
	if sl := c.slices(t, "web"); len(sl) != 1 || sl[0].Name != es.Name {
		t.Errorf("slices %v: want the first slice updated in place", sl)
	}
}

func TestTerminatingPod(t *testing.T) {
	c := start(t, endpoints.Options{}, nil)
	c.createService(t, service("web", intstr.FromInt32(8080)))
	c.manualPod(t, "keep", "web", true)
	c.manualPod(t, "going", "web", true)
	c.waitEndpoints(t, "web", []string{"going", "keep"}, nil)
	ready := conds{true, true, false}
	c.waitSlices(t, "web", map[string]conds{"keep": ready, "going": ready})

	// Graceful deletion: nobody finishes it on the manual node, so the pod
	// stays terminating. It leaves Endpoints at once and stays in the
	// slice as terminating, still serving, not ready.
	if err := c.kube.CoreV1().Pods(ns).Delete(c.ctx, "going", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitEndpoints(t, "web", []string{"keep"}, nil)
	c.waitSlices(t, "web", map[string]conds{"keep": ready, "going": {false, true, true}})

	// Its readiness drops while terminating.
	going, err := c.kube.CoreV1().Pods(ns).Get(c.ctx, "going", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.setReady(t, going, false)
	c.waitSlices(t, "web", map[string]conds{"keep": ready, "going": {false, false, true}})

	// Deletion finished: gone from the slice too.
	zero := int64(0)
	if err := c.kube.CoreV1().Pods(ns).Delete(c.ctx, "going", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	c.waitSlices(t, "web", map[string]conds{"keep": ready})

	// Readiness flips move the address both ways.
	keep, err := c.kube.CoreV1().Pods(ns).Get(c.ctx, "keep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keep = c.setReady(t, keep, false)
	c.waitEndpoints(t, "web", nil, []string{"keep"})
	c.setReady(t, keep, true)
	c.waitEndpoints(t, "web", []string{"keep"}, nil)
}

func TestNamedTargetPort(t *testing.T) {
	c := start(t, endpoints.Options{}, nil)
	c.createService(t, service("web", intstr.FromString("web")))
	c.createPod(t, pod("a", "web"))
	b := pod("b", "web")
	b.Spec.Containers[0].Ports[0].ContainerPort = 9090
	c.createPod(t, b)
	noPort := pod("c", "web")
	noPort.Spec.Containers[0].Ports = nil
	c.createPod(t, noPort)

	var ep *corev1.Endpoints
	testenv.Eventually(t, 20*time.Second, func() error {
		var err error
		if ep, err = c.endpoints("web"); err != nil {
			return err
		}
		got := map[int32][]string{}
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				got[s.Ports[0].Port] = append(got[s.Ports[0].Port], a.TargetRef.Name)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(map[int32][]string{8080: {"a"}, 9090: {"b"}}) {
			return fmt.Errorf("addresses by port %v", got)
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		got := map[string]string{}
		for _, es := range c.slices(t, "web") {
			var ports []string
			for _, p := range es.Ports {
				ports = append(ports, fmt.Sprint(*p.Port))
			}
			for _, e := range es.Endpoints {
				got[e.TargetRef.Name] = fmt.Sprint(ports)
			}
		}
		// The pod without the port is an endpoint without ports, as upstream.
		want := map[string]string{"a": "[8080]", "b": "[9090]", "c": "[]"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("slice ports per pod %v, want %v", got, want)
		}
		return nil
	})
}

func TestServiceDeleted(t *testing.T) {
	c := start(t, endpoints.Options{}, nil)
	svc := c.createService(t, service("web", intstr.FromInt32(8080)))
	c.createPod(t, pod("a", "web"))
	c.waitEndpoints(t, "web", []string{"a"}, nil)
	c.waitSlices(t, "web", map[string]conds{"a": {true, true, false}})
	for _, es := range c.slices(t, "web") {
		ref := metav1.GetControllerOf(&es)
		if ref == nil || ref.UID != svc.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("slice %s owner %+v: the garbage collector deletes it with the service only through this reference", es.Name, ref)
		}
	}
	if err := c.kube.CoreV1().Services(ns).Delete(c.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		_, err := c.endpoints("web")
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("endpoints still there (err %v)", err)
	})

	// A new service of the same name starts afresh.
	svc2 := c.createService(t, service("web", intstr.FromInt32(8080)))
	c.waitEndpoints(t, "web", []string{"a"}, nil)
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, es := range c.slices(t, "web") {
			if ref := metav1.GetControllerOf(&es); ref == nil || ref.UID != svc2.UID {
				return fmt.Errorf("slice %s owned by %+v, want the new service", es.Name, ref)
			}
		}
		return nil
	})
}

func TestSelectorlessAndLeftovers(t *testing.T) {
	manual := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: ns},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}},
			Ports:     []corev1.EndpointPort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		}},
	}
	leftover := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "gone", Namespace: ns}}
	c := start(t, endpoints.Options{}, func(c *cluster) {
		// Before the controllers start: a selector-less service with its
		// user's endpoints, and endpoints whose service went meanwhile.
		ext := service("external", intstr.FromInt32(80))
		ext.Spec.Selector = nil
		c.createService(t, ext)
		for _, ep := range []*corev1.Endpoints{manual, leftover} {
			if _, err := c.kube.CoreV1().Endpoints(ns).Create(c.ctx, ep, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		if _, err := c.endpoints("gone"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("leftover endpoints still there (err %v)", err)
		}
		return nil
	})
	// A service with a selector synced since: the controllers have seen
	// the selector-less one too.
	c.createService(t, service("web", intstr.FromInt32(8080)))
	c.createPod(t, pod("a", "web"))
	c.waitEndpoints(t, "web", []string{"a"}, nil)
	ep, err := c.endpoints("external")
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "192.0.2.1" {
		t.Errorf("selector-less service's endpoints changed: %+v", ep.Subsets)
	}
	if sl := c.slices(t, "external"); len(sl) != 0 {
		t.Errorf("slices made for a selector-less service: %v", sl)
	}
}

func TestHeadlessPublishNotReady(t *testing.T) {
	c := start(t, endpoints.Options{}, nil)
	svc := service("db", intstr.FromInt32(8080))
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	svc.Spec.PublishNotReadyAddresses = true
	c.createService(t, svc)
	p := pod("db-0", "db")
	p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db"
	p.Annotations = map[string]string{nodesim.NeverReady: "true"}
	c.createPod(t, p)
	ep := c.waitEndpoints(t, "db", []string{"db-0"}, nil)
	if ep.Subsets[0].Addresses[0].Hostname != "db-0" {
		t.Errorf("hostname = %q", ep.Subsets[0].Addresses[0].Hostname)
	}
	if _, ok := ep.Labels[corev1.IsHeadlessService]; !ok {
		t.Errorf("labels %v lack %s", ep.Labels, corev1.IsHeadlessService)
	}
	c.waitSlices(t, "db", map[string]conds{"db-0": {true, false, false}})
}

func TestSlicesRepairedAndSplit(t *testing.T) {
	c := start(t, endpoints.Options{MaxEndpointsPerSlice: 2}, nil)
	c.createService(t, service("web", intstr.FromInt32(8080)))
	for i := range 5 {
		c.manualPod(t, fmt.Sprintf("p%d", i), "web", true)
	}
	ready := conds{true, true, false}
	all := map[string]conds{"p0": ready, "p1": ready, "p2": ready, "p3": ready, "p4": ready}
	// exactly checks every pod is in exactly one slice of at most 2.
	exactly := func(want map[string]conds, slices int) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, func() error {
			got := map[string]conds{}
			sl := c.slices(t, "web")
			for _, es := range sl {
				if len(es.Endpoints) > 2 {
					return fmt.Errorf("slice %s has %d endpoints", es.Name, len(es.Endpoints))
				}
				for _, ep := range es.Endpoints {
					if _, dup := got[ep.TargetRef.Name]; dup {
						return fmt.Errorf("pod %s in two slices", ep.TargetRef.Name)
					}
					cd := ep.Conditions
					got[ep.TargetRef.Name] = conds{*cd.Ready, *cd.Serving, *cd.Terminating}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(sl) != slices {
				return fmt.Errorf("%d slices with %v, want %d with %v", len(sl), got, slices, want)
			}
			return nil
		})
	}
	exactly(all, 3)

	// A slice deleted behind the controller's back comes back.
	sl := c.slices(t, "web")
	if err := c.kube.DiscoveryV1().EndpointSlices(ns).Delete(c.ctx, sl[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	exactly(all, 3)

	// A slice edited behind the controller's back is restored.
	sl = c.slices(t, "web")
	edited := sl[0].DeepCopy()
	edited.Endpoints = edited.Endpoints[:0]
	if _, err := c.kube.DiscoveryV1().EndpointSlices(ns).Update(c.ctx, edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	exactly(all, 3)

	// Endpoints deleted behind its back come back too.
	if err := c.kube.CoreV1().Endpoints(ns).Delete(c.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitEndpoints(t, "web", []string{"p0", "p1", "p2", "p3", "p4"}, nil)

	// Pods going empty slices, which are deleted.
	zero := int64(0)
	for _, name := range []string{"p0", "p1", "p2", "p3"} {
		if err := c.kube.CoreV1().Pods(ns).Delete(c.ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	exactly(map[string]conds{"p4": ready}, 1)
	c.waitEndpoints(t, "web", []string{"p4"}, nil)
}
