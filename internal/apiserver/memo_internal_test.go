package apiserver

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
	"github.com/drover/drover/internal/storage"
)

// oneCached is a watch cache holding one value.
type oneCached struct {
	storage.Interface
	key string
	kv  storage.KeyValue
}

func (c oneCached) GetCached(key string) (storage.KeyValue, bool) { return c.kv, key == c.key }

func podsResource(t *testing.T) *registry.Resource {
	t.Helper()
	for _, r := range registry.All() {
		if r.GroupVersion.Group == "" && r.Plural == "pods" {
			return r
		}
	}
	t.Fatal("no pods resource in the registry")
	return nil
}

// TestGetCachedCopiesTheMemosObject: when a watch has decoded the cached
// value already, getCachedStored hands out a copy of that object (or, asked
// for a shared one, the object itself) instead of decoding the value again,
// and decodes when the memo holds another revision.
func TestGetCachedCopiesTheMemosObject(t *testing.T) {
	pods := podsResource(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"from": "etcd"}}}
	var plain objectStore
	value, err := plain.encode(pods, pod)
	if err != nil {
		t.Fatal(err)
	}
	key := objectKey(pods, "ns", "p")
	memo := newEventMemo()
	o := &objectStore{s: oneCached{key: key, kv: storage.KeyValue{Value: value, Revision: 7}}, memo: memo}

	// No watch decoded it: decoded from the value.
	obj, kv, ok := o.getCachedStored(pods, "ns", "p", false)
	if !ok || kv.Revision != 7 || obj.(*corev1.Pod).Labels["from"] != "etcd" {
		t.Fatalf("getCachedStored = %v, %d, %v; want the pod decoded at revision 7", obj, kv.Revision, ok)
	}

	// A watch decoded revision 7; the memo's object is marked to tell it
	// from a fresh decode.
	memoPod := pod.DeepCopy()
	memoPod.Labels["from"] = "memo"
	memoPod.ResourceVersion = "7"
	if _, err := memo.entry(memoKey{res: pods, key: key, rev: 7}).decoded(func() (runtime.Object, error) { return memoPod, nil }); err != nil {
		t.Fatal(err)
	}
	obj, _, ok = o.getCachedStored(pods, "ns", "p", false)
	got := obj.(*corev1.Pod)
	if !ok || got.Labels["from"] != "memo" || got.ResourceVersion != "7" {
		t.Fatalf("getCachedStored = %+v, want the memo's object", got.ObjectMeta)
	}
	got.Labels["from"] = "changed by the caller"
	if memoPod.Labels["from"] != "memo" {
		t.Fatal("getCachedStored handed out the memo's shared object, not a copy")
	}
	// Asked for it, the memo's object itself, not a copy.
	if obj, _, ok := o.getCachedStored(pods, "ns", "p", true); !ok || obj != runtime.Object(memoPod) {
		t.Fatalf("getCachedStored(shared) = %p, want the memo's object %p", obj, memoPod)
	}

	// The memo holds another revision only, or a failed decode: decoded.
	o.s = oneCached{key: key, kv: storage.KeyValue{Value: value, Revision: 8}}
	if _, err := memo.entry(memoKey{res: pods, key: key, rev: 8, prev: true}).decoded(func() (runtime.Object, error) { return memoPod, nil }); err != nil {
		t.Fatal(err)
	}
	if obj, _, _ := o.getCachedStored(pods, "ns", "p", false); obj.(*corev1.Pod).Labels["from"] != "etcd" {
		t.Fatalf("revision 8 came from the memo's revision 7 or its previous side: %v", obj.(*corev1.Pod).Labels)
	}
	memo.entry(memoKey{res: pods, key: key, rev: 8}).decoded(func() (runtime.Object, error) { return nil, errors.New("undecodable") })
	if obj, _, _ := o.getCachedStored(pods, "ns", "p", false); obj == nil || obj.(*corev1.Pod).Labels["from"] != "etcd" {
		t.Fatalf("a failed memo decode was used: %v", obj)
	}
}
