package registry

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// testNow is the fixed clock every table test sees.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func init() { Now = func() time.Time { return testNow } }

// ago returns a timestamp d before testNow.
func ago(d time.Duration) metav1.Time { return metav1.NewTime(testNow.Add(-d)) }

// create runs the create pipeline the server runs: Default,
// PrepareForCreate, Validate.
func create(r *Resource, obj runtime.Object) field.ErrorList {
	if r.Default != nil {
		r.Default(obj)
	}
	if r.PrepareForCreate != nil {
		r.PrepareForCreate(obj)
	}
	if r.Validate == nil {
		return nil
	}
	return r.Validate(obj)
}

// update runs the update pipeline: Default, PrepareForUpdate, ValidateUpdate.
func update(r *Resource, obj, old runtime.Object) field.ErrorList {
	if r.Default != nil {
		r.Default(obj)
	}
	if r.PrepareForUpdate != nil {
		r.PrepareForUpdate(obj, old)
	}
	return r.ValidateUpdate(obj, old)
}

// requireNoErrors fails on any validation error.
func requireNoErrors(t *testing.T, errs field.ErrorList) {
	t.Helper()
	for _, e := range errs {
		t.Errorf("unexpected error: %v", e)
	}
}

// requireError fails unless errs holds an error of type typ at path.
func requireError(t *testing.T, errs field.ErrorList, path string, typ field.ErrorType) {
	t.Helper()
	for _, e := range errs {
		if e.Field == path && e.Type == typ {
			return
		}
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	t.Errorf("want %s error at %q; got:\n  %s", typ, path, strings.Join(got, "\n  "))
}

// requireMessage fails unless some error's text contains want.
func requireMessage(t *testing.T, errs field.ErrorList, want string) {
	t.Helper()
	for _, e := range errs {
		if strings.Contains(e.Error(), want) {
			return
		}
	}
	t.Errorf("no error mentions %q; got %v", want, errs)
}

// podSpec is a minimal valid pod spec (before defaulting).
func podSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "web",
			Image: "nginx:1.27",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
		}},
	}
}

// podTemplate is a valid template labelled app=web.
func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       podSpec(),
	}
}

// cells checks a table row has one cell per column and returns it.
func cells(t *testing.T, r *Resource, obj runtime.Object) []interface{} {
	t.Helper()
	row := r.TableRow(obj)
	if len(row) != len(r.TableColumns) {
		t.Fatalf("%s: %d cells for %d columns", r.Plural, len(row), len(r.TableColumns))
	}
	return row
}

// cell returns the cell under the named column.
func cell(t *testing.T, r *Resource, obj runtime.Object, column string) interface{} {
	t.Helper()
	row := cells(t, r, obj)
	for i, c := range r.TableColumns {
		if c.Name == column {
			return row[i]
		}
	}
	t.Fatalf("%s: no column %q", r.Plural, column)
	return nil
}
