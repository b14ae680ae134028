// Package gc is the garbage collector: it makes ownerReferences mean what
// they mean in Kubernetes. It watches every resource the API server serves
// with list, watch and delete (found through discovery, looked at again
// every DiscoveryInterval), and
//   - deletes a dependent whose owners are all gone (deleted, or the name
//     now has another UID): background propagation;
//   - for an owner being deleted with the foregroundDeletion finalizer
//     (propagationPolicy Foreground), deletes its dependents and removes
//     the finalizer once no dependent with blockOwnerDeletion remains;
//   - for an owner being deleted with the orphan finalizer
//     (propagationPolicy Orphan), removes its reference from every
//     dependent, then the finalizer.
//
// The API server adds those finalizers on delete; this package only acts
// on them. The decisions are the pure functions Decide and Foreground;
// Run is the loop around them.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/lru"
)

// Tuning.
const (
	Workers           = 8
	DiscoveryInterval = 30 * time.Second
	RetryBase         = 5 * time.Millisecond
	RetryMax          = 30 * time.Second
	// absentCacheSize bounds the memory of owner UIDs known to be gone.
	absentCacheSize = 1000
)

// ownerUIDIndex indexes objects by the UIDs of their owners. Its name is
// the collector's own: it is added to informers shared with other
// controllers too.
const ownerUIDIndex = "garbagecollector.ownerUID"

func ownerUIDIndexFunc(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	refs := m.GetOwnerReferences()
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, string(r.UID))
	}
	return out, nil
}

// Options tune Run.
type Options struct {
	// Informers, if set, is a typed informer factory shared with other
	// controllers. The collector watches the resources of Shared through
	// it (the others through metadata informers of its own), and calls
	// its Start exactly once, after registering its indexes and handlers
	// (also when it fails to start); it never shuts it down.
	Informers informers.SharedInformerFactory
	// Shared are the resources to watch through Informers: those whose
	// typed informers the sharing controllers hold anyway (pods,
	// ReplicaSets...), so that their objects are decoded and cached once
	// for all rather than once more as metadata for the collector. A
	// resource that the factory has no typed informer for, or that the
	// server does not serve, falls back to a metadata informer or is not
	// watched. Listing one that no other controller watches costs more
	// than the metadata informer it replaces: list only shared ones.
	Shared []schema.GroupVersionResource
}

// Run runs the collector until ctx is done, then returns nil. It returns
// an error only if it cannot start (discovery fails entirely). client is
// accepted for symmetry with the other controllers (events may use it);
// md watches, reads, patches and deletes objects of every kind, as
// metadata only (PartialObjectMetadata: the collector needs nothing else,
// and decoding whole objects of every kind, pods included, would cost the
// control plane much CPU), but for opts.Shared, watched through the
// shared typed informers of opts.Informers; disco finds the resources
// (pass a memory-cached client: it is invalidated on every rediscovery).
func Run(ctx context.Context, client kubernetes.Interface, md metadata.Interface, disco discovery.DiscoveryInterface, logger *slog.Logger, opts Options) error {
	if logger == nil {
		logger = slog.Default()
	}
	c := &collector{
		client:    client,
		md:        md,
		disco:     disco,
		log:       logger.With("controller", "garbagecollector"),
		factory:   metadatainformer.NewSharedInformerFactory(md, 0),
		shared:    opts.Informers,
		informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		byUID:     map[types.UID]item{},
		absent:    lru.New(absentCacheSize),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[item](RetryBase, RetryMax),
			workqueue.TypedRateLimitingQueueConfig[item]{Name: "garbagecollector"}),
	}
	if opts.Informers != nil {
		c.sharedGVRs = make(map[schema.GroupVersionResource]bool, len(opts.Shared))
		for _, gvr := range opts.Shared {
			c.sharedGVRs[gvr] = true
		}
		// Start exactly once, whatever happens: the other sharing
		// controllers' informers wait for it.
		defer c.startShared(ctx)
	}
	defer c.factory.Shutdown()
	defer c.queue.ShutDown()
	if err := c.discover(ctx); err != nil {
		return fmt.Errorf("garbage collector: %w", err)
	}
	c.log.Info("garbage collector started", "resources", len(c.informers))

	var wg sync.WaitGroup
	for range Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(DiscoveryInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if cd, ok := c.disco.(discovery.CachedDiscoveryInterface); ok {
					cd.Invalidate()
				}
				if err := c.discover(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("rediscovering resources", "err", err)
				}
			}
		}
	})
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// item identifies one object: its resource, coordinates and UID.
type item struct {
	Resource  schema.GroupVersionResource
	Namespace string
	Name      string
	UID       types.UID
}

func (i item) key() string {
	if i.Namespace == "" {
		return i.Name
	}
	return i.Namespace + "/" + i.Name
}

type collector struct {
	client kubernetes.Interface
	md     metadata.Interface
	disco  discovery.DiscoveryInterface
	log    *slog.Logger
	queue  workqueue.TypedRateLimitingInterface[item]
	absent *lru.Cache // owner UIDs known to be gone

	factory metadatainformer.SharedInformerFactory
	// shared, if set, is the typed factory shared with other controllers,
	// for the resources of sharedGVRs; sharedStarted once its Start has
	// been called.
	shared        informers.SharedInformerFactory
	sharedGVRs    map[schema.GroupVersionResource]bool
	sharedStarted sync.Once

	mu        sync.RWMutex
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
	kinds     map[schema.GroupVersionKind]Kind
	byUID     map[types.UID]item // every object the informers hold
}

// startShared calls Start on the shared factory, once.
func (c *collector) startShared(ctx context.Context) {
	if c.shared == nil {
		return
	}
	c.sharedStarted.Do(func() { c.shared.Start(ctx.Done()) })
}

// informerFor returns the informer to watch gvr with: the shared typed
// one where there is one, else a metadata informer of the collector's.
func (c *collector) informerFor(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	if c.shared != nil && c.sharedGVRs[gvr] {
		if gi, err := c.shared.ForResource(gvr); err == nil {
			return gi.Informer()
		}
		c.log.Debug("no shared typed informer: watching as metadata", "resource", gvr.String())
	}
	return c.factory.ForResource(gvr).Informer()
}

// discover (re)reads the served resources, starts informers for new ones
// and waits for them to sync.
func (c *collector) discover(ctx context.Context) error {
	_, all, err := c.disco.ServerGroupsAndResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return fmt.Errorf("discovering resources: %w", err)
	}
	preferred, err := discovery.ServerPreferredResources(c.disco)
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return fmt.Errorf("discovering preferred resources: %w", err)
	}
	kinds := Kinds(all)
	var started []cache.InformerSynced
	c.mu.Lock()
	c.kinds = kinds
	for _, gvr := range Watchable(preferred) {
		if c.informers[gvr] != nil {
			continue
		}
		inf := c.informerFor(gvr)
		if err := inf.AddIndexers(cache.Indexers{ownerUIDIndex: ownerUIDIndexFunc}); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("indexing %s: %w", gvr, err)
		}
		// No resync: a shared informer's default period is its owner's.
		if _, err := inf.AddEventHandlerWithResyncPeriod(c.handler(gvr), 0); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("watching %s: %w", gvr, err)
		}
		c.informers[gvr] = inf
		started = append(started, inf.HasSynced)
	}
	c.mu.Unlock()
	if len(started) == 0 {
		return nil
	}
	c.factory.Start(ctx.Done())
	c.startShared(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), started...) {
		return ctx.Err()
	}
	return nil
}

func asObject(obj any) (metav1.Object, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, err := meta.Accessor(obj)
	return m, err == nil
}

func itemOf(gvr schema.GroupVersionResource, m metav1.Object) item {
	return item{Resource: gvr, Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID()}
}

// handler keeps byUID current and queues what may need collecting.
func (c *collector) handler(gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			m, ok := asObject(obj)
			if !ok {
				return
			}
			it := itemOf(gvr, m)
			c.mu.Lock()
			c.byUID[it.UID] = it
			c.mu.Unlock()
			if len(m.GetOwnerReferences()) > 0 || m.GetDeletionTimestamp() != nil {
				c.queue.Add(it)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, ok1 := asObject(oldObj)
			cur, ok2 := asObject(newObj)
			if !ok1 || !ok2 || old.GetResourceVersion() == cur.GetResourceVersion() {
				return
			}
			refsChanged := !slices.EqualFunc(old.GetOwnerReferences(), cur.GetOwnerReferences(), sameRef)
			deletionChanged := (old.GetDeletionTimestamp() == nil) != (cur.GetDeletionTimestamp() == nil) ||
				!slices.Equal(old.GetFinalizers(), cur.GetFinalizers())
			if !refsChanged && !deletionChanged {
				return
			}
			c.queue.Add(itemOf(gvr, cur))
			if refsChanged {
				// An owner deleting its dependents may no longer be blocked.
				c.enqueueOwners(old.GetOwnerReferences())
				c.enqueueOwners(cur.GetOwnerReferences())
			}
		},
		DeleteFunc: func(obj any) {
			m, ok := asObject(obj)
			if !ok {
				return
			}
			c.mu.Lock()
			if c.byUID[m.GetUID()].Resource == gvr {
				delete(c.byUID, m.GetUID())
			}
			c.mu.Unlock()
			for _, dep := range c.dependents(m.GetUID()) {
				c.queue.Add(dep.item)
			}
			c.enqueueOwners(m.GetOwnerReferences())
		},
	}
}

func sameRef(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name &&
		boolValue(a.Controller) == boolValue(b.Controller) && boolValue(a.BlockOwnerDeletion) == boolValue(b.BlockOwnerDeletion)
}

func boolValue(b *bool) bool { return b != nil && *b }

func (c *collector) enqueueOwners(refs []metav1.OwnerReference) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, r := range refs {
		if it, ok := c.byUID[r.UID]; ok {
			c.queue.Add(it)
		}
	}
}

// cached is one object from the informers: PartialObjectMetadata from
// the collector's own, a typed object from the shared ones, which must
// not be modified either way.
type cached struct {
	item
	obj metav1.Object
}

// dependents returns the cached objects that refer to owner.
func (c *collector) dependents(owner types.UID) []cached {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []cached
	for gvr, inf := range c.informers {
		objs, err := inf.GetIndexer().ByIndex(ownerUIDIndex, string(owner))
		if err != nil {
			continue
		}
		for _, o := range objs {
			u, err := meta.Accessor(o)
			if err != nil {
				continue
			}
			out = append(out, cached{item: itemOf(gvr, u), obj: u})
		}
	}
	return out
}

// fromCache returns the informer's copy of it, nil if it has none (or
// one with another UID). It must not be modified.
func (c *collector) fromCache(it item) metav1.Object {
	c.mu.RLock()
	inf := c.informers[it.Resource]
	c.mu.RUnlock()
	if inf == nil {
		return nil
	}
	obj, ok, err := inf.GetIndexer().GetByKey(it.key())
	if err != nil || !ok {
		return nil
	}
	u, err := meta.Accessor(obj)
	if err != nil || u.GetUID() != it.UID {
		return nil
	}
	return u
}

func (c *collector) resource(it item) metadata.ResourceInterface {
	r := c.md.Resource(it.Resource)
	if it.Namespace != "" {
		return r.Namespace(it.Namespace)
	}
	return r
}

// fresh reads it from the API; nil (and no error) if it is gone or was
// replaced by another object of the same name.
func (c *collector) fresh(ctx context.Context, it item) (*metav1.PartialObjectMetadata, error) {
	u, err := c.resource(it).Get(ctx, it.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", it.Resource.Resource, it.key(), err)
	}
	if u.GetUID() != it.UID {
		return nil, nil
	}
	return u, nil
}

func (c *collector) processNext(ctx context.Context) bool {
	it, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(it)
	retry, err := c.sync(ctx, it)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.log.Warn("garbage collection failed, retrying", "resource", it.Resource.String(), "object", it.key(), "err", err)
		}
		c.queue.AddRateLimited(it)
	case retry:
		c.queue.AddRateLimited(it)
	default:
		c.queue.Forget(it)
	}
	return true
}

// sync looks at one object: as an owner being deleted (orphan or
// foreground), or as a dependent whose owners may be gone.
func (c *collector) sync(ctx context.Context, it item) (retry bool, err error) {
	obj := c.fromCache(it)
	if obj == nil {
		return false, nil
	}
	if obj.GetDeletionTimestamp() != nil {
		fins := obj.GetFinalizers()
		if slices.Contains(fins, metav1.FinalizerOrphanDependents) {
			return false, c.orphan(ctx, it)
		}
		if slices.Contains(fins, metav1.FinalizerDeleteDependents) {
			return false, c.foreground(ctx, it)
		}
		return false, nil // being deleted; nothing for us to do
	}
	if len(obj.GetOwnerReferences()) == 0 {
		return false, nil
	}
	d := c.decide(ctx, it, obj)
	if d.Action == Keep {
		return d.Unresolved, nil
	}
	// Act only on what the API says now, not on the cache.
	latest, err := c.fresh(ctx, it)
	if err != nil || latest == nil {
		return false, err
	}
	d = c.decide(ctx, it, latest)
	switch d.Action {
	case RemoveRefs:
		refs := WithoutOwners(latest.GetOwnerReferences(), d.Remove...)
		c.log.Debug("removing references to owners gone or going", "resource", it.Resource.String(), "object", it.key(), "owners", d.Remove)
		return d.Unresolved, c.patchMeta(ctx, it, latest, "ownerReferences", refs)
	case Delete:
		c.log.Debug("deleting dependent", "resource", it.Resource.String(), "object", it.key(), "propagation", d.Policy)
		policy := d.Policy
		err := c.resource(it).Delete(ctx, it.Name, metav1.DeleteOptions{
			PropagationPolicy: &policy,
			Preconditions:     &metav1.Preconditions{UID: &it.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return false, nil // gone, or replaced by another object
		}
		if err != nil {
			return false, fmt.Errorf("deleting %s %s: %w", it.Resource.Resource, it.key(), err)
		}
	}
	return d.Unresolved, nil
}

// decide resolves the object's owners and asks Decide.
func (c *collector) decide(ctx context.Context, it item, obj metav1.Object) Decision {
	refs := obj.GetOwnerReferences()
	owners := make([]Owner, len(refs))
	for i, r := range refs {
		owners[i] = Owner{Ref: r, State: c.ownerState(ctx, it, r)}
	}
	return Decide(owners, obj.GetFinalizers(), len(c.dependents(it.UID)) > 0)
}

// ownerState finds the owner a reference points to: in the informers by
// UID, else with a GET by name (then compared by UID).
func (c *collector) ownerState(ctx context.Context, dep item, r metav1.OwnerReference) OwnerState {
	c.mu.RLock()
	owner, known := c.byUID[r.UID]
	c.mu.RUnlock()
	if known {
		if o := c.fromCache(owner); o != nil {
			return StateOf(o.GetDeletionTimestamp() != nil, o.GetFinalizers())
		}
	}
	if _, gone := c.absent.Get(r.UID); gone {
		return OwnerAbsent
	}
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		return OwnerAbsent // cannot name anything: it cannot exist
	}
	c.mu.RLock()
	k, ok := c.kinds[gv.WithKind(r.Kind)]
	c.mu.RUnlock()
	if !ok {
		c.log.Debug("owner kind not served", "object", dep.key(), "apiVersion", r.APIVersion, "kind", r.Kind)
		return OwnerUnknown
	}
	ns := ""
	if k.Namespaced {
		if dep.Namespace == "" {
			// A cluster-scoped object cannot be owned by a namespaced one.
			return OwnerAbsent
		}
		ns = dep.Namespace
	}
	o, err := c.fresh(ctx, item{Resource: k.Resource, Namespace: ns, Name: r.Name, UID: r.UID})
	if err != nil {
		c.log.Debug("looking up owner", "object", dep.key(), "owner", r.Name, "err", err)
		return OwnerUnknown
	}
	if o == nil {
		c.absent.Add(r.UID, struct{}{})
		return OwnerAbsent
	}
	return StateOf(o.GetDeletionTimestamp() != nil, o.GetFinalizers())
}

// orphan removes the owner's reference from all its dependents, then its
// orphan finalizer.
func (c *collector) orphan(ctx context.Context, owner item) error {
	deps, err := c.listDependents(ctx, owner)
	if err != nil {
		return fmt.Errorf("orphaning dependents of %s: %w", owner.key(), err)
	}
	var errs []error
	for _, dep := range deps {
		obj := dep.obj
		for attempt := 0; ; attempt++ {
			refs := obj.GetOwnerReferences()
			if refTo(refs, owner.UID) == nil {
				break
			}
			err := c.patchMeta(ctx, dep.item, obj, "ownerReferences", WithoutOwners(refs, owner.UID))
			if err == nil || apierrors.IsNotFound(err) {
				break
			}
			if !apierrors.IsConflict(err) || attempt >= 3 {
				errs = append(errs, err)
				break
			}
			latest, err := c.fresh(ctx, dep.item)
			if err != nil || latest == nil { // (nil checked before it is an interface)
				if err != nil {
					errs = append(errs, err)
				}
				break
			}
			obj = latest
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("orphaning dependents of %s: %w", owner.key(), err)
	}
	c.log.Info("orphaned dependents", "resource", owner.Resource.String(), "object", owner.key())
	return c.removeFinalizer(ctx, owner, metav1.FinalizerOrphanDependents)
}

// listDependents reads the objects that refer to owner from the API, not
// from the informers: an informer may not yet have delivered a dependent
// created just before the owner's deletion, and one left out here would
// keep its reference to an owner about to be gone, and so be collected as
// garbage instead of orphaned. A namespaced owner's dependents are in its
// namespace; a cluster-scoped owner's may be anywhere. Orphaning is rare
// enough for these lists to cost little.
func (c *collector) listDependents(ctx context.Context, owner item) ([]cached, error) {
	c.mu.RLock()
	namespaced := map[schema.GroupVersionResource]bool{}
	for _, k := range c.kinds {
		namespaced[k.Resource] = k.Namespaced
	}
	var gvrs []schema.GroupVersionResource
	for gvr := range c.informers {
		if owner.Namespace == "" || namespaced[gvr] {
			gvrs = append(gvrs, gvr)
		}
	}
	c.mu.RUnlock()
	var out []cached
	for _, gvr := range gvrs {
		list, err := c.md.Resource(gvr).Namespace(owner.Namespace).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			continue // no longer served
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvr.Resource, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if refTo(o.OwnerReferences, owner.UID) != nil {
				out = append(out, cached{item: itemOf(gvr, o), obj: o})
			}
		}
	}
	return out, nil
}

// foreground deletes the dependents of an owner being deleted in the
// foreground and removes its finalizer once none blocks it.
func (c *collector) foreground(ctx context.Context, owner item) error {
	deps := c.dependents(owner.UID)
	view := make([]Dependent, len(deps))
	for i, d := range deps {
		view[i] = Dependent{Refs: d.obj.GetOwnerReferences(), Deleting: d.obj.GetDeletionTimestamp() != nil}
	}
	toDelete, done := Foreground(owner.UID, view)
	for _, i := range toDelete {
		c.queue.Add(deps[i].item) // Decide deletes it: its owner waits for it
	}
	if !done {
		return nil // the dependents' deletions bring the owner back
	}
	c.log.Info("dependents deleted, finishing foreground deletion", "resource", owner.Resource.String(), "object", owner.key())
	return c.removeFinalizer(ctx, owner, metav1.FinalizerDeleteDependents)
}

// removeFinalizer removes finalizer f from the object as the API has it.
func (c *collector) removeFinalizer(ctx context.Context, it item, f string) error {
	for attempt := 0; ; attempt++ {
		obj, err := c.fresh(ctx, it)
		if err != nil || obj == nil {
			return err
		}
		if !slices.Contains(obj.GetFinalizers(), f) {
			return nil
		}
		err = c.patchMeta(ctx, it, obj, "finalizers", WithoutFinalizer(obj.GetFinalizers(), f))
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 3 {
			return fmt.Errorf("removing finalizer %s from %s: %w", f, it.key(), err)
		}
	}
}

// patchMeta sets one metadata field with a JSON merge patch that holds
// the object's resourceVersion, so it fails with a conflict if the object
// changed since it was read.
func (c *collector) patchMeta(ctx context.Context, it item, obj metav1.Object, field string, value any) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		field:             value,
		"resourceVersion": obj.GetResourceVersion(),
	}})
	if err != nil {
		return err
	}
	_, err = c.resource(it).Patch(ctx, it.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
