package registry

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	requireNoErrors(t, create(Namespaces(), ns))
	if ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("phase = %s, want Active", ns.Status.Phase)
	}
	if len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Errorf("finalizers = %v, want [kubernetes]", ns.Spec.Finalizers)
	}
	if ns.Labels[namespaceNameLabel] != "team-a" {
		t.Errorf("labels = %v", ns.Labels)
	}

	for _, name := range []string{"team.a", "Team", strings.Repeat("a", 64)} {
		bad := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		requireError(t, create(Namespaces(), bad), "metadata.name", field.ErrorTypeInvalid)
	}

	// Finalizers change only through /finalize.
	upd := ns.DeepCopy()
	upd.Spec.Finalizers = nil
	requireNoErrors(t, update(Namespaces(), upd, ns))
	if len(upd.Spec.Finalizers) != 1 {
		t.Errorf("update changed finalizers: %v", upd.Spec.Finalizers)
	}
	bad := ns.DeepCopy()
	bad.Spec.Finalizers = []corev1.FinalizerName{"not a finalizer!"}
	requireError(t, ValidateNamespaceFinalize(bad), "spec.finalizers[0]", field.ErrorTypeInvalid)

	st := ns.DeepCopy()
	st.Status.Phase = corev1.NamespaceTerminating
	requireError(t, Namespaces().ValidateStatus(st, ns), "status.phase", field.ErrorTypeInvalid)
	deleting := ns.DeepCopy()
	deleting.DeletionTimestamp = ptrTo(ago(time.Second))
	requireNoErrors(t, Namespaces().ValidateStatus(st, deleting))

	ns.CreationTimestamp = ago(90 * time.Second)
	if row := cells(t, Namespaces(), ns); row[0] != "Active" || row[1] != "90s" {
		t.Errorf("row = %v", row)
	}
	if got := Namespaces().SelectableFields(ns)["status.phase"]; got != "Active" {
		t.Errorf("status.phase field = %q", got)
	}
}

func newNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{
			"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "true",
		}},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.5"}, {Type: corev1.NodeHostName, Address: "node-1"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian GNU/Linux 13", KernelVersion: "6.12.0", ContainerRuntimeVersion: "containerd://2.1.0"},
		},
	}
}

func TestNode(t *testing.T) {
	n := newNode()
	requireNoErrors(t, create(Nodes(), n))
	if q := n.Status.Allocatable[corev1.ResourceCPU]; q.String() != "4" {
		t.Errorf("allocatable not defaulted from capacity: %v", n.Status.Allocatable)
	}

	tests := []struct {
		name   string
		mutate func(*corev1.Node)
		path   string
		typ    field.ErrorType
	}{
		{"pod CIDR", func(n *corev1.Node) { n.Spec.PodCIDR = "10.244.0.0" }, "spec.podCIDR", field.ErrorTypeInvalid},
		{"taint without effect", func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k"}} }, "spec.taints[0].effect", field.ErrorTypeRequired},
		{"taint effect", func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Evict"}} }, "spec.taints[0].effect", field.ErrorTypeNotSupported},
		{"duplicate taint", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}, {Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
		}, "spec.taints[1]", field.ErrorTypeDuplicate},
		{"address type", func(n *corev1.Node) { n.Status.Addresses[0].Type = "Public" }, "status.addresses[0].type", field.ErrorTypeNotSupported},
		{"negative capacity", func(n *corev1.Node) { n.Status.Capacity[corev1.ResourceCPU] = resource.MustParse("-1") }, "status.capacity[cpu]", field.ErrorTypeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode()
			tt.mutate(n)
			requireError(t, create(Nodes(), n), tt.path, tt.typ)
		})
	}

	old := newNode()
	old.Spec.PodCIDR = "10.244.1.0/24"
	moved := old.DeepCopy()
	moved.Spec.PodCIDR = "10.244.2.0/24"
	requireError(t, update(Nodes(), moved, old), "spec.podCIDR", field.ErrorTypeInvalid)

	n = newNode()
	n.CreationTimestamp = ago(10 * 24 * time.Hour)
	row := cells(t, Nodes(), n)
	want := []interface{}{"Ready", "control-plane,worker", "10d", "v1.37.2", "192.168.1.5", "<none>", "Debian GNU/Linux 13", "6.12.0", "containerd://2.1.0"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("%s = %#v, want %#v", Nodes().TableColumns[i].Name, row[i], want[i])
		}
	}
	n.Spec.Unschedulable = true
	n.Status.Conditions[0].Status = corev1.ConditionUnknown
	if got := cells(t, Nodes(), n)[0]; got != "NotReady,SchedulingDisabled" {
		t.Errorf("STATUS = %v", got)
	}
	n.Status.Conditions = nil
	n.Labels = nil
	if row := cells(t, Nodes(), n); row[0] != "Unknown,SchedulingDisabled" || row[1] != "<none>" {
		t.Errorf("STATUS/ROLES = %v/%v", row[0], row[1])
	}
	if got := Nodes().SelectableFields(n)["spec.unschedulable"]; got != "true" {
		t.Errorf("spec.unschedulable = %q", got)
	}
}

func TestEndpoints(t *testing.T) {
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "10.0.0.3"}, {IP: "10.0.0.4"}},
			Ports:     []corev1.EndpointPort{{Port: 8080}},
		}},
	}
	requireNoErrors(t, create(Endpoints(), ep))
	if ep.Subsets[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Error("port protocol not defaulted")
	}
	if got := cells(t, Endpoints(), ep)[0]; got != "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..." {
		t.Errorf("ENDPOINTS = %q", got)
	}
	if got := cells(t, Endpoints(), &corev1.Endpoints{})[0]; got != "<none>" {
		t.Errorf("empty ENDPOINTS = %q", got)
	}

	bad := ep.DeepCopy()
	bad.Subsets[0].Addresses[1].IP = "nope"
	bad.Subsets[0].Ports = append(bad.Subsets[0].Ports, corev1.EndpointPort{Port: 0, Protocol: corev1.ProtocolTCP})
	errs := create(Endpoints(), bad)
	requireError(t, errs, "subsets[0].addresses[1].ip", field.ErrorTypeInvalid)
	requireError(t, errs, "subsets[0].ports[1].port", field.ErrorTypeInvalid)
	requireError(t, errs, "subsets[0].ports[0].name", field.ErrorTypeRequired)
}

func TestEvent(t *testing.T) {
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.17a", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", Namespace: "default", FieldPath: "spec.containers{web}"},
		Reason:         "Pulled", Message: " pulled image \n", Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(2 * time.Minute), Count: 3,
	}
	requireNoErrors(t, create(Events(), ev))

	r := Events()
	if !r.OwnNameColumn {
		t.Fatal("events lay out their own name column")
	}
	row := cells(t, r, ev)
	want := []interface{}{"2m", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, node-1", "pulled image", "10m", int64(3), "web.17a"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("%s = %#v, want %#v", r.TableColumns[i].Name, row[i], want[i])
		}
	}
	for _, c := range r.TableColumns {
		wantWide := map[string]bool{"Subobject": true, "Source": true, "First Seen": true, "Count": true, "Name": true}[c.Name]
		if (c.Priority == 1) != wantWide {
			t.Errorf("column %s priority %d", c.Name, c.Priority)
		}
	}

	newer := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "x", Namespace: "default"},
		InvolvedObject:      corev1.ObjectReference{Kind: "Node", Name: "node-1"},
		EventTime:           metav1.NewMicroTime(testNow.Add(-30 * time.Second)),
		ReportingController: "drover/scheduler",
	}
	row = cells(t, r, newer)
	if row[0] != "30s" || row[3] != "node/node-1" || row[5] != "drover/scheduler" || row[8] != int64(1) {
		t.Errorf("new-style event row = %v", row)
	}

	f := r.SelectableFields(ev)
	for k, v := range map[string]string{"involvedObject.kind": "Pod", "involvedObject.name": "web", "involvedObject.namespace": "default", "reason": "Pulled", "source": "kubelet", "type": "Normal"} {
		if f[k] != v {
			t.Errorf("field %s = %q, want %q", k, f[k], v)
		}
	}

	missing := ev.DeepCopy()
	missing.InvolvedObject = corev1.ObjectReference{}
	errs := create(Events(), missing)
	requireError(t, errs, "involvedObject.kind", field.ErrorTypeRequired)
	requireError(t, errs, "involvedObject.name", field.ErrorTypeRequired)
	wrongNS := ev.DeepCopy()
	wrongNS.InvolvedObject.Namespace = "other"
	requireError(t, create(Events(), wrongNS), "involvedObject.namespace", field.ErrorTypeInvalid)
	badType := ev.DeepCopy()
	badType.Type = "Info"
	requireError(t, create(Events(), badType), "type", field.ErrorTypeNotSupported)
}

func TestConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"},
		Data:       map[string]string{"app.conf": "x", "LEVEL": "debug"},
		BinaryData: map[string][]byte{"logo.png": {1, 2}},
	}
	requireNoErrors(t, create(ConfigMaps(), cm))
	if got := cells(t, ConfigMaps(), cm)[0]; got != int64(3) {
		t.Errorf("DATA = %v", got)
	}

	bad := cm.DeepCopy()
	bad.Data["bad/key"] = "x"
	bad.Data["logo.png"] = "dup"
	errs := create(ConfigMaps(), bad)
	requireError(t, errs, "data[bad/key]", field.ErrorTypeInvalid)
	requireError(t, errs, "data[logo.png]", field.ErrorTypeInvalid)

	big := &corev1.ConfigMap{Data: map[string]string{"big": strings.Repeat("x", maxDataSize+1)}}
	requireError(t, create(ConfigMaps(), big), "data", field.ErrorTypeTooLong)

	frozen := cm.DeepCopy()
	frozen.Immutable = ptrTo(true)
	changed := frozen.DeepCopy()
	changed.Data["LEVEL"] = "info"
	changed.Immutable = ptrTo(false)
	errs = update(ConfigMaps(), changed, frozen)
	requireError(t, errs, "data", field.ErrorTypeForbidden)
	requireError(t, errs, "immutable", field.ErrorTypeForbidden)
}

func TestSecret(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"}, Data: map[string][]byte{"password": []byte("x")}}
	requireNoErrors(t, create(Secrets(), s))
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q", s.Type)
	}
	if row := cells(t, Secrets(), s); row[0] != "Opaque" || row[1] != int64(1) {
		t.Errorf("row = %v", row)
	}
	if got := Secrets().SelectableFields(s)["type"]; got != "Opaque" {
		t.Errorf("type field = %q", got)
	}

	tlsSecret := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: []byte("c")}}
	requireError(t, create(Secrets(), tlsSecret), "data[tls.key]", field.ErrorTypeRequired)
	badKey := &corev1.Secret{Data: map[string][]byte{"../x": nil}}
	requireError(t, create(Secrets(), badKey), "data[../x]", field.ErrorTypeInvalid)
	sat := &corev1.Secret{Type: corev1.SecretTypeServiceAccountToken}
	requireError(t, create(Secrets(), sat), "metadata.annotations[kubernetes.io/service-account.name]", field.ErrorTypeRequired)

	retyped := s.DeepCopy()
	retyped.Type = corev1.SecretTypeBasicAuth
	retyped.Data = map[string][]byte{corev1.BasicAuthUsernameKey: []byte("u")}
	requireError(t, update(Secrets(), retyped, s), "type", field.ErrorTypeInvalid)
}

func TestServiceAccount(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}, Secrets: []corev1.ObjectReference{{Name: "tok"}}}
	requireNoErrors(t, create(ServiceAccounts(), sa))
	if row := cells(t, ServiceAccounts(), sa); row[0] != int64(1) {
		t.Errorf("SECRETS = %v", row[0])
	}
	sa.ImagePullSecrets = []corev1.LocalObjectReference{{}}
	requireError(t, create(ServiceAccounts(), sa), "imagePullSecrets[0].name", field.ErrorTypeRequired)
}
