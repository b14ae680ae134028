package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/sim"
	"github.com/drover/drover/internal/testenv"
)

func TestEndpointState(t *testing.T) {
	yes, no := true, false
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p1"}}
	ep := func(uid string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, TargetRef: &corev1.ObjectReference{UID: types.UID(uid)}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	other := ep("p2", &yes)
	for name, tc := range map[string]struct {
		eps           []discoveryv1.Endpoint
		listed, ready bool
	}{
		"absent":          {[]discoveryv1.Endpoint{other}, false, false},
		"ready":           {[]discoveryv1.Endpoint{ep("p1", &yes)}, true, true},
		"ready unset":     {[]discoveryv1.Endpoint{ep("p1", nil)}, true, true},
		"terminating":     {[]discoveryv1.Endpoint{ep("p1", &no)}, true, false},
		"no target ref":   {[]discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}, false, false},
		"ready elsewhere": {[]discoveryv1.Endpoint{ep("p1", &no), ep("p1", &yes)}, true, true},
	} {
		listed, ready := endpointState([]discoveryv1.EndpointSlice{{Endpoints: tc.eps}}, pod)
		if listed != tc.listed || ready != tc.ready {
			t.Errorf("%s: listed %v ready %v, want %v %v", name, listed, ready, tc.listed, tc.ready)
		}
	}
}

// TestTerminatingBackendLeavesEndpointsBeforeItStops deletes a pod that an
// EndpointSlice lists as ready: its container keeps running until the
// slice marks it not ready, and EndpointDrainDelay after that it stops.
func TestTerminatingBackendLeavesEndpointsBeforeItStops(t *testing.T) {
	env := testenv.Start(t)
	rt := sim.New(sim.Config{})
	const delay = 300 * time.Millisecond
	startAgent(t, env, rt, Config{EndpointDrainDelay: delay})
	ctx := context.Background()
	grace := int64(30)
	p := simPod("backend", nil)
	p.Spec.TerminationGracePeriodSeconds = &grace
	createPod(t, env, p)
	pod := waitPod(t, env, "backend", 30*time.Second, podReady)

	yes := true
	slices := env.Kube.DiscoveryV1().EndpointSlices("default")
	slice, err := slices.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "svc-1"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{pod.Status.PodIP}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod.Name, UID: pod.UID},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := func() int {
		state := runtime.ContainerRunning
		cs, err := rt.ListContainers(ctx, runtime.ContainerFilter{State: &state})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	if err := env.Kube.CoreV1().Pods("default").Delete(ctx, "backend", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The agent has begun terminating once it says so in an event.
	testenv.Eventually(t, 10*time.Second, func() error {
		evs, err := env.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=Killing"})
		if err != nil || len(evs.Items) == 0 {
			return fmt.Errorf("no Killing event yet (%v)", err)
		}
		return nil
	})
	if n := running(); n != 1 {
		t.Fatalf("%d containers running while the pod is still a ready endpoint, want 1", n)
	}
	no := false
	slice.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: &no, Serving: &yes, Terminating: &yes}
	if _, err := slices.Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	flipped := time.Now()
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, err := env.Kube.CoreV1().Pods("default").Get(ctx, "backend", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod still there (%v)", err)
		}
		return nil
	})
	if took := time.Since(flipped); took < delay {
		t.Errorf("pod stopped %v after leaving its endpoints, want at least the drain delay %v", took, delay)
	}
}
