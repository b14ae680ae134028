package apiserver

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
)

// storedWrite is the object a request last wrote to storage and the bytes
// it was stored as. A write's response is that object with its new
// resourceVersion, which in protobuf is the stored bytes with the
// resourceVersion filled in: the response needs no second encoding.
type storedWrite struct {
	obj  runtime.Object
	data []byte
}

type storedWriteKey struct{}

// withStoredWrite returns ctx carrying sw, which writes under ctx fill in.
func withStoredWrite(ctx context.Context, sw *storedWrite) context.Context {
	return context.WithValue(ctx, storedWriteKey{}, sw)
}

// recordStoredWrite notes, for the request of ctx if it asked, that obj
// was stored as data.
func recordStoredWrite(ctx context.Context, obj runtime.Object, data []byte) {
	if sw, ok := ctx.Value(storedWriteKey{}).(*storedWrite); ok {
		sw.obj, sw.data = obj, data
	}
}

// response returns the protobuf encoding of out if out is the object last
// stored and its stored form is its served form (same kind and version,
// no selfLink): the stored bytes with out's resourceVersion. False
// otherwise, and the caller encodes out.
func (sw *storedWrite) response(res *registry.Resource, out runtime.Object) ([]byte, bool) {
	if sw.obj == nil || sw.obj != out || res.StorageOf != nil {
		return nil, false
	}
	if out.GetObjectKind().GroupVersionKind() != res.GroupVersionKind() {
		return nil, false
	}
	acc, err := meta.Accessor(out)
	if err != nil || acc.GetSelfLink() != "" || acc.GetResourceVersion() == "" {
		return nil, false
	}
	return storedWithResourceVersion(sw.data, acc.GetResourceVersion())
}
