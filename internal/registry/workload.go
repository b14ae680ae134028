package registry

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateWorkloadSelector checks a controller's selector: required, not
// empty, valid, and matching the template's labels.
func validateWorkloadSelector(sel *metav1.LabelSelector, templateLabels map[string]string, kind string, fldPath *field.Path) field.ErrorList {
	selPath := fldPath.Child("selector")
	if sel == nil {
		return field.ErrorList{field.Required(selPath, "")}
	}
	errs := labelSelector(sel, selPath)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(selPath, sel, "empty selector is invalid for "+kind))
	}
	if len(errs) > 0 {
		return errs
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(selPath, sel, err.Error()))
	}
	if !s.Matches(labels.Set(templateLabels)) {
		errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), templateLabels, "`selector` does not match template `labels`"))
	}
	return errs
}

// bumpGeneration sets the new object's generation: old's, plus one when
// the spec changed.
func bumpGeneration(newMeta, oldMeta *metav1.ObjectMeta, newSpec, oldSpec interface{}) {
	newMeta.Generation = oldMeta.Generation
	if !semanticEqual(newSpec, oldSpec) {
		newMeta.Generation = oldMeta.Generation + 1
	}
}

// int32Value returns *p, or def when p is nil.
func int32Value(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// ptrTo returns a pointer to v.
func ptrTo[T any](v T) *T { return &v }
