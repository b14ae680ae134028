package agent

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/testenv"
)

// putPodStatus sends only the pod's identity and status: the stored pod
// gets the status and keeps its metadata and spec, and the returned
// resourceVersion is the stored one, whether the client speaks protobuf
// (the default) or JSON. A write as of an older resourceVersion conflicts.
func TestPutPodStatusKeepsTheRestOfThePod(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	jsonCfg := rest.CopyConfig(env.Config)
	jsonCfg.ContentType = "application/json"
	jsonClient, err := kubernetes.NewForConfig(jsonCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client kubernetes.Interface
	}{{"protobuf", env.Kube}, {"json", jsonClient}} {
		t.Run(tc.name, func(t *testing.T) {
			p := simPod("put-"+tc.name, map[string]string{"a": "1"})
			p.Labels = map[string]string{"app": "x"}
			p = createPod(t, env, p)
			status := corev1.PodStatus{
				Phase:  corev1.PodRunning,
				PodIP:  "10.1.2.3",
				PodIPs: []corev1.PodIP{{IP: "10.1.2.3"}},
				Conditions: []corev1.PodCondition{{
					Type: corev1.PodReady, Status: corev1.ConditionTrue,
					LastTransitionTime: metav1.Now().Rfc3339Copy(),
				}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "example.local/app:1"}},
			}
			rv, err := putPodStatus(ctx, tc.client, p, p.ResourceVersion, status)
			if err != nil {
				t.Fatal(err)
			}
			got, err := env.Kube.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rv != got.ResourceVersion || rv == p.ResourceVersion {
				t.Errorf("returned resourceVersion %q, stored %q (was %q)", rv, got.ResourceVersion, p.ResourceVersion)
			}
			if !apiequality.Semantic.DeepEqual(got.Status.Conditions, status.Conditions) ||
				got.Status.PodIP != status.PodIP || got.Status.Phase != status.Phase ||
				len(got.Status.ContainerStatuses) != 1 || !got.Status.ContainerStatuses[0].Ready {
				t.Errorf("stored status %+v, want %+v", got.Status, status)
			}
			if !apiequality.Semantic.DeepEqual(got.Spec, p.Spec) || got.Labels["app"] != "x" || got.Annotations["a"] != "1" || got.UID != p.UID {
				t.Errorf("the write changed the pod's spec or metadata: %+v", got.ObjectMeta)
			}
			if _, err := putPodStatus(ctx, tc.client, p, p.ResourceVersion, status); !apierrors.IsConflict(err) {
				t.Errorf("write as of a stale resourceVersion: %v, want a conflict", err)
			}
		})
	}
}
