package controlplane

import (
	"net/http"
	"net/http/pprof"
	"slices"

	"github.com/drover/drover/internal/auth"
)

// PprofPrefix is where the API server serves Go's profiles
// (net/http/pprof), to the admin only.
const PprofPrefix = "/debug/pprof/"

// pprofHandler serves net/http/pprof's profiles to users in AdminGroup
// (system:masters) and 403 to anyone else: profiles show what the server
// holds in memory.
func pprofHandler(authn auth.Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PprofPrefix, pprof.Index)
	mux.HandleFunc(PprofPrefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(PprofPrefix+"profile", pprof.Profile)
	mux.HandleFunc(PprofPrefix+"symbol", pprof.Symbol)
	mux.HandleFunc(PprofPrefix+"trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := authn.Authenticate(r)
		if !ok || !slices.Contains(u.Groups, AdminGroup) {
			http.Error(w, "forbidden: profiles are for "+AdminGroup, http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
