package registry

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestAllDescriptions checks every description against upstream's names
// and the contract the server relies on.
func TestAllDescriptions(t *testing.T) {
	type names struct {
		kind, singular string
		short          []string
		categories     []string
		namespaced     bool
		status, scale  bool
	}
	want := map[schema.GroupVersionResource]names{
		{Version: "v1", Resource: "namespaces"}:                                              {"Namespace", "namespace", []string{"ns"}, nil, false, true, false},
		{Version: "v1", Resource: "pods"}:                                                    {"Pod", "pod", []string{"po"}, []string{"all"}, true, true, false},
		{Version: "v1", Resource: "nodes"}:                                                   {"Node", "node", []string{"no"}, nil, false, true, false},
		{Version: "v1", Resource: "services"}:                                                {"Service", "service", []string{"svc"}, []string{"all"}, true, true, false},
		{Version: "v1", Resource: "endpoints"}:                                               {"Endpoints", "endpoints", []string{"ep"}, nil, true, false, false},
		{Version: "v1", Resource: "events"}:                                                  {"Event", "event", []string{"ev"}, nil, true, false, false},
		{Version: "v1", Resource: "configmaps"}:                                              {"ConfigMap", "configmap", []string{"cm"}, nil, true, false, false},
		{Version: "v1", Resource: "secrets"}:                                                 {"Secret", "secret", nil, nil, true, false, false},
		{Version: "v1", Resource: "serviceaccounts"}:                                         {"ServiceAccount", "serviceaccount", []string{"sa"}, nil, true, false, false},
		{Group: "apps", Version: "v1", Resource: "deployments"}:                              {"Deployment", "deployment", []string{"deploy"}, []string{"all"}, true, true, true},
		{Group: "apps", Version: "v1", Resource: "replicasets"}:                              {"ReplicaSet", "replicaset", []string{"rs"}, []string{"all"}, true, true, true},
		{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}:          {"HorizontalPodAutoscaler", "horizontalpodautoscaler", []string{"hpa"}, []string{"all"}, true, true, false},
		{Group: "autoscaling", Version: "v1", Resource: "horizontalpodautoscalers"}:          {"HorizontalPodAutoscaler", "horizontalpodautoscaler", []string{"hpa"}, []string{"all"}, true, true, false},
		{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}:                    {"Lease", "lease", nil, nil, true, false, false},
		{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}:               {"EndpointSlice", "endpointslice", nil, nil, true, false, false},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}:                   {"PodDisruptionBudget", "poddisruptionbudget", []string{"pdb"}, nil, true, true, false},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}:               {"Role", "role", nil, nil, true, false, false},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}:        {"ClusterRole", "clusterrole", nil, nil, false, false, false},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}:        {"RoleBinding", "rolebinding", nil, nil, true, false, false},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}: {"ClusterRoleBinding", "clusterrolebinding", nil, nil, false, false, false},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews"}: {"SelfSubjectAccessReview", "selfsubjectaccessreview", nil, nil, false, false, false},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectrulesreviews"}:  {"SelfSubjectRulesReview", "selfsubjectrulesreview", nil, nil, false, false, false},
		{Group: "authorization.k8s.io", Version: "v1", Resource: "subjectaccessreviews"}:     {"SubjectAccessReview", "subjectaccessreview", nil, nil, false, false, false},
	}

	all := All()
	if len(all) != len(want) {
		t.Errorf("All() has %d resources, want %d", len(all), len(want))
	}
	seen := map[schema.GroupVersionResource]bool{}
	for _, r := range all {
		gvr := r.GroupVersionResource()
		if seen[gvr] {
			t.Errorf("%v listed twice", gvr)
		}
		seen[gvr] = true
		w, ok := want[gvr]
		if !ok {
			t.Errorf("unexpected resource %v", gvr)
			continue
		}
		if r.Kind != w.kind || r.Singular != w.singular || !reflect.DeepEqual(r.ShortNames, w.short) ||
			!reflect.DeepEqual(r.Categories, w.categories) || r.Namespaced != w.namespaced ||
			r.StatusSubresource != w.status || (r.Scale != nil) != w.scale {
			t.Errorf("%v: got kind %s singular %s short %v categories %v namespaced %v status %v scale %v",
				gvr, r.Kind, r.Singular, r.ShortNames, r.Categories, r.Namespaced, r.StatusSubresource, r.Scale != nil)
		}

		// New and NewList build the kind's types as client-go knows them.
		gvks, _, err := scheme.Scheme.ObjectKinds(r.New())
		if err != nil || !containsGVK(gvks, r.GroupVersionKind()) {
			t.Errorf("%v: New() is %T (kinds %v, %v)", gvr, r.New(), gvks, err)
		}
		if reflect.DeepEqual(r.Verbs, []string{"create"}) {
			continue // a virtual, create-only resource: no list, no table
		}
		lists, _, err := scheme.Scheme.ObjectKinds(r.NewList())
		if err != nil || !containsGVK(lists, r.GroupVersion.WithKind(r.Kind+"List")) || !meta.IsListType(r.NewList()) {
			t.Errorf("%v: NewList() is %T (kinds %v, %v)", gvr, r.NewList(), lists, err)
		}

		// The server prepends Name unless the resource lays it out itself.
		for _, c := range r.TableColumns {
			if c.Name == "Name" && !r.OwnNameColumn {
				t.Errorf("%v: TableColumns includes Name", gvr)
			}
		}
		hasAge := false
		for _, c := range r.TableColumns {
			hasAge = hasAge || c.Name == "Age" || c.Name == "Created At" // roles show CREATED AT
		}
		if hasAge == r.OwnNameColumn { // events show LAST SEEN instead of AGE
			t.Errorf("%v: Age column present = %v", gvr, hasAge)
		}

		// Every hook copes with an empty object, the way a sloppy client sends it.
		obj := r.New()
		if r.Default != nil {
			r.Default(obj)
		}
		if r.PrepareForCreate != nil {
			r.PrepareForCreate(obj)
		}
		if r.Validate != nil {
			_ = r.Validate(obj)
		}
		if r.ValidateUpdate != nil {
			_ = r.ValidateUpdate(obj, obj.DeepCopyObject())
		}
		if r.ValidateStatus != nil {
			_ = r.ValidateStatus(obj, obj.DeepCopyObject())
		}
		if r.PrepareForUpdate != nil {
			r.PrepareForUpdate(obj, obj.DeepCopyObject())
		}
		if row := r.TableRow(obj); len(row) != len(r.TableColumns) {
			t.Errorf("%v: %d cells for %d columns", gvr, len(row), len(r.TableColumns))
		}
		if r.SelectableFields != nil {
			// The server adds metadata's fields itself.
			set := r.SelectableFields(obj)
			for _, f := range []string{"metadata.name", "metadata.namespace"} {
				if _, ok := set[f]; ok {
					t.Errorf("%v: SelectableFields includes %s", gvr, f)
				}
			}
			if r.FieldValue != nil {
				for f, want := range set {
					if v, ok := r.FieldValue(obj, f); v != want || !ok {
						t.Errorf("%v: FieldValue(%q) = %q, %v; SelectableFields has %q", gvr, f, v, ok, want)
					}
				}
				if v, ok := r.FieldValue(obj, "unknown.field"); ok {
					t.Errorf("%v: FieldValue has unknown.field = %q", gvr, v)
				}
			}
		} else if r.FieldValue != nil {
			t.Errorf("%v: FieldValue without SelectableFields", gvr)
		}
	}
}

func TestAllStorage(t *testing.T) {
	all := All()
	var v1, v2 *Resource
	for _, r := range all {
		if r.Plural == "horizontalpodautoscalers" {
			if r.GroupVersion.Version == "v1" {
				v1 = r
			} else {
				v2 = r
			}
		} else if r.StorageOf != nil || r.Storage() != r {
			t.Errorf("%s: unexpected storage %v", r.Plural, r.StorageOf)
		}
	}
	if v1 == nil || v2 == nil || v1.StorageOf != v2 || v1.Storage() != v2 || v2.Storage() != v2 {
		t.Fatal("autoscaling/v1 HPAs must be stored as the autoscaling/v2 entry of the same list")
	}
	if v1.ToStorage == nil || v1.FromStorage == nil {
		t.Fatal("autoscaling/v1 needs both conversions")
	}
	if _, err := v1.ToStorage(&runtimeUnknown{}); err == nil {
		t.Error("ToStorage accepted a foreign type")
	}
}

type runtimeUnknown struct{ runtime.Unknown }

func containsGVK(list []schema.GroupVersionKind, gvk schema.GroupVersionKind) bool {
	for _, g := range list {
		if g == gvk {
			return true
		}
	}
	return false
}
