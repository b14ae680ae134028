// Package clusterroleaggregation writes into each ClusterRole with an
// aggregationRule the rules of the ClusterRoles its selectors pick, as
// upstream's clusterrole-aggregation controller does, so that
// `kubectl get clusterrole view -o yaml` shows what view grants. (The
// authorizer does not wait for it: it aggregates as it reads, see
// authz.AggregatedRules.)
package clusterroleaggregation

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/drover/drover/internal/authz"
)

// Retry bounds for a sync that failed.
const (
	RetryBase = 100 * time.Millisecond
	RetryMax  = 10 * time.Second
)

// Updates returns the aggregated roles whose stored rules differ from what
// their selectors pick, with the rules they should have: a pure function
// of all ClusterRoles, in name order.
func Updates(all []*rbacv1.ClusterRole) []*rbacv1.ClusterRole {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b *rbacv1.ClusterRole) int { return strings.Compare(a.Name, b.Name) })
	var out []*rbacv1.ClusterRole
	for _, r := range sorted {
		if r.AggregationRule == nil {
			continue
		}
		want := authz.AggregatedRules(r, sorted)
		if apiequality.Semantic.DeepEqual(r.Rules, want) || (len(r.Rules) == 0 && len(want) == 0) {
			continue
		}
		next := r.DeepCopy()
		next.Rules = want
		out = append(out, next)
	}
	return out
}

// Run keeps aggregated ClusterRoles' rules up to date until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("controller", "clusterrole-aggregation")
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](RetryBase, RetryMax),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "clusterrole-aggregation"})
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Rbac().V1().ClusterRoles()
	lister := inf.Lister()
	// Any change may change any aggregate: one key for the whole set.
	enqueue := func(any) { queue.Add("all") }
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("clusterrole aggregation: watching clusterroles: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		if err := sync(ctx, client, lister); err != nil {
			if ctx.Err() == nil {
				log.Warn("aggregating cluster roles, retrying", "err", err)
			}
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func sync(ctx context.Context, client kubernetes.Interface, lister rbaclisters.ClusterRoleLister) error {
	all, err := lister.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, r := range Updates(all) {
		_, err := client.RbacV1().ClusterRoles().Update(ctx, r, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("updating clusterrole %s: %w", r.Name, err)
		}
	}
	return nil
}
