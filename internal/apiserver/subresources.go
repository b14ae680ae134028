package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/drover/drover/internal/registry"
)

var coreV1 = schema.GroupVersion{Version: "v1"}

// gracePeriod is how long a deletion waits: a pod bound to a node gets its
// termination grace period (or the one asked for), everything else none.
func gracePeriod(res *registry.Resource, obj runtime.Object, opts *metav1.DeleteOptions) int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return 0
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if opts.GracePeriodSeconds != nil {
		return *opts.GracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// markTerminating records a namespace's Terminating phase.
func markTerminating(obj runtime.Object) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
}

// patch applies a JSON, merge or strategic merge patch to the object (or its
// status or finalize form) and stores it like an update.
func (h *handler) patch(ctx context.Context) (runtime.Object, error) {
	patchType, patchJSON, err := h.readPatch()
	if err != nil {
		return nil, err
	}
	return h.s.guaranteedUpdate(ctx, h.res, h.info.Namespace, h.info.Name, h.dryRun(), func(cur runtime.Object) (runtime.Object, error) {
		curJSON, err := json.Marshal(cur)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		patched, err := applyPatch(patchType, curJSON, patchJSON, h.res.New())
		if err != nil {
			return nil, err
		}
		obj := h.res.New()
		if err := decodeObject(h.w, h.r, patched, obj, h.res.GroupVersionKind()); err != nil {
			return nil, err
		}
		acc, _ := meta.Accessor(obj)
		curAcc, _ := meta.Accessor(cur)
		if acc.GetName() != curAcc.GetName() || acc.GetNamespace() != curAcc.GetNamespace() {
			return nil, apierrors.NewBadRequest("a patch may not change the object's name or namespace")
		}
		if err := checkResourceVersion(h.res, h.info.Name, acc.GetResourceVersion(), cur); err != nil {
			return nil, err
		}
		return h.s.prepareUpdate(h.res, h.info.Subresource, obj, cur)
	})
}

func (h *handler) readPatch() (types.PatchType, []byte, error) {
	body, err := readBody(h.r, h.s.cfg.MaxRequestBodyBytes)
	if err != nil {
		return "", nil, err
	}
	pt := types.PatchType(mediaType(h.r))
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		return "", nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", groupResource(h.res), h.info.Name,
			"server-side apply is not supported by Drover yet; use client-side kubectl apply", 0, false)
	default:
		return "", nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", groupResource(h.res), h.info.Name,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType), 0, false)
	}
	if len(body) == 0 {
		return "", nil, apierrors.NewBadRequest("empty patch")
	}
	return pt, body, nil
}

// applyPatch applies a patch to a JSON document; schema gives strategic
// merge patch its merge keys.
func applyPatch(pt types.PatchType, doc, patch []byte, schema runtime.Object) (out []byte, err error) {
	defer recoverPatch(pt, &err)
	switch pt {
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err == nil {
			if err = checkJSONPatch(p); err != nil {
				return nil, err
			}
			out, err = p.Apply(doc)
		}
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(doc, patch)
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(doc, patch, schema)
	}
	if err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return nil, err
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("applying %s: %v", pt, err))
	}
	return out, nil
}

// scale serves the autoscaling/v1 Scale view of a resource's replicas.
func (h *handler) scale(ctx context.Context) (runtime.Object, error) {
	switch h.info.Verb {
	case "get":
		obj, _, err := h.s.store.get(ctx, h.res, h.info.Namespace, h.info.Name)
		if err != nil {
			return nil, err
		}
		return scaleOf(h.res, obj), nil
	case "update", "patch":
	default:
		return nil, apierrors.NewMethodNotSupported(groupResource(h.res), h.info.Verb)
	}
	var (
		patchType types.PatchType
		patchJSON []byte
		given     *autoscalingv1.Scale
		err       error
	)
	if h.info.Verb == "patch" {
		if patchType, patchJSON, err = h.readPatch(); err != nil {
			return nil, err
		}
	} else {
		body, err := readBody(h.r, h.s.cfg.MaxRequestBodyBytes)
		if err != nil {
			return nil, err
		}
		given = &autoscalingv1.Scale{}
		if err := decodeRequest(h.w, h.r, body, given, autoscalingv1.SchemeGroupVersion.WithKind("Scale")); err != nil {
			return nil, err
		}
	}
	updated, err := h.s.guaranteedUpdate(ctx, h.res, h.info.Namespace, h.info.Name, h.dryRun(), func(cur runtime.Object) (runtime.Object, error) {
		sc := given
		if patchJSON != nil {
			curJSON, err := json.Marshal(scaleOf(h.res, cur))
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			patched, err := applyPatch(patchType, curJSON, patchJSON, &autoscalingv1.Scale{})
			if err != nil {
				return nil, err
			}
			sc = &autoscalingv1.Scale{}
			if err := decodeObject(h.w, h.r, patched, sc, autoscalingv1.SchemeGroupVersion.WithKind("Scale")); err != nil {
				return nil, err
			}
		}
		if err := checkResourceVersion(h.res, h.info.Name, sc.ResourceVersion, cur); err != nil {
			return nil, err
		}
		if sc.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), h.info.Name, fieldErrors("spec.replicas", sc.Spec.Replicas, "must be greater than or equal to 0"))
		}
		next := cur.DeepCopyObject()
		h.res.Scale.Set(next, sc.Spec.Replicas)
		return h.s.prepareUpdate(h.res, "", next, cur)
	})
	if err != nil {
		return nil, err
	}
	return scaleOf(h.res, updated), nil
}

func scaleOf(res *registry.Resource, obj runtime.Object) *autoscalingv1.Scale {
	acc, _ := meta.Accessor(obj)
	spec, status, selector := res.Scale.Get(obj)
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
			ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: selector},
	}
}

// bind assigns a pod to a node (pods/binding), once.
func (h *handler) bind(ctx context.Context) (int, runtime.Object, error) {
	body, err := readBody(h.r, h.s.cfg.MaxRequestBodyBytes)
	if err != nil {
		return 0, nil, err
	}
	binding := &corev1.Binding{}
	if err := decodeRequest(h.w, h.r, body, binding, corev1.SchemeGroupVersion.WithKind("Binding")); err != nil {
		return 0, nil, err
	}
	if binding.Target.Name == "" || (binding.Target.Kind != "" && binding.Target.Kind != "Node") {
		return 0, nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), h.info.Name, fieldErrors("target.name", binding.Target.Name, "must name a Node"))
	}
	// The pod is built copy-on-write from cur, which it only reads.
	_, err = h.s.guaranteedUpdateReadOnly(ctx, h.res, h.info.Namespace, h.info.Name, h.dryRun(), func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if binding.UID != "" && binding.UID != pod.UID {
			return nil, apierrors.NewConflict(groupResource(h.res), h.info.Name, fmt.Errorf("the UID in the binding (%s) does not match the pod's (%s)", binding.UID, pod.UID))
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(groupResource(h.res), h.info.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(groupResource(h.res), h.info.Name, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		next := *pod
		next.Spec.NodeName = binding.Target.Name
		setPodCondition(&next, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now().Rfc3339Copy()})
		return &next, nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, successStatus(nil), nil
}

// setPodCondition sets the pod's condition of c's type to c, unless its
// status is c's already. It writes a new slice rather than into the pod's:
// a pod built copy-on-write shares its conditions with the current one.
func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	conds := pod.Status.Conditions
	for i := range conds {
		if conds[i].Type == c.Type {
			if conds[i].Status == c.Status {
				return
			}
			pod.Status.Conditions = slices.Clone(conds)
			pod.Status.Conditions[i] = c
			return
		}
	}
	// Clipped, append cannot write past the end into a shared array.
	pod.Status.Conditions = append(slices.Clip(conds), c)
}

func fieldErrors(path string, value any, msg string) field.ErrorList {
	return field.ErrorList{field.Invalid(field.NewPath(path), value, msg)}
}

// resourceVersionOf returns an object's resourceVersion as a number (0 if unset).
func resourceVersionOf(obj runtime.Object) int64 {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return 0
	}
	rv, _ := strconv.ParseInt(acc.GetResourceVersion(), 10, 64)
	return rv
}
