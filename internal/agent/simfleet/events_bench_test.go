package simfleet

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/drover/drover/internal/testenv"
)

// BenchmarkEventCreate posts events through the typed client's sink and
// through the fleet's eventPoster, which does not decode the answers.
func BenchmarkEventCreate(b *testing.B) {
	env := testenv.Start(b)
	ctx := context.Background()
	seq := 0 // names stay unique across the benchmark's runs
	for _, tc := range []struct {
		name string
		sink record.EventSink
	}{
		{"typed", &typedcorev1.EventSinkImpl{Interface: env.Kube.CoreV1().Events("")}},
		{"poster", newEventPoster(ctx, env.Kube.CoreV1())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			now := metav1.Now()
			for range b.N {
				seq++
				ev := &corev1.Event{
					ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("p.%d", seq), Namespace: "default"},
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p", UID: "uid-p", APIVersion: "v1"},
					Reason:         "Started", Message: "Started container app", Type: corev1.EventTypeNormal, Count: 1,
					FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet", Host: "n"},
				}
				if _, err := tc.sink.Create(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
