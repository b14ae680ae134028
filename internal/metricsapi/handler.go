package metricsapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Prefix is the path under which Handler serves; mount it there.
const Prefix = "/apis/" + GroupName

var (
	groupVersion = metricsv1beta1.SchemeGroupVersion
	nodesGR      = schema.GroupResource{Group: GroupName, Resource: "nodes"}
	podsGR       = schema.GroupResource{Group: GroupName, Resource: "pods"}
)

// APIGroup is the metrics.k8s.io entry of the /apis discovery document.
func APIGroup() metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: groupVersion.String(), Version: groupVersion.Version}
	return metav1.APIGroup{
		TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:             GroupName,
		Versions:         []metav1.GroupVersionForDiscovery{v},
		PreferredVersion: v,
	}
}

// APIResourceList is the discovery document of metrics.k8s.io/v1beta1,
// the same as metrics-server's.
func APIResourceList() metav1.APIResourceList {
	verbs := metav1.Verbs{"get", "list"}
	return metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: groupVersion.String(),
		APIResources: []metav1.APIResource{
			{Name: "nodes", Namespaced: false, Kind: "NodeMetrics", Verbs: verbs},
			{Name: "pods", Namespaced: true, Kind: "PodMetrics", Verbs: verbs},
		},
	}
}

// Handler serves the metrics API and its group's discovery documents
// under Prefix. Requests before the informers have synced get 503.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	if r.Method != http.MethodGet {
		writeError(w, apierrors.NewMethodNotSupported(podsGR, strings.ToLower(r.Method)))
		return
	}
	switch {
	case len(parts) == 0:
		writeJSON(w, http.StatusOK, APIGroup())
		return
	case parts[0] != groupVersion.Version:
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	case len(parts) == 1:
		writeJSON(w, http.StatusOK, APIResourceList())
		return
	}
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		writeError(w, apierrors.NewMethodNotSupported(podsGR, "watch"))
		return
	}
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("invalid labelSelector: %v", err)))
		return
	}
	fsel, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("invalid fieldSelector: %v", err)))
		return
	}
	select {
	case <-s.synced:
	default:
		writeError(w, apierrors.NewServiceUnavailable("the metrics API is starting"))
		return
	}
	p := parts[1:]
	switch {
	case len(p) == 1 && p[0] == "nodes":
		s.listNodes(w, r, sel, fsel)
	case len(p) == 2 && p[0] == "nodes":
		s.getNode(w, r, p[1])
	case len(p) == 1 && p[0] == "pods":
		s.listPods(w, r, "", sel, fsel)
	case len(p) == 3 && p[0] == "namespaces" && p[2] == "pods":
		s.listPods(w, r, p[1], sel, fsel)
	case len(p) == 4 && p[0] == "namespaces" && p[2] == "pods":
		s.getPod(w, r, p[1], p[3])
	default:
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
	}
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, sel labels.Selector, fsel fields.Selector) {
	nodes, err := s.nodes.List(sel)
	if err != nil {
		writeError(w, apierrors.NewInternalError(err))
		return
	}
	list := metricsv1beta1.NodeMetricsList{
		TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: groupVersion.String()},
		Items:    []metricsv1beta1.NodeMetrics{},
	}
	now := time.Now()
	s.mu.RLock()
	for _, n := range nodes {
		if !fsel.Matches(fields.Set{"metadata.name": n.Name}) {
			continue
		}
		if pt, ok := s.nodePts[n.Name]; ok {
			list.Items = append(list.Items, nodeMetrics(n, pt, now))
		}
	}
	s.mu.RUnlock()
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	if wantsTable(r) {
		writeJSON(w, http.StatusOK, nodeTable(list.Items))
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, name string) {
	n, err := s.nodes.Get(name)
	if err != nil {
		writeError(w, apierrors.NewNotFound(nodesGR, name))
		return
	}
	s.mu.RLock()
	pt, ok := s.nodePts[name]
	s.mu.RUnlock()
	if !ok {
		writeError(w, apierrors.NewNotFound(nodesGR, name))
		return
	}
	m := nodeMetrics(n, pt, time.Now())
	if wantsTable(r) {
		writeJSON(w, http.StatusOK, nodeTable([]metricsv1beta1.NodeMetrics{m}))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) listPods(w http.ResponseWriter, r *http.Request, ns string, sel labels.Selector, fsel fields.Selector) {
	var pods []*corev1.Pod
	var err error
	if ns == "" {
		pods, err = s.pods.List(sel)
	} else {
		pods, err = s.pods.Pods(ns).List(sel)
	}
	if err != nil {
		writeError(w, apierrors.NewInternalError(err))
		return
	}
	list := metricsv1beta1.PodMetricsList{
		TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: groupVersion.String()},
		Items:    []metricsv1beta1.PodMetrics{},
	}
	now := time.Now()
	s.mu.RLock()
	for _, p := range pods {
		if !fsel.Matches(fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace}) {
			continue
		}
		if pt, ok := s.podPointLocked(p); ok {
			list.Items = append(list.Items, podMetrics(p, pt, now))
		}
	}
	s.mu.RUnlock()
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	if wantsTable(r) {
		writeJSON(w, http.StatusOK, podTable(list.Items))
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getPod(w http.ResponseWriter, r *http.Request, ns, name string) {
	p, err := s.pods.Pods(ns).Get(name)
	if err != nil {
		writeError(w, apierrors.NewNotFound(podsGR, ns+"/"+name))
		return
	}
	s.mu.RLock()
	pt, ok := s.podPointLocked(p)
	s.mu.RUnlock()
	if !ok {
		writeError(w, apierrors.NewNotFound(podsGR, ns+"/"+name))
		return
	}
	m := podMetrics(p, pt, time.Now())
	if wantsTable(r) {
		writeJSON(w, http.StatusOK, podTable([]metricsv1beta1.PodMetrics{m}))
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// podPointLocked finds a running pod's point on its node; a point of an
// older pod of the same name (another UID) does not count.
func (s *Server) podPointLocked(p *corev1.Pod) (podPoint, bool) {
	if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning {
		return podPoint{}, false
	}
	pt, ok := s.podPts[p.Spec.NodeName][podKey{p.Namespace, p.Name}]
	if !ok || (pt.UID != "" && pt.UID != string(p.UID)) {
		return podPoint{}, false
	}
	return pt, true
}

// cpuQuantity is nanocores as metrics-server writes them ("250000000n"
// until canonicalized).
func cpuQuantity(nano uint64) resource.Quantity {
	return *resource.NewScaledQuantity(int64(nano), resource.Nano)
}

func memQuantity(bytes uint64) resource.Quantity {
	return *resource.NewQuantity(int64(bytes), resource.BinarySI)
}

func nodeMetrics(n *corev1.Node, pt nodePoint, now time.Time) metricsv1beta1.NodeMetrics {
	return metricsv1beta1.NodeMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: groupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: metav1.NewTime(now)},
		Timestamp:  metav1.NewTime(pt.Timestamp),
		Window:     metav1.Duration{Duration: pt.Window},
		Usage: corev1.ResourceList{
			corev1.ResourceCPU:    cpuQuantity(pt.CPUNano),
			corev1.ResourceMemory: memQuantity(pt.Memory),
		},
	}
}

func podMetrics(p *corev1.Pod, pt podPoint, now time.Time) metricsv1beta1.PodMetrics {
	m := metricsv1beta1.PodMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "PodMetrics", APIVersion: groupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: metav1.NewTime(now)},
		Timestamp:  metav1.NewTime(pt.Timestamp),
		Window:     metav1.Duration{Duration: pt.Window},
		Containers: make([]metricsv1beta1.ContainerMetrics, 0, len(pt.Containers)),
	}
	for _, c := range pt.Containers {
		m.Containers = append(m.Containers, metricsv1beta1.ContainerMetrics{
			Name: c.Name,
			Usage: corev1.ResourceList{
				corev1.ResourceCPU:    cpuQuantity(c.CPUNano),
				corev1.ResourceMemory: memQuantity(c.Memory),
			},
		})
	}
	return m
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.ErrStatus
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), st)
}

// wantsTable says whether the client (kubectl get) asks for a Table.
func wantsTable(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "as=Table")
}

// podTable is `kubectl get podmetrics` as metrics-server prints it: name,
// each resource summed over containers, window.
func podTable(items []metricsv1beta1.PodMetrics) metav1.Table {
	t := usageTable()
	for i := range items {
		sum := corev1.ResourceList{}
		for _, c := range items[i].Containers {
			for k, v := range c.Usage {
				q := sum[k]
				q.Add(v)
				sum[k] = q
			}
		}
		t.Rows = append(t.Rows, usageRow(items[i].Name, sum, items[i].Window.Duration, &items[i]))
	}
	return t
}

// nodeTable is `kubectl get nodemetrics`.
func nodeTable(items []metricsv1beta1.NodeMetrics) metav1.Table {
	t := usageTable()
	for i := range items {
		t.Rows = append(t.Rows, usageRow(items[i].Name, items[i].Usage, items[i].Window.Duration, &items[i]))
	}
	return t
}

func usageTable() metav1.Table {
	return metav1.Table{
		TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name", Description: "Name of the resource"},
			{Name: "cpu", Type: "string", Format: "quantity"},
			{Name: "memory", Type: "string", Format: "quantity"},
			{Name: "Window", Type: "string", Format: "duration"},
		},
		Rows: []metav1.TableRow{},
	}
}

func usageRow(name string, usage corev1.ResourceList, window time.Duration, obj runtime.Object) metav1.TableRow {
	return metav1.TableRow{
		Cells:  []any{name, usage.Cpu().String(), usage.Memory().String(), window.String()},
		Object: runtime.RawExtension{Object: obj},
	}
}
