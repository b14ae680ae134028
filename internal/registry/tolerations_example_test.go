package registry_test

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/drover/drover/internal/registry"
)

// The API server gives every new pod short tolerations of the not-ready and
// unreachable NoExecute taints, so the pods of a dead node move after
// DefaultTolerationSeconds; a pod's own tolerations are kept.
func ExampleAddDefaultTolerations() {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{
		Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
	}}}}
	registry.AddDefaultTolerations(pod, registry.DefaultTolerationSeconds)
	for _, t := range pod.Spec.Tolerations {
		if t.TolerationSeconds == nil {
			fmt.Printf("%s: for ever\n", t.Key)
			continue
		}
		fmt.Printf("%s: %ds\n", t.Key, *t.TolerationSeconds)
	}
	// Output:
	// node.kubernetes.io/unreachable: for ever
	// node.kubernetes.io/not-ready: 5s
}
