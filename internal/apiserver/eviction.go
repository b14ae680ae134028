package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// The eviction subresource (pods/eviction) deletes a pod unless that would
// break a PodDisruptionBudget, as upstream's EvictionREST does: a pod that
// is pending, terminal or already being deleted goes at once; otherwise the
// one budget whose selector matches it must allow a disruption, which is
// taken (disruptionsAllowed decremented, the pod recorded in
// status.disruptedPods) in the same optimistic-concurrency update that
// checks it, before the pod is deleted with the eviction's DeleteOptions.

const (
	// maxDisruptedPods caps status.disruptedPods: beyond it evictions are
	// refused until the disruption controller catches up (upstream's
	// MaxDisruptedPodSize).
	maxDisruptedPods = 2000
	// evictionAttempts bounds the retries of an eviction whose pod changed
	// under it.
	evictionAttempts = 20
)

var (
	policyV1Eviction      = policyv1.SchemeGroupVersion.WithKind("Eviction")
	policyV1beta1Eviction = policyv1beta1.SchemeGroupVersion.WithKind("Eviction")
	pdbResource           = schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}
)

// evict serves POST pods/NAME/eviction.
func (h *handler) evict(ctx context.Context) (int, runtime.Object, error) {
	eviction, err := h.decodeEviction()
	if err != nil {
		return 0, nil, err
	}
	if eviction.Name != h.info.Name {
		return 0, nil, apierrors.NewBadRequest("name in URL does not match name in Eviction object")
	}
	opts, err := evictionDeleteOptions(eviction, h.r.URL.Query()["dryRun"])
	if err != nil {
		return 0, nil, err
	}
	dryRun := len(opts.DryRun) > 0
	rvGiven := opts.Preconditions != nil && opts.Preconditions.ResourceVersion != nil

	// A pod that may go without a budget check goes now; one that changes
	// while we look is looked at again.
	var pod *corev1.Pod
	for attempt := 0; ; attempt++ {
		obj, _, err := h.s.store.get(ctx, h.res, h.info.Namespace, h.info.Name)
		if err != nil {
			return 0, nil, err
		}
		pod = obj.(*corev1.Pod)
		if !canIgnorePDB(pod) {
			break
		}
		del := opts
		if enforceResourceVersion(pod) && !rvGiven {
			del = withResourceVersion(opts, pod.ResourceVersion)
		}
		err = h.deletePod(ctx, del, dryRun)
		if apierrors.IsConflict(err) && !rvGiven && attempt < evictionAttempts {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		return evicted()
	}

	pdbs, err := h.podDisruptionBudgets(ctx, pod)
	if err != nil {
		return 0, nil, err
	}
	if len(pdbs) > 1 {
		return 0, nil, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusInternalServerError,
			Reason:  metav1.StatusReasonInternalError,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
		}}
	}
	// unreadyAllowed: the pod does not count as healthy and the budget lets
	// it go without taking a disruption, provided it stays unready (the
	// delete then carries the pod's resourceVersion).
	unreadyAllowed := false
	if len(pdbs) == 1 {
		pdb := pdbs[0]
		if !podIsReady(pod) {
			p := pdb.Spec.UnhealthyPodEvictionPolicy
			unreadyAllowed = (p != nil && *p == policyv1.AlwaysAllow) ||
				(pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0)
		}
		if !unreadyAllowed {
			if err := h.takeDisruption(ctx, pdb.Name, pod.Name, dryRun); err != nil {
				return 0, nil, err
			}
		}
	}
	del := opts
	if unreadyAllowed && !rvGiven {
		del = withResourceVersion(opts, pod.ResourceVersion)
	}
	if err := h.deletePod(ctx, del, dryRun); err != nil {
		if apierrors.IsConflict(err) && unreadyAllowed && !rvGiven {
			return 0, nil, tooManyRequests(pdbs[0].Name)
		}
		return 0, nil, err
	}
	return evicted()
}

func evicted() (int, runtime.Object, error) {
	st := successStatus(nil)
	st.Code = http.StatusCreated
	return http.StatusCreated, st, nil
}

// decodeEviction reads a policy/v1 or policy/v1beta1 Eviction.
func (h *handler) decodeEviction() (*policyv1.Eviction, error) {
	body, err := readBody(h.r, h.s.cfg.MaxRequestBodyBytes)
	if err != nil {
		return nil, err
	}
	var obj runtime.Object
	if mediaType(h.r) == protobufType {
		obj, _, err = protobufSerializer.Decode(body, &policyV1Eviction, nil)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("Eviction cannot be decoded: %v", err))
		}
	} else {
		data, err := toJSON(body, mediaType(h.r))
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(data, &tm); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("Eviction cannot be decoded: %v", err))
		}
		want, into := policyV1Eviction, runtime.Object(&policyv1.Eviction{})
		if tm.APIVersion == policyv1beta1.SchemeGroupVersion.String() {
			want, into = policyV1beta1Eviction, &policyv1beta1.Eviction{}
		}
		if err := decodeObject(h.w, h.r, data, into, want); err != nil {
			return nil, err
		}
		obj = into
	}
	switch e := obj.(type) {
	case *policyv1.Eviction:
		return e, nil
	case *policyv1beta1.Eviction:
		return &policyv1.Eviction{TypeMeta: metav1.TypeMeta{Kind: "Eviction", APIVersion: "policy/v1"}, ObjectMeta: e.ObjectMeta, DeleteOptions: e.DeleteOptions}, nil
	}
	return nil, apierrors.NewBadRequest(fmt.Sprintf("not an Eviction object: %T", obj))
}

// evictionDeleteOptions returns the eviction's DeleteOptions (a copy), with
// the request's dryRun merged in as upstream does, normalized like a
// delete's.
func evictionDeleteOptions(e *policyv1.Eviction, queryDryRun []string) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	if e.DeleteOptions != nil {
		opts = e.DeleteOptions.DeepCopy()
	}
	switch {
	case len(opts.DryRun) == 0:
		opts.DryRun = queryDryRun
	case len(queryDryRun) > 0 && fmt.Sprint(queryDryRun) != fmt.Sprint(opts.DryRun):
		return nil, apierrors.NewBadRequest(fmt.Sprintf("Non-matching dry-run options in request and content: %v and %v", queryDryRun, opts.DryRun))
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewInvalid(policyV1Eviction.GroupKind(), e.Name, field.ErrorList{
				field.NotSupported(field.NewPath("deleteOptions", "propagationPolicy"), *p, []string{"Foreground", "Background", "Orphan"}),
			})
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

func withResourceVersion(opts *metav1.DeleteOptions, rv string) *metav1.DeleteOptions {
	out := opts.DeepCopy()
	if out.Preconditions == nil {
		out.Preconditions = &metav1.Preconditions{}
	}
	out.Preconditions.ResourceVersion = &rv
	return out
}

// canIgnorePDB: a pending or terminal pod, or one already being deleted,
// disrupts nothing more by going.
func canIgnorePDB(pod *corev1.Pod) bool {
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed, corev1.PodPending:
		return true
	}
	return pod.DeletionTimestamp != nil
}

// enforceResourceVersion: a pending pod deleted without a budget check must
// not have become ready meanwhile.
func enforceResourceVersion(pod *corev1.Pod) bool {
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return false
	}
	return pod.DeletionTimestamp == nil
}

func podIsReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podDisruptionBudgets returns the budgets of the pod's namespace whose
// selector matches it; a nil or empty selector matches nothing here, as
// upstream's eviction has it.
func (h *handler) podDisruptionBudgets(ctx context.Context, pod *corev1.Pod) ([]*policyv1.PodDisruptionBudget, error) {
	res := h.s.resources[pdbResource]
	if res == nil {
		return nil, nil
	}
	list, err := h.s.cfg.Storage.List(ctx, keyPrefix(res, pod.Namespace), storage.ListOptions{})
	if err != nil {
		return nil, storageError(err, res, "")
	}
	var out []*policyv1.PodDisruptionBudget
	for _, kv := range list.Items {
		obj, err := h.s.store.decode(res, kv.Value, kv.Revision)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		pdb := obj.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, nil
}

// takeDisruption checks that the budget allows a disruption and takes it in
// one conditional update of the budget: on a concurrent change the check is
// made again on the fresh budget.
func (h *handler) takeDisruption(ctx context.Context, pdbName, podName string, dryRun bool) error {
	res := h.s.resources[pdbResource]
	_, err := h.s.guaranteedUpdate(ctx, res, h.info.Namespace, pdbName, dryRun, func(cur runtime.Object) (runtime.Object, error) {
		pdb := cur.(*policyv1.PodDisruptionBudget)
		gr := policyv1.Resource("poddisruptionbudget")
		switch {
		case pdb.Status.ObservedGeneration < pdb.Generation:
			return nil, tooManyRequests(pdb.Name)
		case pdb.Status.DisruptionsAllowed < 0:
			return nil, apierrors.NewForbidden(gr, pdb.Name, fmt.Errorf("pdb disruptions allowed is negative"))
		case len(pdb.Status.DisruptedPods) > maxDisruptedPods:
			return nil, apierrors.NewForbidden(gr, pdb.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
		case pdb.Status.DisruptionsAllowed == 0:
			err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
				Type:    policyv1.DisruptionBudgetCause,
				Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy),
			})
			return nil, err
		}
		pdb.Status.DisruptionsAllowed--
		if pdb.Status.DisruptionsAllowed == 0 {
			apimeta.SetStatusCondition(&pdb.Status.Conditions, metav1.Condition{
				Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason,
				ObservedGeneration: pdb.Status.ObservedGeneration, LastTransitionTime: metav1.Now().Rfc3339Copy(),
			})
		}
		if pdb.Status.DisruptedPods == nil {
			pdb.Status.DisruptedPods = map[string]metav1.Time{}
		}
		// The disruption controller must not count the pod as healthy
		// while it goes; it forgets the entry once the pod is deleting.
		pdb.Status.DisruptedPods[podName] = metav1.NewTime(time.Now().Truncate(time.Second))
		return pdb, nil
	})
	return err
}

// deletePod marks the pod with the DisruptionTarget condition, as upstream,
// then deletes it with opts (whose preconditions both steps honour).
func (h *handler) deletePod(ctx context.Context, opts *metav1.DeleteOptions, dryRun bool) error {
	if !dryRun {
		updated, err := h.s.guaranteedUpdate(ctx, h.res, h.info.Namespace, h.info.Name, false, func(cur runtime.Object) (runtime.Object, error) {
			pod := cur.(*corev1.Pod)
			if err := checkPreconditions(h.res, pod, opts.Preconditions); err != nil {
				return nil, err
			}
			if pod.DeletionTimestamp != nil {
				return pod, nil
			}
			setPodCondition(pod, corev1.PodCondition{
				Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI",
				Message: "Eviction API: evicting", LastTransitionTime: metav1.Now().Rfc3339Copy(),
			})
			return pod, nil
		})
		if err != nil {
			return err
		}
		if opts.Preconditions != nil && opts.Preconditions.ResourceVersion != nil {
			// The condition moved the pod on; the precondition held.
			opts = withResourceVersion(opts, updated.(*corev1.Pod).ResourceVersion)
		}
	}
	_, _, err := h.s.deleteObject(ctx, h.res, h.info.Namespace, h.info.Name, opts, dryRun)
	return err
}

func checkPreconditions(res *registry.Resource, pod *corev1.Pod, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	if p.UID != nil && *p.UID != "" && *p.UID != pod.UID {
		return apierrors.NewConflict(groupResource(res), pod.Name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, pod.UID))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != "" && *p.ResourceVersion != pod.ResourceVersion {
		return apierrors.NewConflict(groupResource(res), pod.Name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, pod.ResourceVersion))
	}
	return nil
}

// tooManyRequests is the 429 of a budget the controller has not caught up
// with.
func tooManyRequests(pdbName string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type:    policyv1.DisruptionBudgetCause,
		Message: fmt.Sprintf("The disruption budget %s is still being processed by the server.", pdbName),
	})
	return err
}
