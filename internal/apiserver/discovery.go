package apiserver

import (
	"net/http"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/drover/drover/internal/registry"
)

// allVerbs are the verbs a resource serves unless its Verbs say otherwise.
var allVerbs = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// discovery holds the prebuilt discovery documents.
type discovery struct {
	core      metav1.APIVersions
	groups    metav1.APIGroupList
	byGroup   map[string]metav1.APIGroup
	resources map[string]*metav1.APIResourceList // by "/api/v1" or "/apis/g/v"
}

// preferredVersions names each group's preferred version where several are served.
var preferredVersions = map[string]string{"autoscaling": "v2"}

func newDiscovery(resources []*registry.Resource, extra []metav1.APIGroup) *discovery {
	d := &discovery{
		core:      metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}, ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: ""}}},
		byGroup:   map[string]metav1.APIGroup{},
		resources: map[string]*metav1.APIResourceList{},
	}
	var groupOrder []string
	for _, res := range resources {
		gv := res.GroupVersion
		path := "/api/" + gv.Version
		if gv.Group != "" {
			path = "/apis/" + gv.Group + "/" + gv.Version
			g, seen := d.byGroup[gv.Group]
			if !seen {
				groupOrder = append(groupOrder, gv.Group)
				g = metav1.APIGroup{Name: gv.Group}
			}
			found := false
			for _, v := range g.Versions {
				found = found || v.Version == gv.Version
			}
			if !found {
				g.Versions = append(g.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version})
			}
			d.byGroup[gv.Group] = g
		}
		list := d.resources[path]
		if list == nil {
			list = &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			d.resources[path] = list
		}
		verbs := allVerbs
		if res.Verbs != nil {
			verbs = res.Verbs
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.Plural, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: verbs, ShortNames: res.ShortNames, Categories: res.Categories,
		})
		sub := func(name, group, version, kind string, verbs metav1.Verbs) {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: res.Plural + "/" + name, Namespaced: res.Namespaced, Group: group, Version: version, Kind: kind, Verbs: verbs,
			})
		}
		if res.StatusSubresource {
			sub("status", "", "", res.Kind, metav1.Verbs{"get", "patch", "update"})
		}
		if res.Scale != nil {
			sub("scale", "autoscaling", "v1", "Scale", metav1.Verbs{"get", "patch", "update"})
		}
		switch {
		case gv.Group == "" && res.Plural == "pods":
			sub("binding", "", "", "Binding", metav1.Verbs{"create"})
			sub("eviction", "policy", "v1", "Eviction", metav1.Verbs{"create"})
			sub("log", "", "", "Pod", metav1.Verbs{"get"})
		case gv.Group == "" && res.Plural == "namespaces":
			sub("finalize", "", "", "Namespace", metav1.Verbs{"update"})
		}
	}
	for _, name := range groupOrder {
		g := d.byGroup[name]
		pref := g.Versions[0]
		if v, ok := preferredVersions[name]; ok {
			for _, gv := range g.Versions {
				if gv.Version == v {
					pref = gv
				}
			}
			// The preferred version comes first, as upstream lists it.
			sort.SliceStable(g.Versions, func(i, j int) bool { return g.Versions[i].Version == v })
		}
		g.PreferredVersion = pref
		g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		d.byGroup[name] = g
		d.groups.Groups = append(d.groups.Groups, g)
	}
	d.groups.Groups = append(d.groups.Groups, extra...)
	d.groups.TypeMeta = metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}
	return d
}

// serve answers discovery paths; false when the path is not one.
func (d *discovery) serve(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch p {
	case "/api":
		v := d.core
		v.ServerAddressByClientCIDRs = []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}
		writeJSON(w, http.StatusOK, v)
		return true
	case "/apis":
		writeJSON(w, http.StatusOK, d.groups)
		return true
	}
	if list, ok := d.resources[p]; ok {
		writeJSON(w, http.StatusOK, list)
		return true
	}
	if g, ok := strings.CutPrefix(p, "/apis/"); ok && !strings.Contains(g, "/") {
		if group, ok := d.byGroup[g]; ok {
			writeJSON(w, http.StatusOK, group)
			return true
		}
	}
	return false
}

// KubernetesVersion is the Kubernetes API version Drover speaks.
const KubernetesVersion = "v1.37.2"

func (s *server) version() version.Info {
	git := s.cfg.GitVersion
	if git == "" {
		git = KubernetesVersion + "+drover"
	}
	return version.Info{Major: "1", Minor: "37", GitVersion: git, Platform: "linux/amd64", GoVersion: goVersion()}
}
