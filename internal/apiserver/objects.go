package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// deleting is the namespaces whose deletion this server started
	// recently, for namespaceAcceptsContent.
	deleting deletingNamespaces
	// memo holds the values watches have decoded: getCached copies
	// them rather than decode again.
	memo *eventMemo
	// compact shrinks the pods decodeShared decodes.
	compact compactor

	nsMu          sync.Mutex
	nsTerminating map[string]namespaceVerdict // by namespace name
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

// decodeShared is decode for the watch memo, whose objects every watcher
// and in-process informer shares, read-only, for as long as the object
// lives: pods are compacted, sharing strings and maps with other pods. No
// object that its holder may modify may come from here.
func (o *objectStore) decodeShared(res *registry.Resource, value []byte, rev int64) (runtime.Object, error) {
	obj, err := o.decode(res, value, rev)
	if pod, ok := obj.(*corev1.Pod); ok {
		o.compact.pod(pod)
	}
	return obj, err
}

// encode serializes obj in its storage form, without resourceVersion.
func (o *objectStore) encode(res *registry.Resource, obj runtime.Object) ([]byte, error) {
	if res.StorageOf != nil {
		converted, err := res.ToStorage(obj.DeepCopyObject())
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("converting to storage version: %v", err))
		}
		obj = converted
	} else if c, ok := shallowCopy(obj); ok {
		obj = c
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

var objectMetaType = reflect.TypeFor[metav1.ObjectMeta]()

// shallowCopy copies obj's top-level struct only, sharing everything below
// it: enough for encode to clear resourceVersion and set the kind on the
// copy, as those live in TypeMeta and ObjectMeta, held by value, at a
// fraction of a deep copy's cost. False for kinds that do not hold their
// metadata so (unstructured objects).
func shallowCopy(obj runtime.Object) (runtime.Object, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	if f, ok := v.Elem().Type().FieldByName("ObjectMeta"); !ok || f.Type != objectMetaType || len(f.Index) != 1 {
		return nil, false
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	out, ok := c.Interface().(runtime.Object)
	return out, ok
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
	obj, kv, err := o.getStored(ctx, res, namespace, name)
	return obj, kv.Revision, err
}

// getStored is get that also returns the stored value, for a writer to
// tell whether its new value changes anything.
func (o *objectStore) getStored(ctx context.Context, res *registry.Resource, namespace, name string) (runtime.Object, storage.KeyValue, error) {
	kv, err := o.s.Get(ctx, objectKey(res, namespace, name))
	if err != nil {
		return nil, storage.KeyValue{}, storageError(err, res, name)
	}
	obj, err := o.decode(res, kv.Value, kv.Revision)
	return obj, kv, err
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

// cachedGetter is implemented by storage with a watch cache in front of it
// (cacher.Multi): the cached copy of one key and its revision, which may lag
// the store's.
type cachedGetter interface {
	GetCached(key string) (storage.KeyValue, bool)
}

// cachedNamespaceTerminating tells whether the watch cache's copy of
// namespace name is being deleted, with the copy's revision; false when the
// cache does not hold it. Every create asks: the answer for a revision is
// kept rather than the namespace decoded each time.
func (o *objectStore) cachedNamespaceTerminating(nsRes *registry.Resource, name string) (terminating bool, rev int64, ok bool) {
	cg, ok := o.s.(cachedGetter)
	if !ok {
		return false, 0, false
	}
	kv, ok := cg.GetCached(objectKey(nsRes, "", name))
	if !ok {
		return false, 0, false
	}
	o.nsMu.Lock()
	v, known := o.nsTerminating[name]
	o.nsMu.Unlock()
	if known && v.rev == kv.Revision {
		return v.terminating, kv.Revision, true
	}
	obj, err := o.decode(nsRes, kv.Value, kv.Revision)
	if err != nil {
		return false, 0, false
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return false, 0, false
	}
	v = namespaceVerdict{rev: kv.Revision, terminating: acc.GetDeletionTimestamp() != nil}
	o.nsMu.Lock()
	if o.nsTerminating == nil || len(o.nsTerminating) >= maxNamespaceVerdicts {
		o.nsTerminating = map[string]namespaceVerdict{}
	}
	o.nsTerminating[name] = v
	o.nsMu.Unlock()
	return v.terminating, kv.Revision, true
}

// namespaceVerdict is whether a namespace, as stored at rev, is terminating.
type namespaceVerdict struct {
	rev         int64
	terminating bool
}

// maxNamespaceVerdicts bounds the verdicts kept (one per namespace); past
// it they are forgotten and found again.
const maxNamespaceVerdicts = 10000

// getCachedStored returns the watch cache's copy of an object, with the
// cached value and its revision; false when there is no cache or it does not
// hold the object. It may be older than the stored one: callers write
// conditionally on its revision or confirm with get.
//
// The object is decoded afresh, or comes from what a watch decoded already.
// Unless shared, the caller owns it: the watch's object is deep-copied.
// With shared, the watch's object is handed out as it is: the caller shares
// it with every watcher and in-process informer, and must not modify
// anything reachable from it.
func (o *objectStore) getCachedStored(res *registry.Resource, namespace, name string, shared bool) (runtime.Object, storage.KeyValue, bool) {
	cg, ok := o.s.(cachedGetter)
	if !ok {
		return nil, storage.KeyValue{}, false
	}
	key := objectKey(res, namespace, name)
	kv, ok := cg.GetCached(key)
	if !ok {
		return nil, storage.KeyValue{}, false
	}
	// The watch that filled the cache has most often decoded this very
	// value for its watchers: a copy, or the object itself, is cheaper
	// than decoding it again.
	if obj, ok := o.memo.decodedObject(memoKey{res: res, key: key, rev: kv.Revision}); ok {
		if shared {
			return obj, kv, true
		}
		return obj.DeepCopyObject(), kv, true
	}
	obj, err := o.decode(res, kv.Value, kv.Revision)
	if err != nil {
		// Etcd holds the same bytes: let the caller read and report them.
		return nil, storage.KeyValue{}, false
	}
	return obj, kv, true
}

// terminatingTTL bounds how long a namespace deletion made through this
// server keeps the cache's copy of the namespace from being trusted; the
// cache catches up far sooner (upstream's forceLiveLookupTTL is 30s).
const terminatingTTL = time.Minute

// deletingNamespaces remembers the namespaces this server has started
// deleting, as upstream's NamespaceLifecycle admission does
// (forceLiveLookupCache): until the watch cache holds a copy newer than the
// one the deletion started from, the cache may still show the namespace
// active, and creates into it must look it up in storage.
type deletingNamespaces struct {
	mu    sync.Mutex
	since map[string]deletingNamespace
}

type deletingNamespace struct {
	rev int64 // the revision the deletion read
	at  time.Time
}

// note records that the deletion of namespace name started from revision rev.
func (d *deletingNamespaces) note(name string, rev int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.since == nil {
		d.since = map[string]deletingNamespace{}
	}
	for n, e := range d.since {
		if now.Sub(e.at) > terminatingTTL {
			delete(d.since, n)
		}
	}
	d.since[name] = deletingNamespace{rev: rev, at: now}
}

// cacheMayLag reports that a cached copy of namespace name at cachedRev may
// predate a deletion this server made.
func (d *deletingNamespaces) cacheMayLag(name string, cachedRev int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.since[name]
	switch {
	case !ok:
		return false
	case cachedRev > e.rev || time.Since(e.at) > terminatingTTL:
		delete(d.since, name)
		return false
	}
	return true
}
