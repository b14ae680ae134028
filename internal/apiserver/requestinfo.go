package apiserver

import (
	"net/http"
	"strings"
)

// requestInfo is what a resource request's path and method say.
type requestInfo struct {
	Group, Version string
	Namespace      string
	Resource       string
	Name           string
	Subresource    string
	// Verb is one of get, list, watch, create, update, patch, delete, deletecollection.
	Verb string
}

// parseRequestInfo reads /api/v1/... and /apis/GROUP/VERSION/... paths. ok is
// false for paths that are not resource requests (discovery, health, ...).
func parseRequestInfo(r *http.Request) (requestInfo, bool) {
	var info requestInfo
	var buf [maxPathParts]string
	parts, ok := splitPath(r.URL.Path, buf[:0])
	if !ok {
		return info, false
	}
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		info.Version = parts[1]
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		info.Group, info.Version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return info, false
	}
	// namespaces/NAME/RESOURCE... selects a namespace, except for the
	// namespace object's own subresources (namespaces/NAME/status|finalize).
	if parts[0] == "namespaces" && len(parts) >= 3 && parts[2] != "status" && parts[2] != "finalize" {
		info.Namespace = parts[1]
		parts = parts[2:]
	}
	info.Resource = parts[0]
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = parts[2]
	}
	if len(parts) > 3 {
		return info, false
	}
	info.Verb = verbFor(r, info.Name != "")
	return info, true
}

func verbFor(r *http.Request, named bool) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if isTrue(r.URL.Query().Get("watch")) {
			return "watch"
		}
		if named {
			return "get"
		}
		return "list"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if named {
			return "delete"
		}
		return "deletecollection"
	}
	return strings.ToLower(r.Method)
}

func isTrue(s string) bool { return s == "true" || s == "1" }

// splitPath appends the segments of p to parts, false when they do not fit
// in its capacity.
func splitPath(p string, parts []string) ([]string, bool) {
	p = strings.Trim(p, "/")
	if p == "" {
		return parts, true
	}
	for part := range strings.SplitSeq(p, "/") {
		if len(parts) == cap(parts) {
			return nil, false
		}
		parts = append(parts, part)
	}
	return parts, true
}

// maxPathParts is more segments than any API path has
// (/apis/GROUP/VERSION/namespaces/NS/RESOURCE/NAME/SUBRESOURCE is 8):
// parseRequestInfo splits into an array of this size on its stack, as
// every request is parsed several times (limits, authorization, routing,
// metrics).
const maxPathParts = 9
