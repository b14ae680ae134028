package apiserver

import (
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	corev1 "k8s.io/api/core/v1"
)

func TestPatchLimits(t *testing.T) {
	doc := []byte(`{"metadata":{"name":"p","annotations":{"a":"` + strings.Repeat("x", 1000) + `"}},"spec":{}}`)
	// Each copy doubles the document: 40 of them would need a terabyte.
	doubling := `[{"op":"add","path":"/spec/x","value":["` + strings.Repeat("y", 1000) + `"]}` + strings.Repeat(`,{"op":"copy","from":"/spec/x","path":"/spec/x/-"}`, 40) + `]`
	manyOps := "[" + strings.TrimSuffix(strings.Repeat(`{"op":"test","path":"/spec","value":{}},`, maxJSONPatchOperations+1), ",") + "]"
	for _, tc := range []struct {
		name  string
		pt    types.PatchType
		patch string
		code  int
	}{
		{"copies beyond the copy limit", types.JSONPatchType, doubling, http.StatusBadRequest},
		{"too many operations", types.JSONPatchType, manyOps, http.StatusRequestEntityTooLarge},
		{"replace of the root without a value (panics in json-patch v4)", types.JSONPatchType, `[{"op":"replace","path":""}]`, http.StatusBadRequest},
	} {
		_, err := applyPatch(tc.pt, doc, []byte(tc.patch), &corev1.Pod{})
		if err == nil {
			t.Errorf("%s: applied", tc.name)
			continue
		}
		if code := int(statusFor(err).Code); code != tc.code || !apierrors.IsBadRequest(err) && tc.code == http.StatusBadRequest {
			t.Errorf("%s: %v (code %d), want %d", tc.name, err, code, tc.code)
		}
	}
}
