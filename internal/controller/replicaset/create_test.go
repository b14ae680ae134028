package replicaset

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

// TestPodCreatorSendsTypedCreate: each of a podCreator's creations is the
// typed protobuf client's Create request byte for byte (whatever content
// type the client is configured for), and returns the name the server
// generated; a refused create is the same API error.
func TestPodCreatorSendsTypedCreate(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web", "tier": "front"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	ref := &testenv.Recorder{}
	typed, err := ref.Client(t, env.Config, true).CoreV1().Pods("default").Create(ctx, pod.DeepCopy(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := ref.Sent()[0]
	for _, proto := range []bool{true, false} {
		t.Run(fmt.Sprintf("protobuf=%v", proto), func(t *testing.T) {
			rec := &testenv.Recorder{}
			creator, err := newPodCreator(rec.Client(t, env.Config, proto), "default", pod)
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{typed.Name: true}
			for range 2 {
				name, err := creator.create(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got, err := env.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("the pod create named %q: %v", name, err)
				}
				if names[got.Name] || got.GenerateName != "web-" || got.Labels["tier"] != "front" {
					t.Errorf("created %q (generateName %q, labels %v) after %v: want another generated name, the template's labels", got.Name, got.GenerateName, got.Labels, names)
				}
				names[got.Name] = true
			}
			sent := rec.Sent()
			if len(sent) != 2 {
				t.Fatalf("%d requests sent, want 2", len(sent))
			}
			for _, b := range sent {
				if !b.Equal(want) {
					t.Errorf("create sent %s %s (Content-Type %q, Accept %q, User-Agent %q, %d bytes), want the typed Create's %s %s (%q, %q, %q, %d bytes)",
						b.Method, b.URL, b.ContentType, b.Accept, b.UserAgent, len(b.Body), want.Method, want.URL, want.ContentType, want.Accept, want.UserAgent, len(want.Body))
				}
			}
		})
	}
	invalid := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "Not_Valid"}}
	creator, err := newPodCreator(env.Kube, "default", invalid)
	if err != nil {
		t.Fatal(err)
	}
	_, err = creator.create(ctx)
	_, wantErr := env.Kube.CoreV1().Pods("default").Create(ctx, invalid, metav1.CreateOptions{})
	if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
		t.Errorf("invalid pod: create's error %v, want the typed Create's %v", err, wantErr)
	}
}
