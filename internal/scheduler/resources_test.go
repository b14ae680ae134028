package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	rl := func(cpu, mem string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}
	}
	tests := []struct {
		name      string
		spec      corev1.PodSpec
		want      Resources
		wantScore Resources
	}{
		{
			name:      "no requests: zero, scored with defaults",
			spec:      corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}},
			want:      Resources{},
			wantScore: Resources{MilliCPU: 200, Memory: 2 * DefaultMemoryRequest},
		},
		{
			name: "containers sum; init containers max (upstream's example)",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "i1", Resources: rl("2", "1G")}, {Name: "i2", Resources: rl("2", "3G")}},
				Containers:     []corev1.Container{{Name: "c1", Resources: rl("2", "1G")}, {Name: "c2", Resources: rl("1", "1G")}},
			},
			want:      Resources{MilliCPU: 3000, Memory: 3e9},
			wantScore: Resources{MilliCPU: 3000, Memory: 3e9},
		},
		{
			name: "sidecars add up and run beside later init containers",
			spec: corev1.PodSpec{
				InitContainers: []corev1.Container{
					{Name: "side", Resources: rl("1", "1G"), RestartPolicy: &always},
					{Name: "init", Resources: rl("3", "1G")},
				},
				Containers: []corev1.Container{{Name: "c", Resources: rl("1", "1G")}},
			},
			want:      Resources{MilliCPU: 4000, Memory: 2e9},
			wantScore: Resources{MilliCPU: 4000, Memory: 2e9},
		},
		{
			name: "overhead is added",
			spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "c", Resources: rl("500m", "100M")}},
				Overhead:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			},
			want:      Resources{MilliCPU: 750, Memory: 1e8},
			wantScore: Resources{MilliCPU: 750, Memory: 1e8},
		},
		{
			name: "pod-level requests replace the aggregate",
			spec: corev1.PodSpec{
				Resources:  &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}},
				Containers: []corev1.Container{{Name: "c", Resources: rl("500m", "100M")}},
			},
			want:      Resources{MilliCPU: 2000, Memory: 1e8},
			wantScore: Resources{MilliCPU: 2000, Memory: 1e8},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: tt.spec}
			if got := PodRequests(pod); got != tt.want {
				t.Errorf("PodRequests = %+v, want %+v", got, tt.want)
			}
			if got := PodScoringRequests(pod); got != tt.wantScore {
				t.Errorf("PodScoringRequests = %+v, want %+v", got, tt.wantScore)
			}
		})
	}
}

func TestPodScalarRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	gpu := func(n string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{
			"example.com/gpu": resource.MustParse(n), corev1.ResourceCPU: resource.MustParse("1")}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "side", Resources: gpu("1"), RestartPolicy: &always},
			{Name: "init", Resources: gpu("4")},
		},
		Containers: []corev1.Container{{Name: "a", Resources: gpu("1")}, {Name: "b", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"hugepages-2Mi": resource.MustParse("4Mi")}}}},
		Overhead: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
	}}
	got := PodScalarRequests(pod)
	want := []ScalarRequest{{Name: "example.com/gpu", Quantity: 5}, {Name: "hugepages-2Mi", Quantity: 4 << 20}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("PodScalarRequests = %+v, want %+v", got, want)
	}
	if got := PodScalarRequests(&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: gpu("0")}}}}); got != nil {
		t.Fatalf("zero request: %+v, want nil", got)
	}
}
