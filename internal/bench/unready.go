package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// describeUnready says, for a run that did not finish, where the pods that
// are not Ready stand: how many per phase and Ready reason, on how many
// nodes, and a few of them. It reads with a context of its own, since the
// run's has ended; "" when it cannot tell.
func describeUnready(client kubernetes.Interface, namespace string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf(" (listing pods: %v)", err)
	}
	return summarizeUnready(pods.Items)
}

// summarizeUnready is describeUnready's pure part.
func summarizeUnready(pods []corev1.Pod) string {
	states := map[string]int{}
	nodes := map[string]bool{}
	var examples []string
	for i := range pods {
		p := &pods[i]
		if podReady(p) {
			continue
		}
		reason := "no Ready condition"
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				reason = fmt.Sprintf("Ready=%s %s", c.Status, c.Reason)
			}
		}
		state := fmt.Sprintf("%s, %s", p.Status.Phase, reason)
		if p.DeletionTimestamp != nil {
			state += ", deleting"
		}
		states[state]++
		nodes[p.Spec.NodeName] = true
		if len(examples) < 3 {
			examples = append(examples, fmt.Sprintf("%s on %q rv %s", p.Name, p.Spec.NodeName, p.ResourceVersion))
		}
	}
	if len(states) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; not Ready, on %d nodes:", len(nodes))
	for _, k := range slices.Sorted(maps.Keys(states)) {
		fmt.Fprintf(&b, " %d %q;", states[k], k)
	}
	fmt.Fprintf(&b, " e.g. %s", strings.Join(examples, ", "))
	return b.String()
}
