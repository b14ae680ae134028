package registry

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestLease(t *testing.T) {
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease", CreationTimestamp: ago(time.Hour)},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptrTo("node-1"), LeaseDurationSeconds: ptrTo(int32(40))},
	}
	requireNoErrors(t, create(Leases(), l))
	if row := cells(t, Leases(), l); row[0] != "node-1" || row[1] != "60m" {
		t.Errorf("row = %v", row)
	}
	if row := cells(t, Leases(), &coordinationv1.Lease{}); row[0] != "" {
		t.Errorf("HOLDER of an unheld lease = %q", row[0])
	}
	l.Spec.LeaseDurationSeconds = ptrTo(int32(0))
	l.Spec.LeaseTransitions = ptrTo(int32(-1))
	errs := create(Leases(), l)
	requireError(t, errs, "spec.leaseDurationSeconds", field.ErrorTypeInvalid)
	requireError(t, errs, "spec.leaseTransitions", field.ErrorTypeInvalid)
}

func TestEndpointSlice(t *testing.T) {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "default"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.1"}}, {Addresses: []string{"10.0.0.2"}}, {Addresses: []string{"10.0.0.3"}}, {Addresses: []string{"10.0.0.4"}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptrTo("http"), Port: ptrTo(int32(80))}, {Name: ptrTo("https"), Port: ptrTo(int32(443))}},
	}
	requireNoErrors(t, create(EndpointSlices(), es))
	if p := es.Ports[0].Protocol; p == nil || *p != corev1.ProtocolTCP {
		t.Errorf("port protocol = %v", p)
	}
	row := cells(t, EndpointSlices(), es)
	if row[0] != "IPv4" || row[1] != "80,443" || row[2] != "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..." {
		t.Errorf("row = %v", row)
	}
	if row := cells(t, EndpointSlices(), &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4}); row[1] != "<unset>" || row[2] != "<unset>" {
		t.Errorf("empty row = %v", row)
	}

	bad := es.DeepCopy()
	bad.AddressType = discoveryv1.AddressTypeIPv6
	bad.Endpoints[1].Addresses = nil
	bad.Ports[1].Name = ptrTo("http")
	errs := create(EndpointSlices(), bad)
	requireError(t, errs, "endpoints[0].addresses[0]", field.ErrorTypeInvalid)
	requireError(t, errs, "endpoints[1].addresses", field.ErrorTypeRequired)
	requireError(t, errs, "ports[1].name", field.ErrorTypeDuplicate)
	requireError(t, update(EndpointSlices(), bad, es), "addressType", field.ErrorTypeInvalid)
	requireError(t, create(EndpointSlices(), &discoveryv1.EndpointSlice{}), "addressType", field.ErrorTypeRequired)

	moved := es.DeepCopy()
	moved.Endpoints = moved.Endpoints[:1]
	requireNoErrors(t, update(EndpointSlices(), moved, es))
	if moved.Generation != es.Generation+1 {
		t.Errorf("generation %d after endpoint change from %d", moved.Generation, es.Generation)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	two := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 9},
	}
	requireNoErrors(t, create(PodDisruptionBudgets(), pdb))
	if pdb.Status.DisruptionsAllowed != 0 || pdb.Generation != 1 {
		t.Errorf("create: status %+v generation %d", pdb.Status, pdb.Generation)
	}
	pdb.Status.DisruptionsAllowed = 1
	if row := cells(t, PodDisruptionBudgets(), pdb); row[0] != "2" || row[1] != "N/A" || row[2] != int64(1) {
		t.Errorf("row = %v", row)
	}

	both := pdb.DeepCopy()
	both.Spec.MaxUnavailable = ptrTo(intstr.FromString("10%"))
	requireError(t, create(PodDisruptionBudgets(), both), "spec", field.ErrorTypeInvalid)
	over := pdb.DeepCopy()
	over.Spec.MinAvailable = ptrTo(intstr.FromString("120%"))
	requireError(t, create(PodDisruptionBudgets(), over), "spec.minAvailable", field.ErrorTypeInvalid)
	neg := pdb.DeepCopy()
	neg.Spec.MinAvailable = nil
	neg.Spec.MaxUnavailable = ptrTo(intstr.FromInt32(-1))
	requireError(t, create(PodDisruptionBudgets(), neg), "spec.maxUnavailable", field.ErrorTypeInvalid)
	policy := pdb.DeepCopy()
	policy.Spec.UnhealthyPodEvictionPolicy = ptrTo(policyv1.UnhealthyPodEvictionPolicyType("Never"))
	requireError(t, create(PodDisruptionBudgets(), policy), "spec.unhealthyPodEvictionPolicy", field.ErrorTypeNotSupported)

	status := pdb.DeepCopy()
	status.Status.DisruptionsAllowed = -1
	requireError(t, PodDisruptionBudgets().ValidateStatus(status, pdb), "status.disruptionsAllowed", field.ErrorTypeInvalid)
}
