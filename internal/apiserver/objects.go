package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// objectStore reads and writes typed objects of registry resources in
// storage: JSON values under /registry/GROUP/RESOURCE/[NAMESPACE/]NAME, with
// resourceVersion taken from the key's revision.
type objectStore struct {
	s storage.Interface
}

// keyPrefix returns the prefix under which the resource's objects live; with
// an empty namespace it spans all namespaces.
func keyPrefix(res *registry.Resource, namespace string) string {
	st := res.Storage()
	group := st.GroupVersion.Group
	if group == "" {
		group = "core"
	}
	p := "/registry/" + group + "/" + st.Plural + "/"
	if st.Namespaced && namespace != "" {
		p += namespace + "/"
	}
	return p
}

// StoragePrefixes returns the distinct key prefixes (spanning all
// namespaces) under which resources store their objects, for a watch cache
// to keep in front of storage. Events are left out, as upstream leaves them
// out of its watch cache: they are written often and read rarely.
func StoragePrefixes(resources []*registry.Resource) []string {
	var out []string
	seen := map[string]bool{}
	for _, res := range resources {
		st := res.Storage()
		if st.Plural == "events" {
			continue
		}
		p := keyPrefix(st, "")
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func objectKey(res *registry.Resource, namespace, name string) string {
	return keyPrefix(res, namespace) + name
}

func groupResource(res *registry.Resource) schema.GroupResource {
	return schema.GroupResource{Group: res.GroupVersion.Group, Resource: res.Plural}
}

// decode turns a stored value into the resource's typed object, with
// resourceVersion set to rev.
func (o *objectStore) decode(res *registry.Resource, value []byte, rev int64) (runtime.Object, error) {
	st := res.Storage()
	obj := st.New()
	if err := unmarshalStored(value, obj); err != nil {
		return nil, fmt.Errorf("decoding stored %s: %w", st.Plural, err)
	}
	if res.StorageOf != nil {
		converted, err := res.FromStorage(obj)
		if err != nil {
			return nil, fmt.Errorf("converting stored %s: %w", st.Plural, err)
		}
		obj = converted
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	return obj, nil
}

// encode serializes obj in its storage form, without resourceVersion.
func (o *objectStore) encode(res *registry.Resource, obj runtime.Object) ([]byte, error) {
	if res.StorageOf != nil {
		converted, err := res.ToStorage(obj.DeepCopyObject())
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("converting to storage version: %v", err))
		}
		obj = converted
	} else {
		obj = obj.DeepCopyObject()
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion("")
	acc.SetSelfLink("")
	obj.GetObjectKind().SetGroupVersionKind(res.Storage().GroupVersionKind())
	if hasProtobuf(obj) {
		return encodeProtobuf(obj)
	}
	return json.Marshal(obj)
}

// protobufPrefix starts every value in Kubernetes' enveloped protobuf.
var protobufPrefix = []byte("k8s\x00")

// unmarshalStored decodes a stored value into obj. Objects are stored in
// protobuf, as upstream stores them (decoding JSON was the largest cost of
// a write); values written as JSON by earlier versions still decode.
func unmarshalStored(value []byte, obj runtime.Object) error {
	if bytes.HasPrefix(value, protobufPrefix) {
		_, _, err := protobufSerializer.Decode(value, nil, obj)
		return err
	}
	return json.Unmarshal(value, obj)
}

func (o *objectStore) get(ctx context.Context, res *registry.Resource, namespace, name string) (runtime.Object, int64, error) {
	kv, err := o.s.Get(ctx, objectKey(res, namespace, name))
	if err != nil {
		return nil, 0, storageError(err, res, name)
	}
	obj, err := o.decode(res, kv.Value, kv.Revision)
	return obj, kv.Revision, err
}

// storageError maps storage errors to API errors.
func storageError(err error, res *registry.Resource, name string) error {
	gr := groupResource(res)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("The resourceVersion for the provided list is too old.")
	case errors.Is(err, storage.ErrFutureRevision):
		return apierrors.NewTimeoutError("Too large resource version", 1)
	case errors.Is(err, storage.ErrUnavailable):
		return apierrors.NewServiceUnavailable(err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError(err.Error(), 1)
	}
	return apierrors.NewInternalError(err)
}

const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"
