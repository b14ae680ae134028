package registry

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func newDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate(),
		},
	}
}

func newReplicaSet() *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate(),
		},
	}
}

func TestDeploymentDefaults(t *testing.T) {
	d := newDeployment()
	d.Status.Replicas = 7
	requireNoErrors(t, create(Deployments(), d))
	s := d.Spec
	if *s.Replicas != 1 || *s.RevisionHistoryLimit != 10 || *s.ProgressDeadlineSeconds != 600 {
		t.Errorf("replicas/revisionHistoryLimit/progressDeadlineSeconds = %d/%d/%d", *s.Replicas, *s.RevisionHistoryLimit, *s.ProgressDeadlineSeconds)
	}
	if s.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		s.Strategy.RollingUpdate.MaxSurge.String() != "25%" || s.Strategy.RollingUpdate.MaxUnavailable.String() != "25%" {
		t.Errorf("strategy = %+v", s.Strategy)
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways || s.Template.Spec.Containers[0].TerminationMessagePath == "" {
		t.Error("template spec not defaulted")
	}
	if s.Template.Spec.EnableServiceLinks != nil {
		t.Error("templates must not get pod-only defaults (enableServiceLinks)")
	}
	if d.Status.Replicas != 0 || d.Generation != 1 {
		t.Errorf("create must clear status and set generation 1: status %+v generation %d", d.Status, d.Generation)
	}

	recreate := newDeployment()
	recreate.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	requireNoErrors(t, create(Deployments(), recreate))
	if recreate.Spec.Strategy.RollingUpdate != nil {
		t.Error("Recreate must not get rollingUpdate defaults")
	}
}

func TestDeploymentValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		path   string
		typ    field.ErrorType
	}{
		{"negative replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo(int32(-1)) }, "spec.replicas", field.ErrorTypeInvalid},
		{"no selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, "spec.selector", field.ErrorTypeRequired},
		{"empty selector", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, "spec.selector", field.ErrorTypeInvalid},
		{"selector mismatch", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels = map[string]string{"app": "db"}
		}, "spec.template.metadata.labels", field.ErrorTypeInvalid},
		{"template image", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }, "spec.template.spec.containers[0].image", field.ErrorTypeRequired},
		{"template restart policy", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
		}, "spec.template.spec.restartPolicy", field.ErrorTypeNotSupported},
		{"both zero", func(d *appsv1.Deployment) {
			zero := intstr.FromInt32(0)
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: ptrTo(intstr.FromString("0%"))}
		}, "spec.strategy.rollingUpdate.maxUnavailable", field.ErrorTypeInvalid},
		{"maxUnavailable over 100%", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptrTo(intstr.FromString("150%"))}
		}, "spec.strategy.rollingUpdate.maxUnavailable", field.ErrorTypeInvalid},
		{"maxSurge garbage", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptrTo(intstr.FromString("lots"))}
		}, "spec.strategy.rollingUpdate.maxSurge", field.ErrorTypeInvalid},
		{"recreate with rollingUpdate", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		}, "spec.strategy.rollingUpdate", field.ErrorTypeForbidden},
		{"strategy type", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }, "spec.strategy.type", field.ErrorTypeNotSupported},
		{"negative minReadySeconds", func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = -1 }, "spec.minReadySeconds", field.ErrorTypeInvalid},
		{"progress deadline not after minReady", func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 30
			d.Spec.ProgressDeadlineSeconds = ptrTo(int32(30))
		}, "spec.progressDeadlineSeconds", field.ErrorTypeInvalid},
		{"negative revisionHistoryLimit", func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptrTo(int32(-1)) }, "spec.revisionHistoryLimit", field.ErrorTypeInvalid},
	}
	requireNoErrors(t, create(Deployments(), newDeployment()))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployment()
			tt.mutate(d)
			requireError(t, create(Deployments(), d), tt.path, tt.typ)
		})
	}
	d := newDeployment()
	d.Spec.Selector.MatchLabels = map[string]string{"app": "db"}
	requireMessage(t, create(Deployments(), d), "`selector` does not match template `labels`")
}

func TestDeploymentUpdate(t *testing.T) {
	old := newDeployment()
	requireNoErrors(t, create(Deployments(), old))

	d := old.DeepCopy()
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}
	d.Spec.Template.Labels["tier"] = "front"
	requireError(t, update(Deployments(), d, old), "spec.selector", field.ErrorTypeInvalid)

	labelsOnly := old.DeepCopy()
	labelsOnly.Labels = map[string]string{"team": "a"}
	requireNoErrors(t, update(Deployments(), labelsOnly, old))
	if labelsOnly.Generation != 1 {
		t.Errorf("metadata change bumped generation to %d", labelsOnly.Generation)
	}
	scaled := old.DeepCopy()
	scaled.Spec.Replicas = ptrTo(int32(3))
	requireNoErrors(t, update(Deployments(), scaled, old))
	if scaled.Generation != 2 {
		t.Errorf("spec change: generation %d, want 2", scaled.Generation)
	}
}

func TestDeploymentTableAndScale(t *testing.T) {
	d := newDeployment()
	Deployments().Default(d)
	d.Spec.Replicas = ptrTo(int32(3))
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: "busybox"})
	d.Status = appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}
	d.CreationTimestamp = ago(26 * time.Hour)
	row := cells(t, Deployments(), d)
	want := []interface{}{"2/3", int64(3), int64(2), "26h", "web,side", "nginx:1.27,busybox", "app=web"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("%s = %#v, want %#v", Deployments().TableColumns[i].Name, row[i], want[i])
		}
	}

	spec, status, sel := Deployments().Scale.Get(d)
	if spec != 3 || status != 3 || sel != "app=web" {
		t.Errorf("scale get = %d %d %q", spec, status, sel)
	}
	Deployments().Scale.Set(d, 5)
	if *d.Spec.Replicas != 5 {
		t.Errorf("scale set: replicas %d", *d.Spec.Replicas)
	}
}

func TestDeploymentStatusValidation(t *testing.T) {
	d := newDeployment()
	d.Status = appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 2}
	requireError(t, Deployments().ValidateStatus(d, d), "status.readyReplicas", field.ErrorTypeInvalid)
	d.Status = appsv1.DeploymentStatus{Replicas: -1}
	requireError(t, Deployments().ValidateStatus(d, d), "status.replicas", field.ErrorTypeInvalid)
}

func TestReplicaSet(t *testing.T) {
	rs := newReplicaSet()
	requireNoErrors(t, create(ReplicaSets(), rs))
	if *rs.Spec.Replicas != 1 || rs.Generation != 1 {
		t.Errorf("replicas %d generation %d", *rs.Spec.Replicas, rs.Generation)
	}

	tests := []struct {
		name   string
		mutate func(*appsv1.ReplicaSet)
		path   string
		typ    field.ErrorType
	}{
		{"negative replicas", func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = ptrTo(int32(-2)) }, "spec.replicas", field.ErrorTypeInvalid},
		{"no selector", func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = nil }, "spec.selector", field.ErrorTypeRequired},
		{"mismatch", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = map[string]string{"app": "x"} }, "spec.template.metadata.labels", field.ErrorTypeInvalid},
		{"restart policy", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }, "spec.template.spec.restartPolicy", field.ErrorTypeNotSupported},
		{"minReadySeconds", func(rs *appsv1.ReplicaSet) { rs.Spec.MinReadySeconds = -3 }, "spec.minReadySeconds", field.ErrorTypeInvalid},
		{"container name", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.Containers[0].Name = "a.b" }, "spec.template.spec.containers[0].name", field.ErrorTypeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newReplicaSet()
			tt.mutate(rs)
			requireError(t, create(ReplicaSets(), rs), tt.path, tt.typ)
		})
	}

	old := newReplicaSet()
	requireNoErrors(t, create(ReplicaSets(), old))
	moved := old.DeepCopy()
	moved.Spec.Selector.MatchLabels["v"] = "2"
	moved.Spec.Template.Labels["v"] = "2"
	requireError(t, update(ReplicaSets(), moved, old), "spec.selector", field.ErrorTypeInvalid)

	rs = newReplicaSet()
	ReplicaSets().Default(rs)
	rs.Spec.Replicas = ptrTo(int32(3))
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 1}
	row := cells(t, ReplicaSets(), rs)
	if row[0] != int64(3) || row[1] != int64(3) || row[2] != int64(1) || row[3] != "<unknown>" || row[6] != "app=web" {
		t.Errorf("row = %v", row)
	}
	if got := ReplicaSets().SelectableFields(rs)["status.replicas"]; got != "3" {
		t.Errorf("status.replicas field = %q", got)
	}
	spec, status, sel := ReplicaSets().Scale.Get(rs)
	if spec != 3 || status != 3 || sel != "app=web" {
		t.Errorf("scale = %d %d %q", spec, status, sel)
	}
}
