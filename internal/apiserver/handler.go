package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// handler serves one resource request.
type handler struct {
	s    *server
	res  *registry.Resource
	info requestInfo
	w    http.ResponseWriter
	r    *http.Request

	stored storedWrite // what the request wrote, for its response
}

func (h *handler) serve() {
	ctx := h.r.Context()
	var (
		code = http.StatusOK
		out  runtime.Object
		err  error
	)
	verb, sub := h.info.Verb, h.info.Subresource
	if verb == "create" || verb == "update" || verb == "patch" {
		ctx = withStoredWrite(ctx, &h.stored) // reads and watches answer no write
	}
	if sub != "" && !h.subresourceServed(sub) {
		writeError(h.w, apierrors.NewNotFound(groupResource(h.res), h.info.Name))
		return
	}
	if !h.verbAllowed(verb) {
		writeError(h.w, apierrors.NewMethodNotSupported(groupResource(h.res), verb))
		return
	}
	switch {
	case sub == "scale":
		out, err = h.scale(ctx)
	case sub == "binding" && verb == "create":
		code, out, err = h.bind(ctx)
	case sub == "eviction" && verb == "create":
		code, out, err = h.evict(ctx)
	case sub == "log":
		if err := h.podLog(ctx); err != nil {
			writeError(h.w, err)
		}
		return
	case verb == "get":
		out, _, err = h.s.store.get(ctx, h.res, h.info.Namespace, h.info.Name)
	case verb == "list":
		out, err = h.list(ctx)
	case verb == "watch":
		h.watch(ctx)
		return
	case verb == "create" && sub == "" && h.res.GroupVersion.Group == "authorization.k8s.io":
		code, out, err = h.accessReview(ctx)
	case verb == "create" && sub == "":
		code, out, err = h.create(ctx)
	case verb == "update":
		out, err = h.update(ctx)
	case verb == "patch":
		out, err = h.patch(ctx)
	case verb == "delete" && sub == "":
		code, out, err = h.delete(ctx, h.info.Name)
	case verb == "deletecollection" && sub == "":
		out, err = h.deleteCollection(ctx)
	default:
		err = apierrors.NewMethodNotSupported(groupResource(h.res), verb)
	}
	if err != nil {
		writeError(h.w, err)
		return
	}
	h.writeResult(code, out)
}

func (h *handler) subresourceServed(sub string) bool {
	switch sub {
	case "status":
		return h.res.StatusSubresource && (h.info.Verb == "get" || h.info.Verb == "update" || h.info.Verb == "patch")
	case "scale":
		return h.res.Scale != nil && (h.info.Verb == "get" || h.info.Verb == "update" || h.info.Verb == "patch")
	case "binding":
		return h.res.GroupVersion.Group == "" && h.res.Plural == "pods" && h.info.Verb == "create"
	case "eviction":
		return h.res.GroupVersion.Group == "" && h.res.Plural == "pods" && h.info.Verb == "create"
	case "log":
		return h.res.GroupVersion.Group == "" && h.res.Plural == "pods" && h.info.Verb == "get"
	case "finalize":
		return h.res.GroupVersion.Group == "" && h.res.Plural == "namespaces" && h.info.Verb == "update"
	}
	return false
}

func (h *handler) verbAllowed(verb string) bool {
	if h.res.Verbs == nil || h.info.Subresource != "" {
		return true
	}
	for _, v := range h.res.Verbs {
		if v == verb {
			return true
		}
	}
	return false
}

// writeResult writes out, as a Table or metadata when the client asked so.
func (h *handler) writeResult(code int, out runtime.Object) {
	// A client that prefers protobuf gets it for plain objects; one that
	// asks for a Table or metadata in JSON first gets that.
	pbForm, pb := protobufForm(h.r)
	switch want := wantedForm(h.r); {
	case pb && pbForm != formObject && h.info.Subresource == "":
		writeProtobuf(h.w, code, toPartialMetadata(out).(runtime.Object))
	case want == formTable && h.info.Subresource == "":
		t, err := h.s.toTable(h.res, out, h.r)
		if err != nil {
			writeError(h.w, err)
			return
		}
		writeJSON(h.w, code, t)
	case (want == formPartialMetadata || want == formPartialMetadataList) && h.info.Subresource == "":
		writeJSON(h.w, code, toPartialMetadata(out))
	case pb && pbForm == formObject:
		if data, ok := h.stored.response(h.res, out); ok {
			h.w.Header().Set("Content-Type", protobufType)
			h.w.WriteHeader(code)
			_, _ = h.w.Write(data)
			return
		}
		writeProtobuf(h.w, code, out)
	default:
		writeObject(h.w, code, out)
	}
}

func (h *handler) dryRun() bool { return len(h.r.URL.Query()["dryRun"]) > 0 }

// decodeBody decodes the request body as the resource's object.
func (h *handler) decodeBody() (runtime.Object, error) {
	body, err := readBody(h.r, h.s.cfg.MaxRequestBodyBytes)
	if err != nil {
		return nil, err
	}
	obj := h.res.New()
	if err := decodeRequest(h.w, h.r, body, obj, h.res.GroupVersionKind()); err != nil {
		return nil, err
	}
	return obj, nil
}

func (h *handler) create(ctx context.Context) (int, runtime.Object, error) {
	obj, err := h.decodeBody()
	if err != nil {
		return 0, nil, err
	}
	acc, _ := meta.Accessor(obj)
	if err := h.checkNamespace(acc); err != nil {
		return 0, nil, err
	}
	generate := acc.GetName() == "" && acc.GetGenerateName() != ""
	for attempt := 0; ; attempt++ {
		if generate {
			acc.SetName(acc.GetGenerateName() + nameSuffix())
		}
		created, err := h.s.createObject(ctx, h.res, obj, h.dryRun())
		if generate && attempt < generateNameRetries && apierrors.IsAlreadyExists(err) {
			// A generated name that is taken is tried again with another
			// suffix, as upstream does (KEP 4420): 5 random characters
			// collide about 3 times among 10,000 pods of a ReplicaSet, and
			// each collision fails a whole batch of its controller.
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, created, nil
	}
}

// generateNameRetries is how many more names a create with generateName
// tries when the generated one is taken (upstream's number).
const generateNameRetries = 7

// nameSuffix is the random part of a generated name.
var nameSuffix = func() string { return utilrand.String(5) }

// checkNamespace fills or checks the object's namespace against the URL's.
func (h *handler) checkNamespace(acc metav1.Object) error {
	if !h.res.Namespaced {
		acc.SetNamespace("")
		return nil
	}
	switch ns := acc.GetNamespace(); {
	case ns == "":
		acc.SetNamespace(h.info.Namespace)
	case h.info.Namespace != "" && ns != h.info.Namespace:
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if acc.GetNamespace() == "" {
		return apierrors.NewBadRequest("the namespace of the provided object is empty")
	}
	return nil
}

// createObject stamps, defaults, validates and stores a new object.
func (s *server) createObject(ctx context.Context, res *registry.Resource, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	acc.SetUID(uuid.NewUUID())
	acc.SetCreationTimestamp(metav1.Now().Rfc3339Copy())
	acc.SetResourceVersion("")
	acc.SetGeneration(1)
	acc.SetDeletionTimestamp(nil)
	acc.SetDeletionGracePeriodSeconds(nil)
	acc.SetSelfLink("")
	if res.Default != nil {
		res.Default(obj)
	}
	if res.PrepareForCreate != nil {
		res.PrepareForCreate(obj)
	}
	nameFn := apivalidation.NameIsDNSSubdomain
	if res.ValidateName != nil {
		nameFn = res.ValidateName
	}
	errs := apivalidation.ValidateObjectMetaAccessor(acc, res.Namespaced, nameFn, field.NewPath("metadata"))
	if res.Validate != nil {
		errs = append(errs, res.Validate(obj)...)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), acc.GetName(), errs)
	}
	if err := s.admit(ctx, obj); err != nil {
		return nil, err
	}
	if res.Namespaced {
		if err := s.namespaceAcceptsContent(ctx, res, acc); err != nil {
			return nil, err
		}
	}
	if dryRun {
		return obj, nil
	}
	svc, isService := obj.(*corev1.Service)
	if isService {
		// An existing service is AlreadyExists, not a clash over its address.
		if _, err := s.cfg.Storage.Get(ctx, objectKey(res, acc.GetNamespace(), acc.GetName())); err == nil {
			return nil, apierrors.NewAlreadyExists(groupResource(res), acc.GetName())
		}
		if err := s.alloc.assign(ctx, svc); err != nil {
			return nil, err
		}
	}
	data, err := s.store.encode(res, obj)
	if err == nil {
		var rev int64
		if rev, err = storage.CreateWithTTL(ctx, s.cfg.Storage, objectKey(res, acc.GetNamespace(), acc.GetName()), data, s.ttl(res)); err != nil {
			err = storageError(err, res, acc.GetName())
		}
		acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	if err != nil {
		if isService {
			s.alloc.releaseAll(context.WithoutCancel(ctx), svc)
		}
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	recordStoredWrite(ctx, obj, data)
	return obj, nil
}

// namespaceAcceptsContent refuses objects in a namespace that does not exist or is terminating.
func (s *server) namespaceAcceptsContent(ctx context.Context, res *registry.Resource, acc metav1.Object) error {
	nsRes := s.namespaces()
	if nsRes == nil {
		return nil
	}
	// As upstream's NamespaceLifecycle admission reads its informer, the
	// watch cache answers for an active namespace it holds, unless this
	// server has started deleting the namespace since the cache's copy. A
	// namespace the cache does not hold (created a moment ago) or holds as
	// terminating (perhaps since created again) is looked up in etcd.
	name := acc.GetNamespace()
	if terminating, rev, ok := s.store.cachedNamespaceTerminating(nsRes, name); ok && !terminating && !s.store.deleting.cacheMayLag(name, rev) {
		return nil
	}
	ns, _, err := s.store.get(ctx, nsRes, "", name)
	if err != nil {
		return err
	}
	nsAcc, _ := meta.Accessor(ns)
	if nsAcc.GetDeletionTimestamp() != nil {
		e := apierrors.NewForbidden(groupResource(res), acc.GetName(), fmt.Errorf("unable to create new content in namespace %s because it is being terminated", acc.GetNamespace()))
		e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: "NamespaceTerminating", Message: fmt.Sprintf("namespace %s is being terminated", acc.GetNamespace()), Field: "metadata.namespace",
		})
		return e
	}
	return nil
}

func (s *server) namespaces() *registry.Resource {
	return s.resources[coreV1.WithResource("namespaces")]
}

// updateFunc computes the new object from the current one; it returns an
// API error to refuse the update. Given to guaranteedUpdate it owns cur (it
// may change and return it); given to guaranteedUpdateReadOnly it only
// reads cur (see there).
type updateFunc func(cur runtime.Object) (runtime.Object, error)

// guaranteedUpdate applies tryUpdate to the current object and stores the
// result, retrying on storage conflicts (tryUpdate sees the fresh object, so a
// client's stale resourceVersion still gets its 409). An update that removes
// the last finalizer of an object being deleted deletes it.
//
// As upstream's cacher does (it passes the watch cache's copy to etcd3's
// GuaranteedUpdate as cachedExistingObject), the first attempt starts from
// the watch cache's copy when it holds one, sparing a read of etcd for most
// updates. That copy may lag etcd: a write conditional on its revision
// conflicts and is retried from a fresh read; an error from tryUpdate (a
// client's resourceVersion newer than the cache's is a 409 on the cached
// copy) or a no-op is confirmed by running again on a fresh read before it
// is answered, unless the fresh read finds the same revision. An object the
// cache does not hold is read from etcd, so a 404 is etcd's. Dry runs read
// etcd, as upstream's do.
//
// tryUpdate owns cur: cur is a deep copy of the object a watch decoded, or
// decoded for this attempt alone.
func (s *server) guaranteedUpdate(ctx context.Context, res *registry.Resource, namespace, name string, dryRun bool, tryUpdate updateFunc) (runtime.Object, error) {
	return s.doGuaranteedUpdate(ctx, res, namespace, name, dryRun, false, tryUpdate)
}

// guaranteedUpdateReadOnly is guaranteedUpdate for a tryUpdate that treats
// cur as read-only, which spares a deep copy of the object on each write:
// cur may be the very object the watch memo decoded, shared with every
// watcher and in-process informer, which nothing may modify.
//
// tryUpdate must build the object it returns copy-on-write: a copy of cur's
// top-level struct (ownedCopy), never cur itself, in which it replaces
// rather than modifies what it changes; a slice or map of cur's is copied
// before anything in it changes (as setPodCondition does). What is done to
// that object afterwards writes only to its top-level struct and its
// ObjectMeta, held by value (resourceVersion, kind): admission only reads
// it, encode writes to a copy of it, and a Service gets its own spec before
// addresses are assigned into it. Each attempt after the first reads cur
// afresh from etcd, so no retry sees an object an earlier attempt built.
func (s *server) guaranteedUpdateReadOnly(ctx context.Context, res *registry.Resource, namespace, name string, dryRun bool, tryUpdate updateFunc) (runtime.Object, error) {
	return s.doGuaranteedUpdate(ctx, res, namespace, name, dryRun, true, tryUpdate)
}

// doGuaranteedUpdate is guaranteedUpdate, or with readOnly guaranteedUpdateReadOnly.
func (s *server) doGuaranteedUpdate(ctx context.Context, res *registry.Resource, namespace, name string, dryRun, readOnly bool, tryUpdate updateFunc) (runtime.Object, error) {
	key := objectKey(res, namespace, name)
	var (
		cur    runtime.Object
		stored storage.KeyValue // cur as stored
		cached bool
		err    error
	)
	if !dryRun {
		cur, stored, cached = s.store.getCachedStored(res, namespace, name, readOnly)
	}
	if !cached {
		if cur, stored, err = s.store.getStored(ctx, res, namespace, name); err != nil {
			return nil, err
		}
	}
	fresh := !cached // cur was read from etcd, not from the watch cache
	// refresh reads the object from etcd for the next attempt.
	refresh := func() error {
		cur, stored, err = s.store.getStored(ctx, res, namespace, name)
		fresh = true
		return err
	}
	for attempt := 0; ; attempt++ {
		// cur is not used once tryUpdate has it (whether the write
		// changes anything is told by the stored bytes, and every retry
		// reads cur again): unless readOnly, it is this attempt's own and
		// tryUpdate may change it and return it, with no copy.
		next, err := tryUpdate(cur)
		if err == nil {
			err = s.admit(ctx, next)
		}
		if err != nil {
			if fresh {
				return nil, err
			}
			// The cached copy may be stale: the answer is the one for the
			// current object. The same revision would give the same error.
			cachedRev := stored.Revision
			if rerr := refresh(); rerr != nil {
				return nil, rerr
			}
			if stored.Revision == cachedRev {
				return nil, err
			}
			continue
		}
		rev := stored.Revision
		acc, _ := meta.Accessor(next)
		acc.SetResourceVersion(strconv.FormatInt(rev, 10))
		// As upstream's storage does, a write is a no-op when it would
		// store the same bytes (reflective comparison of the objects was
		// a twentieth of the API server's CPU under load).
		var data []byte
		unchanged := dryRun
		if !dryRun {
			if data, err = s.store.encode(res, next); err != nil {
				return nil, err
			}
			unchanged = bytes.Equal(data, stored.Value)
		}
		if unchanged {
			if !fresh {
				// No change to the cached copy may be a change to the
				// current object.
				if err := refresh(); err != nil {
					return nil, err
				}
				continue
			}
			return next, nil
		}
		if deletionComplete(res, next) {
			if _, _, err := s.cfg.Storage.Delete(ctx, key, rev); err != nil {
				if errors.Is(err, storage.ErrConflict) && attempt < 100 {
					if err := refresh(); err != nil {
						return nil, err
					}
					continue
				}
				return nil, storageError(err, res, name)
			}
			s.deleted(ctx, next)
			return next, nil
		}
		if svc, ok := next.(*corev1.Service); ok {
			if readOnly {
				// assign may fill in the spec's addresses and node
				// ports: they must not land in cur's.
				svc.Spec = *svc.Spec.DeepCopy()
			}
			// A type change may call for an address or node ports.
			if err := s.alloc.assign(ctx, svc); err != nil {
				if !fresh {
					// Perhaps refused for the cached copy's sake.
					if rerr := refresh(); rerr != nil {
						return nil, rerr
					}
					continue
				}
				return nil, err
			}
			// Its addresses are part of what is stored.
			if data, err = s.store.encode(res, next); err != nil {
				return nil, err
			}
		}
		newRev, err := storage.UpdateWithTTL(ctx, s.cfg.Storage, key, data, rev, s.ttl(res))
		if errors.Is(err, storage.ErrConflict) && attempt < 100 {
			if err := refresh(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, storageError(err, res, name)
		}
		acc.SetResourceVersion(strconv.FormatInt(newRev, 10))
		next.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
		recordStoredWrite(ctx, next, data)
		return next, nil
	}
}

// deletionComplete reports that an object marked for deletion has nothing
// left holding it: no finalizers and no grace period to wait out.
func deletionComplete(res *registry.Resource, obj runtime.Object) bool {
	acc, _ := meta.Accessor(obj)
	if acc.GetDeletionTimestamp() == nil || len(acc.GetFinalizers()) > 0 {
		return false
	}
	if g := acc.GetDeletionGracePeriodSeconds(); g != nil && *g > 0 {
		return false
	}
	return len(specFinalizers(obj)) == 0
}

// checkResourceVersion refuses an update whose resourceVersion is stale.
func checkResourceVersion(res *registry.Resource, name, given string, cur runtime.Object) error {
	if given == "" {
		return nil
	}
	acc, _ := meta.Accessor(cur)
	if given != acc.GetResourceVersion() {
		return apierrors.NewConflict(groupResource(res), name, errors.New(conflictMessage))
	}
	return nil
}

func (h *handler) update(ctx context.Context) (runtime.Object, error) {
	obj, err := h.decodeBody()
	if err != nil {
		return nil, err
	}
	acc, _ := meta.Accessor(obj)
	if err := h.checkNamespace(acc); err != nil {
		return nil, err
	}
	if acc.GetName() != h.info.Name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), h.info.Name))
	}
	given := acc.GetResourceVersion()
	tryUpdate := func(cur runtime.Object) (runtime.Object, error) {
		if err := checkResourceVersion(h.res, h.info.Name, given, cur); err != nil {
			return nil, err
		}
		in := obj
		if h.info.Subresource == "" {
			// prepareUpdate builds the stored object from in itself; a
			// retry needs the client's object as sent. Subresources only
			// default it (the same on every attempt) and read from it.
			in = obj.DeepCopyObject()
		}
		return h.s.prepareUpdate(h.res, h.info.Subresource, in, cur)
	}
	if h.info.Subresource == "status" || h.info.Subresource == "finalize" {
		// prepareUpdate only reads cur for these.
		return h.s.guaranteedUpdateReadOnly(ctx, h.res, h.info.Namespace, h.info.Name, h.dryRun(), tryUpdate)
	}
	return h.s.guaranteedUpdate(ctx, h.res, h.info.Namespace, h.info.Name, h.dryRun(), tryUpdate)
}

// prepareUpdate turns a client's new object into the one to store: what the
// client may not change is taken from cur, defaults applied, the result
// validated, and the generation bumped when the spec changed.
//
// For the main resource it owns cur (see updateFunc) and builds the result
// from obj itself, defaulted. For status and finalize it only reads cur, as
// guaranteedUpdateReadOnly asks: the result is a copy of cur's top-level
// struct with its status (obj's, shared with it) or spec.finalizers
// replaced. That result is not defaulted, as defaulting would write into
// what it shares with cur, and as upstream does not either: it defaults a
// body as it decodes it, and its status strategies take the spec from the
// stored object, defaulted when it was written. A status write defaults obj
// before its status is taken.
func (s *server) prepareUpdate(res *registry.Resource, subresource string, obj, cur runtime.Object) (runtime.Object, error) {
	var next runtime.Object
	defaultNext := false
	switch subresource {
	case "status":
		if res.Default != nil {
			res.Default(obj)
		}
		next = ownedCopy(cur)
		copyField(next, obj, "Status")
	case "finalize":
		next = ownedCopy(cur)
		setSpecFinalizers(next, specFinalizers(obj))
	default:
		next = obj
		defaultNext = true
		if res.StatusSubresource {
			copyField(next, cur, "Status")
		}
	}
	acc, _ := meta.Accessor(next)
	curAcc, _ := meta.Accessor(cur)
	acc.SetUID(curAcc.GetUID())
	acc.SetCreationTimestamp(curAcc.GetCreationTimestamp())
	acc.SetDeletionTimestamp(curAcc.GetDeletionTimestamp())
	acc.SetDeletionGracePeriodSeconds(curAcc.GetDeletionGracePeriodSeconds())
	acc.SetGeneration(curAcc.GetGeneration())
	acc.SetResourceVersion(curAcc.GetResourceVersion())
	acc.SetSelfLink("")
	if defaultNext && res.Default != nil {
		res.Default(next)
	}
	if subresource == "" && res.PrepareForUpdate != nil {
		res.PrepareForUpdate(next, cur)
	}
	var errs field.ErrorList
	if subresource == "" {
		// A subresource's metadata is cur's: nothing of it changes.
		errs = apivalidation.ValidateObjectMetaAccessorUpdate(acc, curAcc, field.NewPath("metadata"))
	}
	switch {
	case subresource == "status" && res.ValidateStatus != nil:
		errs = append(errs, res.ValidateStatus(next, cur)...)
	case subresource == "" && res.ValidateUpdate != nil:
		errs = append(errs, res.ValidateUpdate(next, cur)...)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), acc.GetName(), errs)
	}
	// A status write takes the spec from cur (the cheap check matters: it
	// is the most frequent write).
	if subresource != "status" && specChanged(next, cur) {
		acc.SetGeneration(curAcc.GetGeneration() + 1)
	}
	return next, nil
}

// ownedCopy returns a copy of cur, which the caller owns, to become the
// next version of it while cur stays the old one for validation: a copy of
// the top-level struct suffices (what is changed in it is replaced, not
// modified in place), and leaves cur, which may be shared, untouched; kinds
// shallowCopy does not handle are deep-copied.
func ownedCopy(cur runtime.Object) runtime.Object {
	if next, ok := shallowCopy(cur); ok {
		return next
	}
	return cur.DeepCopyObject()
}

// specChanged compares the objects' Spec fields, or for kinds without a
// spec everything but metadata and status.
func specChanged(a, b runtime.Object) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	if fa := va.FieldByName("Spec"); fa.IsValid() {
		return !apiequality.Semantic.DeepEqual(fa.Interface(), vb.FieldByName("Spec").Interface())
	}
	for i := 0; i < va.NumField(); i++ {
		name := va.Type().Field(i).Name
		if name == "TypeMeta" || name == "ObjectMeta" || name == "Status" {
			continue
		}
		if !apiequality.Semantic.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return true
		}
	}
	return false
}

// copyField sets dst's named top-level field to src's.
func copyField(dst, src runtime.Object, name string) {
	fd := reflect.ValueOf(dst).Elem().FieldByName(name)
	fs := reflect.ValueOf(src).Elem().FieldByName(name)
	if fd.IsValid() && fs.IsValid() && fd.CanSet() {
		fd.Set(fs)
	}
}

// specFinalizers returns a namespace's spec.finalizers (nil for other kinds).
func specFinalizers(obj runtime.Object) []string {
	spec := reflect.ValueOf(obj).Elem().FieldByName("Spec")
	if !spec.IsValid() || spec.Kind() != reflect.Struct {
		return nil
	}
	f := spec.FieldByName("Finalizers")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return nil
	}
	out := make([]string, f.Len())
	for i := range out {
		out[i] = f.Index(i).String()
	}
	return out
}

func setSpecFinalizers(obj runtime.Object, finalizers []string) {
	f := reflect.ValueOf(obj).Elem().FieldByName("Spec").FieldByName("Finalizers")
	if !f.IsValid() {
		return
	}
	v := reflect.MakeSlice(f.Type(), len(finalizers), len(finalizers))
	for i, s := range finalizers {
		v.Index(i).SetString(s)
	}
	f.Set(v)
}

// deleteOptions reads DeleteOptions from the body or the query.
func (h *handler) deleteOptions() (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(h.r, h.s.cfg.MaxRequestBodyBytes)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if err := decodeRequest(h.w, h.r, body, opts, metav1.SchemeGroupVersion.WithKind("DeleteOptions")); err != nil {
			return nil, err
		}
	}
	q := h.r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid gracePeriodSeconds %q", v))
		}
		opts.GracePeriodSeconds = &g
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("DeleteOptions").GroupKind(), "", field.ErrorList{
				field.NotSupported(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, []string{"Foreground", "Background", "Orphan"}),
			})
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

func (h *handler) delete(ctx context.Context, name string) (int, runtime.Object, error) {
	opts, err := h.deleteOptions()
	if err != nil {
		return 0, nil, err
	}
	return h.s.deleteObject(ctx, h.res, h.info.Namespace, name, opts, h.dryRun())
}

// deleteObject deletes an object at once, or marks it for deletion when
// finalizers, a propagation policy or a grace period must run first (202).
func (s *server) deleteObject(ctx context.Context, res *registry.Resource, namespace, name string, opts *metav1.DeleteOptions, dryRun bool) (int, runtime.Object, error) {
	key := objectKey(res, namespace, name)
	for attempt := 0; attempt < 100; attempt++ {
		cur, rev, err := s.store.get(ctx, res, namespace, name)
		if err != nil {
			return 0, nil, err
		}
		if res.GroupVersion.Group == "" && res.Plural == "namespaces" && !dryRun {
			s.store.deleting.note(name, rev) // see namespaceAcceptsContent
		}
		acc, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != acc.GetUID() {
				return 0, nil, apierrors.NewConflict(groupResource(res), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, acc.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != acc.GetResourceVersion() {
				return 0, nil, apierrors.NewConflict(groupResource(res), name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, acc.GetResourceVersion()))
			}
		}
		next := cur.DeepCopyObject()
		nextAcc, _ := meta.Accessor(next)
		grace := gracePeriod(res, cur, opts)
		finalizers := withPropagationFinalizer(nextAcc.GetFinalizers(), opts)
		pending := len(finalizers) > 0 || grace > 0 || len(specFinalizers(cur)) > 0
		if !pending {
			if dryRun {
				return http.StatusOK, cur, nil
			}
			if _, delRev, err := s.cfg.Storage.Delete(ctx, key, rev); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					continue
				}
				return 0, nil, storageError(err, res, name)
			} else {
				acc.SetResourceVersion(strconv.FormatInt(delRev, 10))
			}
			s.deleted(ctx, cur)
			return http.StatusOK, cur, nil
		}
		nextAcc.SetFinalizers(finalizers)
		now := metav1.Now().Rfc3339Copy()
		if ts := nextAcc.GetDeletionTimestamp(); ts == nil || (grace < valueOr(nextAcc.GetDeletionGracePeriodSeconds(), 0)) {
			deadline := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
			nextAcc.SetDeletionTimestamp(&deadline)
			nextAcc.SetDeletionGracePeriodSeconds(&grace)
		}
		markTerminating(next)
		if apiequality.Semantic.DeepEqual(cur, next) || dryRun {
			return http.StatusAccepted, next, nil
		}
		data, err := s.store.encode(res, next)
		if err != nil {
			return 0, nil, err
		}
		newRev, err := storage.UpdateWithTTL(ctx, s.cfg.Storage, key, data, rev, s.ttl(res))
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, nil, storageError(err, res, name)
		}
		nextAcc.SetResourceVersion(strconv.FormatInt(newRev, 10))
		return http.StatusAccepted, next, nil
	}
	return 0, nil, apierrors.NewConflict(groupResource(res), name, errors.New("too many concurrent changes"))
}

func valueOr(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

// withPropagationFinalizer adds the finalizer that the orphan or foreground
// policy asks the garbage collector to honour.
func withPropagationFinalizer(finalizers []string, opts *metav1.DeleteOptions) []string {
	if opts.PropagationPolicy == nil && opts.OrphanDependents == nil {
		return finalizers // the resource's default, background: keep what is there
	}
	add := ""
	switch {
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationOrphan,
		opts.PropagationPolicy == nil && opts.OrphanDependents != nil && *opts.OrphanDependents:
		add = metav1.FinalizerOrphanDependents
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationForeground:
		add = metav1.FinalizerDeleteDependents
	}
	// An explicit policy replaces an earlier one, as upstream: never both.
	var out []string
	for _, f := range finalizers {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	if add != "" {
		out = append(out, add)
	}
	return out
}

func (h *handler) deleteCollection(ctx context.Context) (runtime.Object, error) {
	opts, err := h.deleteOptions()
	if err != nil {
		return nil, err
	}
	listObj, err := h.list(ctx)
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(listObj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	for _, item := range items {
		acc, _ := meta.Accessor(item)
		if _, _, err := h.s.deleteObject(ctx, h.res, acc.GetNamespace(), acc.GetName(), opts, h.dryRun()); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return listObj, nil
}

// deleted releases what a removed object held: a service's cluster IP
// and node ports.
func (s *server) deleted(ctx context.Context, obj runtime.Object) {
	if svc, ok := obj.(*corev1.Service); ok {
		s.alloc.releaseAll(context.WithoutCancel(ctx), svc)
	}
}
