package gc

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"

	"github.com/drover/drover/internal/testenv"
)

// TestInformerForSharesTypedInformers checks that the collector watches
// the resources it is told are shared through the shared factory's typed
// informers, and every other one (or one the factory has no typed
// informer for) through a metadata informer of its own.
func TestInformerForSharesTypedInformers(t *testing.T) {
	env := testenv.Start(t)
	shared := informers.NewSharedInformerFactory(env.Kube, time.Minute)
	t.Cleanup(shared.Shutdown)
	md := metadata.NewForConfigOrDie(env.Config)
	own := metadatainformer.NewSharedInformerFactory(md, 0)
	t.Cleanup(own.Shutdown)
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	unknown := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	c := &collector{
		md:         md,
		log:        testenv.Logger(t),
		factory:    own,
		shared:     shared,
		sharedGVRs: map[schema.GroupVersionResource]bool{pods: true, unknown: true},
	}
	// Informer() wraps the one informer anew on every call: compare
	// what they hold.
	if got, want := c.informerFor(pods).GetIndexer(), shared.Core().V1().Pods().Informer().GetIndexer(); got != want {
		t.Error("pods are not watched through the shared typed informer")
	}
	if got, want := c.informerFor(cms).GetIndexer(), own.ForResource(cms).Informer().GetIndexer(); got != want {
		t.Error("configmaps (not shared) are not watched through the collector's metadata informer")
	}
	if got, want := c.informerFor(unknown).GetIndexer(), own.ForResource(unknown).Informer().GetIndexer(); got != want {
		t.Error("a shared resource without a typed informer does not fall back to a metadata informer")
	}
}
