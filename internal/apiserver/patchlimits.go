package apiserver

import (
	"fmt"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

// Limits on patches, as upstream's: a JSON patch of more operations is
// refused with 413, and its copy operations may not grow the document by
// more than maxJSONPatchCopyBytes in all (each copy can double it).
const (
	maxJSONPatchOperations = 10000
	maxJSONPatchCopyBytes  = 3 << 20
)

func init() {
	// The library's limit is a package variable; it is set once, here.
	jsonpatch.AccumulatedCopySizeLimit = maxJSONPatchCopyBytes
}

// checkJSONPatch refuses JSON patches with too many operations.
func checkJSONPatch(p jsonpatch.Patch) error {
	if len(p) > maxJSONPatchOperations {
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(p)))
	}
	return nil
}

// recoverPatch turns a panic of a patch library on hostile input (json-patch
// v4 dereferences nil on `[{"op":"replace","path":""}]`) into a 400 in
// *err. Use it deferred.
func recoverPatch(pt types.PatchType, err *error) {
	if p := recover(); p != nil {
		*err = apierrors.NewBadRequest(fmt.Sprintf("applying %s: invalid patch (%v)", pt, p))
	}
}
