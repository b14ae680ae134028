package apiserver

import (
	"encoding/json"
	"net/http"
	goruntime "runtime"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
)

// responseForm is the shape a client asked the object back in.
type responseForm int

const (
	formObject responseForm = iota
	formTable
	formPartialMetadata
	formPartialMetadataList
)

// wantedForm reads the Accept header: the first JSON media type wins, and
// its "as" parameter may ask for a Table or partial object metadata.
func wantedForm(r *http.Request) responseForm {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, params, err := parseMediaType(part)
		if err != nil || (mt != "application/json" && mt != "*/*" && mt != "application/*") {
			continue
		}
		switch params["as"] {
		case "Table":
			return formTable
		case "PartialObjectMetadata":
			return formPartialMetadata
		case "PartialObjectMetadataList":
			return formPartialMetadataList
		}
		return formObject
	}
	return formObject
}

var nameColumn = metav1.TableColumnDefinition{
	Name: "Name", Type: "string", Format: "name",
	Description: "Name must be unique within a namespace. https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#names",
}

var createdColumn = metav1.TableColumnDefinition{
	Name: "Created At", Type: "date",
	Description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
}

// toTable renders an object or a list as kubectl get's table.
func (s *server) toTable(res *registry.Resource, obj runtime.Object, r *http.Request) (*metav1.Table, error) {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}}
	t.ColumnDefinitions = append([]metav1.TableColumnDefinition{nameColumn}, res.TableColumns...)
	if res.OwnNameColumn {
		t.ColumnDefinitions = res.TableColumns
	}
	if res.TableRow == nil {
		t.ColumnDefinitions = []metav1.TableColumnDefinition{nameColumn, createdColumn}
	}
	var items []runtime.Object
	if meta.IsListType(obj) {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		lm, _ := meta.ListAccessor(obj)
		t.ResourceVersion, t.Continue, t.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
	} else {
		items = []runtime.Object{obj}
		acc, _ := meta.Accessor(obj)
		t.ResourceVersion = acc.GetResourceVersion()
	}
	include := r.URL.Query().Get("includeObject")
	t.Rows = make([]metav1.TableRow, 0, len(items))
	for _, item := range items {
		acc, _ := meta.Accessor(item)
		var cells []interface{}
		switch {
		case res.TableRow != nil && res.OwnNameColumn:
			cells = res.TableRow(item)
		case res.TableRow != nil:
			cells = append([]interface{}{acc.GetName()}, res.TableRow(item)...)
		default:
			cells = []interface{}{acc.GetName(), acc.GetCreationTimestamp().UTC().Format(time.RFC3339)}
		}
		row := metav1.TableRow{Cells: cells}
		switch include {
		case string(metav1.IncludeNone):
		case string(metav1.IncludeObject):
			item.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
			data, err := json.Marshal(item)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			row.Object.Raw = data
		default:
			data, err := json.Marshal(toPartialMetadata(item))
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			row.Object.Raw = data
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// toPartialMetadata returns only the metadata of an object or a list.
func toPartialMetadata(obj runtime.Object) any {
	if meta.IsListType(obj) {
		items, _ := meta.ExtractList(obj)
		lm, _ := meta.ListAccessor(obj)
		out := &metav1.PartialObjectMetadataList{
			TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadataList", APIVersion: "meta.k8s.io/v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: lm.GetResourceVersion(), Continue: lm.GetContinue(), RemainingItemCount: lm.GetRemainingItemCount()},
		}
		for _, item := range items {
			out.Items = append(out.Items, *toPartialMetadata(item).(*metav1.PartialObjectMetadata))
		}
		return out
	}
	m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
	// meta.Accessor returns a typed object itself (it implements
	// metav1.Object), not its ObjectMeta: reach that through
	// GetObjectMeta. The copy is shallow: the result is only encoded.
	if oma, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if om, ok := oma.GetObjectMeta().(*metav1.ObjectMeta); ok {
			m.ObjectMeta = *om
			return m
		}
	}
	if acc, err := meta.Accessor(obj); err == nil {
		m.Name, m.GenerateName, m.Namespace, m.UID = acc.GetName(), acc.GetGenerateName(), acc.GetNamespace(), acc.GetUID()
		m.ResourceVersion, m.Generation, m.CreationTimestamp = acc.GetResourceVersion(), acc.GetGeneration(), acc.GetCreationTimestamp()
		m.DeletionTimestamp, m.DeletionGracePeriodSeconds = acc.GetDeletionTimestamp(), acc.GetDeletionGracePeriodSeconds()
		m.Labels, m.Annotations, m.OwnerReferences = acc.GetLabels(), acc.GetAnnotations(), acc.GetOwnerReferences()
		m.Finalizers, m.ManagedFields = acc.GetFinalizers(), acc.GetManagedFields()
	}
	return m
}

func goVersion() string { return goruntime.Version() }
