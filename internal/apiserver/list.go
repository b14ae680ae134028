package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// selector matches objects by label and field selectors.
type selector struct {
	labels labels.Selector
	fields fields.Selector
	// fieldReqs are fields' requirements, each Equals or NotEquals as
	// fields.ParseSelector makes them: matching reads them so that the
	// object's fields need not be boxed in a fields.Fields.
	fieldReqs fields.Requirements
}

func (s selector) empty() bool { return s.labels.Empty() && s.fields.Empty() }

// parseSelector reads labelSelector and fieldSelector; fields the resource
// cannot select on are refused with 400 as upstream does.
func parseSelector(r *http.Request, res *registry.Resource) (selector, error) {
	q := r.URL.Query()
	return newSelector(res, q.Get("labelSelector"), q.Get("fieldSelector"))
}

// newSelector parses a label and a field selector for res, refusing
// fields res cannot be selected by.
func newSelector(res *registry.Resource, labelSelector, fieldSelector string) (selector, error) {
	ls, err := labels.Parse(labelSelector)
	if err != nil {
		return selector{}, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(fieldSelector)
	if err != nil {
		return selector{}, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	known := objectFields{res: res, obj: res.New()}
	reqs := fs.Requirements()
	for _, req := range reqs {
		if !known.Has(req.Field) {
			return selector{}, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
		if req.Operator != selection.Equals && req.Operator != selection.NotEquals {
			return selector{}, apierrors.NewBadRequest(fmt.Sprintf("field selector operator not supported: %s", req.Operator))
		}
	}
	return selector{labels: ls, fields: fs, fieldReqs: reqs}, nil
}

// objectFields is what a field selector sees of an object, read one field
// at a time: metadata.name, metadata.namespace if res is namespaced, and
// res's selectable fields.
type objectFields struct {
	res *registry.Resource
	obj runtime.Object
}

// Has reports whether a field selector may use field.
func (o objectFields) Has(field string) bool {
	_, ok := o.lookup(field)
	return ok
}

// Get returns field's value, "" for a field the object does not have.
func (o objectFields) Get(field string) string {
	v, _ := o.lookup(field)
	return v
}

// lookup returns field's value and whether the object has it. A resource
// without FieldValue has its selectable fields built to read one.
func (o objectFields) lookup(field string) (string, bool) {
	switch {
	case field == "metadata.name":
		acc, _ := meta.Accessor(o.obj)
		return acc.GetName(), true
	case field == "metadata.namespace" && o.res.Namespaced:
		acc, _ := meta.Accessor(o.obj)
		return acc.GetNamespace(), true
	case o.res.FieldValue != nil:
		return o.res.FieldValue(o.obj, field)
	case o.res.SelectableFields != nil:
		v, ok := o.res.SelectableFields(o.obj)[field]
		return v, ok
	}
	return "", false
}

// matches reports whether s selects obj, an object of res.
func (s selector) matches(res *registry.Resource, obj runtime.Object) bool {
	if s.empty() {
		return true
	}
	acc, _ := meta.Accessor(obj)
	if !s.labels.Matches(labels.Set(acc.GetLabels())) {
		return false
	}
	// s.fields.Matches(objectFields{res, obj}), without boxing.
	of := objectFields{res: res, obj: obj}
	for _, req := range s.fieldReqs {
		if (of.Get(req.Field) == req.Value) != (req.Operator == selection.Equals) {
			return false
		}
	}
	return true
}

// continueToken is what a list's continue string carries.
type continueToken struct {
	Revision int64  `json:"rv"`
	StartKey string `json:"start"`
}

func encodeContinue(t continueToken) string {
	data, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(data)
}

func decodeContinue(s, prefix string) (continueToken, error) {
	var t continueToken
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(data, &t)
	}
	if err != nil || t.Revision <= 0 || len(t.StartKey) < len(prefix) || t.StartKey[:len(prefix)] != prefix {
		return t, apierrors.NewBadRequest("invalid continue token")
	}
	return t, nil
}

func (h *handler) list(ctx context.Context) (runtime.Object, error) {
	sel, err := parseSelector(h.r, h.res)
	if err != nil {
		return nil, err
	}
	q := h.r.URL.Query()
	var limit int64
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil || limit < 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid limit %q", v))
		}
	}
	prefix := keyPrefix(h.res, h.info.Namespace)
	opts := storage.ListOptions{}
	if c := q.Get("continue"); c != "" {
		tok, err := decodeContinue(c, prefix)
		if err != nil {
			return nil, err
		}
		opts.Revision, opts.StartKey = tok.Revision, tok.StartKey
	} else if rv := q.Get("resourceVersion"); rv != "" && rv != "0" && q.Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		if opts.Revision, err = strconv.ParseInt(rv, 10, 64); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv))
		}
	}
	listObj := h.res.NewList()
	items, rev, next, remaining, err := h.s.listObjects(ctx, h.res, prefix, opts, limit, sel)
	if err != nil {
		if apierrors.IsResourceExpired(err) && q.Get("continue") != "" {
			return nil, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
		}
		return nil, err
	}
	if err := meta.SetList(listObj, items); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	lm, _ := meta.ListAccessor(listObj)
	lm.SetResourceVersion(strconv.FormatInt(rev, 10))
	if next != "" {
		lm.SetContinue(encodeContinue(continueToken{Revision: rev, StartKey: next}))
		if sel.empty() {
			lm.SetRemainingItemCount(&remaining)
		}
	}
	listObj.GetObjectKind().SetGroupVersionKind(h.res.GroupVersion.WithKind(h.res.Kind + "List"))
	return listObj, nil
}

// listObjects reads matching objects under prefix at one revision, up to
// limit (0: all). next is the key to continue from ("" when done).
func (s *server) listObjects(ctx context.Context, res *registry.Resource, prefix string, opts storage.ListOptions, limit int64, sel selector) (items []runtime.Object, rev int64, next string, remaining int64, err error) {
	items = []runtime.Object{}
	page := limit
	if page > 0 && !sel.empty() && page < 500 {
		page = 500
	}
	for {
		opts.Limit = page
		result, err := s.cfg.Storage.List(ctx, prefix, opts)
		if err != nil {
			return nil, 0, "", 0, storageError(err, res, "")
		}
		rev = result.Revision
		opts.Revision = rev
		for i, kv := range result.Items {
			if limit > 0 && int64(len(items)) == limit {
				return items, rev, kv.Key, int64(len(result.Items)-i) + result.Remaining, nil
			}
			obj, err := s.store.decode(res, kv.Value, kv.Revision)
			if err != nil {
				return nil, 0, "", 0, apierrors.NewInternalError(err)
			}
			if sel.matches(res, obj) {
				items = append(items, obj)
			}
		}
		if !result.More || len(result.Items) == 0 {
			return items, rev, "", 0, nil
		}
		last := result.Items[len(result.Items)-1].Key
		if limit > 0 && int64(len(items)) == limit {
			return items, rev, last + "\x00", result.Remaining, nil
		}
		opts.StartKey = last + "\x00"
	}
}
