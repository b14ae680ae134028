// Package openapi serves the OpenAPI v3 documents of Drover's API, built
// from the registry's resource descriptions.
//
// The documents exist for kubectl and client-go, which read them to decide
// two things:
//
//   - Whether the server validates fields itself: every write operation
//     lists the fieldValidation query parameter, so kubectl sends
//     ?fieldValidation=Strict and leaves validation to the server.
//   - How kubectl apply computes its patch: PATCH operations list JSON patch
//     and JSON merge patch but not strategic merge patch, so kubectl falls
//     back to computing the strategic merge patch from its compiled-in Go
//     types (and sends it as a strategic merge patch, which the server
//     supports) instead of from these schemas.
//
// Component schemas are derived from the k8s.io/api Go types by reflection
// (fields, types and descriptions), each kind's schema carrying
// x-kubernetes-group-version-kind, which is what kubectl explain needs.
// They carry no patch-strategy or validation markers.
//
// OpenAPI v2 (/openapi/v2) is not served: it answers 404, and kubectl then
// uses v3.
package openapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/handler3"

	"github.com/drover/drover/internal/registry"
)

// Paths the handler serves.
const (
	V3Path = "/openapi/v3"
	V2Path = "/openapi/v2"
)

// Handler serves /openapi/v3 (the root document listing each group
// version's document with its content hash), /openapi/v3/<group version
// path> (e.g. /openapi/v3/apis/apps/v1, JSON or the OpenAPI protobuf
// encoding, with ETag and the hash query parameter as upstream does), and
// /openapi/v2 as 404. Mount it on the /openapi/ prefix without stripping.
type Handler struct {
	service *handler3.OpenAPIService
	known   map[string]bool
}

// NewHandler builds the documents for resources and returns their handler.
// A resource without New is described with a bare object schema.
func NewHandler(resources []*registry.Resource) *Handler {
	h := &Handler{service: handler3.NewOpenAPIService(), known: map[string]bool{}}
	for path, doc := range buildDocuments(resources) {
		h.service.UpdateGroupVersion(path, doc)
		h.known[path] = true
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			fmt.Sprintf("%s is not supported on %s", r.Method, r.URL.Path))
		return
	}
	switch {
	case r.URL.Path == V3Path:
		h.service.HandleDiscovery(w, r)
	case strings.HasPrefix(r.URL.Path, V3Path+"/") && h.known[strings.TrimPrefix(r.URL.Path, V3Path+"/")]:
		h.service.HandleGroupVersion(w, r)
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("the server could not find the requested resource (%s)", r.URL.Path))
	}
}

// writeStatus writes a Kubernetes Status error.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}
