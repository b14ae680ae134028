// Package namespace is the namespace lifecycle controller. When a namespace
// is deleted the API server marks it (deletionTimestamp set, phase
// Terminating) but keeps it while spec.finalizers holds "kubernetes". This
// controller then deletes every namespaced object in it, through the API
// and with background propagation, checks again (with backoff) until none
// remain, records its progress in the namespace's status conditions as
// upstream does, and finally removes the "kubernetes" finalizer with the
// finalize subresource, after which the API server deletes the namespace.
//
// The decisions (what to delete, whether the namespace is empty, which
// conditions to report) are the pure functions Deletable and Decide; Run
// is the loop around them.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Tuning. Retries back off exponentially from RetryBase to RetryMax per
// namespace: a namespace whose pods take a while to stop is checked again
// within RetryMax of their going.
const (
	Workers   = 4
	RetryBase = 100 * time.Millisecond
	RetryMax  = 10 * time.Second
	Resync    = 5 * time.Minute
)

// Run runs the controller until ctx is done, then returns nil. It returns
// an error only if it cannot start. disco finds the namespaced resources
// (pass a memory-cached discovery client to spare the API server); dyn
// deletes and lists them; client watches and finalizes namespaces.
func Run(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, disco discovery.DiscoveryInterface, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	c := &controller{
		client: client,
		dyn:    dyn,
		disco:  disco,
		log:    logger.With("controller", "namespace"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](RetryBase, RetryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
	}
	factory := informers.NewSharedInformerFactory(client, Resync)
	inf := factory.Core().V1().Namespaces()
	c.lister = inf.Lister()
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return fmt.Errorf("namespace controller: watching namespaces: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil // ctx done before the cache synced
	}

	var wg sync.WaitGroup
	for range Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

type controller struct {
	client kubernetes.Interface
	dyn    dynamic.Interface
	disco  discovery.DiscoveryInterface
	log    *slog.Logger
	lister corelisters.NamespaceLister
	queue  workqueue.TypedRateLimitingInterface[string]
}

func (c *controller) processNext(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	done, err := c.sync(ctx, name)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.log.Warn("namespace cleanup failed, retrying", "namespace", name, "err", err)
		}
		c.queue.AddRateLimited(name)
	case !done:
		c.queue.AddRateLimited(name)
	default:
		c.queue.Forget(name)
	}
	return true
}

// sync runs one cleanup pass over namespace name; done means nothing more
// is to be done for it.
func (c *controller) sync(ctx context.Context, name string) (done bool, err error) {
	ns, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	if !NeedsCleanup(ns) {
		return true, nil
	}

	pass := c.clean(ctx, name)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	d := Decide(pass, ns.Status.Conditions, metav1.Now())
	if ConditionsChanged(ns.Status.Conditions, d.Conditions) {
		next := ns.DeepCopy()
		next.Status.Conditions = MergeConditions(ns.Status.Conditions, d.Conditions)
		updated, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, next, metav1.UpdateOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			// Conditions are informative; a failure to record them must
			// not hold the namespace. A conflict makes finalize fail too.
			c.log.Debug("recording namespace conditions", "namespace", name, "err", err)
		default:
			ns = updated
		}
	}
	if !d.Finalize {
		c.log.Debug("namespace content remains", "namespace", name, "conditions", summary(d.Conditions))
		return false, nil
	}
	_, err = c.client.CoreV1().Namespaces().Finalize(ctx, WithoutFinalizer(ns), metav1.UpdateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsConflict(err):
		return false, nil // the informer brings the newer object; try again
	case err != nil:
		return false, fmt.Errorf("finalizing namespace %s: %w", name, err)
	}
	c.log.Info("namespace content deleted, namespace finalized", "namespace", name)
	return true, nil
}

// clean discovers the namespaced resources and deletes their instances in
// namespace ns, reporting what remains.
func (c *controller) clean(ctx context.Context, ns string) Pass {
	var p Pass
	lists, err := discovery.ServerPreferredNamespacedResources(c.disco)
	if err != nil {
		p.DiscoveryErr = err
		if !discovery.IsGroupDiscoveryFailedError(err) {
			return p // nothing discovered at all
		}
	}
	targets, err := Deletable(lists)
	p.ParseErr = err
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		p.Content = append(p.Content, c.deleteContent(ctx, ns, t))
	}
	return p
}

// deleteContent deletes every instance of t in namespace ns and counts
// what is left.
func (c *controller) deleteContent(ctx context.Context, ns string, t Target) Content {
	out := Content{Resource: t.Resource}
	ri := c.dyn.Resource(t.Resource).Namespace(ns)
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	oneByOne := !t.DeleteCollection
	if t.DeleteCollection {
		err := ri.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case apierrors.IsMethodNotSupported(err):
			oneByOne = true
		case apierrors.IsNotFound(err):
			return out // the resource went away
		case err != nil:
			out.Err = fmt.Errorf("deleting collection: %w", err)
			return out
		}
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return out
	}
	if err != nil {
		out.Err = fmt.Errorf("listing: %w", err)
		return out
	}
	var errs []error
	for i := range list.Items {
		item := &list.Items[i]
		if oneByOne && item.GetDeletionTimestamp() == nil {
			err := ri.Delete(ctx, item.GetName(), opts)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("deleting %s: %w", item.GetName(), err))
			}
		}
		out.Remaining++
		for _, f := range item.GetFinalizers() {
			if out.Finalizers == nil {
				out.Finalizers = map[string]int{}
			}
			out.Finalizers[f]++
		}
	}
	out.Err = errors.Join(errs...)
	return out
}

// summary is the true conditions' messages, for logs.
func summary(conds []corev1.NamespaceCondition) []string {
	var out []string
	for _, c := range conds {
		if c.Status == corev1.ConditionTrue {
			out = append(out, c.Message)
		}
	}
	return out
}
