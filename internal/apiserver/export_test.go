package apiserver

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
)

// SetNameSuffix replaces the random suffix of generated names for a test;
// the returned func restores it.
func SetNameSuffix(f func() string) (restore func()) {
	old := nameSuffix
	nameSuffix = f
	return func() { nameSuffix = old }
}

// PodStore decodes stored pods as a plain read does, or as the watch memo
// does, for the compaction benchmark.
type PodStore struct {
	o   objectStore
	res *registry.Resource
}

// NewPodStore returns a PodStore with empty intern tables.
func NewPodStore() *PodStore {
	for _, r := range registry.All() {
		if r.GroupVersion.Group == "" && r.Plural == "pods" {
			return &PodStore{res: r}
		}
	}
	panic("no pods resource in the registry")
}

// Encode returns pod as stored.
func (p *PodStore) Encode(pod *corev1.Pod) ([]byte, error) { return p.o.encode(p.res, pod) }

// Decode decodes a stored pod, compacted as the watch memo's are if shared.
func (p *PodStore) Decode(value []byte, shared bool) (runtime.Object, error) {
	if shared {
		return p.o.decodeShared(p.res, value, 1)
	}
	return p.o.decode(p.res, value, 1)
}
