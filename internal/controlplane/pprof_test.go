package controlplane

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover/drover/internal/auth"
)

func TestPprofOnlyForAdmins(t *testing.T) {
	authn := auth.NewTokenAuthenticator()
	authn.Add("admin-token", auth.User{Name: AdminUser, Groups: []string{AdminGroup}})
	authn.Add("node-token", auth.User{Name: "system:node:n1", Groups: []string{"system:nodes"}})
	h := pprofHandler(authn)
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"admin-token", http.StatusOK},
		{"node-token", http.StatusForbidden},
		{"", http.StatusForbidden},
	} {
		r := httptest.NewRequest(http.MethodGet, PprofPrefix+"goroutine?debug=1", nil)
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("token %q: status %d, want %d", tc.token, w.Code, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(w.Body.String(), "goroutine profile") {
			t.Errorf("admin got %q, want a goroutine profile", w.Body.String()[:min(80, w.Body.Len())])
		}
	}
}
