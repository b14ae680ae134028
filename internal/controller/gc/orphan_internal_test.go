package gc

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/drover/drover/internal/testenv"
)

// TestOrphanFindsDependentsTheInformersHaveNotSeen orphans the dependents
// of an owner whose informers have delivered nothing yet (never started):
// the dependents must still lose their reference before the owner's
// finalizer goes, or they would later be collected as garbage.
func TestOrphanFindsDependentsTheInformersHaveNotSeen(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	cms := env.Kube.CoreV1().ConfigMaps("default")
	owner, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "owner", Finalizers: []string{metav1.FinalizerOrphanDependents},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "other-uid"}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dep", OwnerReferences: []metav1.OwnerReference{ref, other}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dep", OwnerReferences: []metav1.OwnerReference{ref}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	md := metadata.NewForConfigOrDie(env.Config)
	factory := metadatainformer.NewSharedInformerFactory(md, 0)
	cmRes := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretRes := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	c := &collector{
		md:  md,
		log: testenv.Logger(t),
		informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{
			cmRes:     factory.ForResource(cmRes).Informer(),
			secretRes: factory.ForResource(secretRes).Informer(),
		},
		kinds: map[schema.GroupVersionKind]Kind{
			{Version: "v1", Kind: "ConfigMap"}: {Resource: cmRes, Namespaced: true},
			{Version: "v1", Kind: "Secret"}:    {Resource: secretRes, Namespaced: true},
		},
		byUID: map[types.UID]item{},
	}
	if err := c.orphan(ctx, item{Resource: cmRes, Namespace: "default", Name: owner.Name, UID: owner.UID}); err != nil {
		t.Fatal(err)
	}

	if _, err := cms.Get(ctx, owner.Name, metav1.GetOptions{}); err == nil {
		t.Error("the owner is still there: its orphan finalizer was not removed")
	}
	cm, err := cms.Get(ctx, "dep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(refUIDs(cm.OwnerReferences), []types.UID{other.UID}) {
		t.Errorf("configmap dependent's owners = %v, want only %s", refUIDs(cm.OwnerReferences), other.UID)
	}
	sec, err := env.Kube.CoreV1().Secrets("default").Get(ctx, "dep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.OwnerReferences) != 0 {
		t.Errorf("secret dependent still refers to %v", refUIDs(sec.OwnerReferences))
	}
}

func refUIDs(refs []metav1.OwnerReference) []types.UID {
	var out []types.UID
	for _, r := range refs {
		out = append(out, r.UID)
	}
	return out
}
