package endpoints

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// SelectorIndex maps a pod to the services whose selectors match it. It
// keeps each selecting service's parsed selector under its namespace, so
// a pod event only looks at the services of its own namespace and parses
// nothing. Safe for concurrent use.
type SelectorIndex struct {
	mu   sync.RWMutex
	byNS map[string]map[string]labels.Selector // namespace → service name → selector
}

// NewSelectorIndex returns an empty index.
func NewSelectorIndex() *SelectorIndex {
	return &SelectorIndex{byNS: map[string]map[string]labels.Selector{}}
}

// Set records a service's selector; a service without one (or of type
// ExternalName) selects no pods and is removed.
func (x *SelectorIndex) Set(svc *corev1.Service) {
	if svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		x.Delete(svc.Namespace, svc.Name)
		return
	}
	sel := labels.Set(svc.Spec.Selector).AsSelectorPreValidated()
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.byNS[svc.Namespace]
	if m == nil {
		m = map[string]labels.Selector{}
		x.byNS[svc.Namespace] = m
	}
	m[svc.Name] = sel
}

// Delete forgets a service.
func (x *SelectorIndex) Delete(namespace, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m := x.byNS[namespace]; m != nil {
		delete(m, name)
		if len(m) == 0 {
			delete(x.byNS, namespace)
		}
	}
}

// Matching calls fn with the key ("namespace/name") of every service in
// namespace whose selector matches podLabels.
func (x *SelectorIndex) Matching(namespace string, podLabels map[string]string, fn func(key string)) {
	x.mu.RLock()
	var keys []string
	for name, sel := range x.byNS[namespace] {
		if sel.Matches(labels.Set(podLabels)) {
			keys = append(keys, namespace+"/"+name)
		}
	}
	x.mu.RUnlock()
	for _, k := range keys {
		fn(k)
	}
}
