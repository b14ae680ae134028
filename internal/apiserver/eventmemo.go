package apiserver

import (
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/drover/drover/internal/registry"
)

// eventMemo decodes and encodes each stored value once for all the watches
// that see it: with a watch cache every watcher of a prefix receives the
// same events within moments of each other, and decoding an object and
// encoding it back was most of a watch's cost, paid once per watcher.
//
// Entries are keyed by resource, key, revision and which side of the event
// (the new value or the previous one), which together name one stored value;
// the memo keeps the most recent memoSize of them. Objects handed out are
// shared: callers must not modify them.
type eventMemo struct {
	mu      sync.Mutex
	entries map[memoKey]*memoEntry
	order   []memoKey // FIFO of the keys in entries
	next    int       // where the next key goes in order
}

// memoSize is how many values the memo keeps: far more than the events
// that arrive while the watchers of one event are still handling it.
const memoSize = 4096

type memoKey struct {
	res  *registry.Resource
	key  string
	rev  int64
	prev bool
}

// memoEntry is one stored value, decoded and encoded at most once.
type memoEntry struct {
	decodeOnce sync.Once
	obj        runtime.Object
	err        error
	decodedOK  atomic.Bool // obj is decoded, without error

	encodeOnce sync.Once
	data       []byte // obj as JSON (the plain object form)
	encErr     error

	protoOnce sync.Once
	protoData []byte // obj in enveloped protobuf
	protoErr  error

	// stored is the stored value obj was decoded from, when known (set by
	// the decode func, so read only once decoded): its protobuf form with
	// the resourceVersion filled in is obj's encoding.
	stored []byte
}

func newEventMemo() *eventMemo {
	return &eventMemo{entries: make(map[memoKey]*memoEntry, memoSize), order: make([]memoKey, memoSize)}
}

// entry returns the memo entry for k, creating it (and evicting the oldest)
// when it is not there.
func (m *eventMemo) entry(k memoKey) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[k]; ok {
		return e
	}
	e := &memoEntry{}
	if old := m.order[m.next]; old.res != nil {
		delete(m.entries, old)
	}
	m.order[m.next] = k
	m.next = (m.next + 1) % len(m.order)
	m.entries[k] = e
	return e
}

// decoded returns the object stored as value, decoding it only for the first
// caller.
func (e *memoEntry) decoded(decode func() (runtime.Object, error)) (runtime.Object, error) {
	e.decodeOnce.Do(func() {
		e.obj, e.err = decode()
		e.decodedOK.Store(e.err == nil)
	})
	return e.obj, e.err
}

// decodedObject returns the object the memo holds, already decoded, for the
// new value of k's event: the stored value of key k.key written at
// revision k.rev. It never decodes, nor adds an entry.
func (m *eventMemo) decodedObject(k memoKey) (runtime.Object, bool) {
	e, ok := m.decodedEntry(k)
	if !ok {
		return nil, false
	}
	return e.obj, true
}

// decodedEntry is decodedObject's entry.
func (m *eventMemo) decodedEntry(k memoKey) (*memoEntry, bool) {
	m.mu.Lock()
	e, ok := m.entries[k]
	m.mu.Unlock()
	if !ok || !e.decodedOK.Load() {
		return nil, false
	}
	return e, true
}

// encoded returns the entry's object as JSON, encoding it only for the first
// caller; decoded must have succeeded first.
func (e *memoEntry) encoded(encode func(runtime.Object) ([]byte, error)) ([]byte, error) {
	e.encodeOnce.Do(func() { e.data, e.encErr = encode(e.obj) })
	return e.data, e.encErr
}

// encodedProtobuf is encoded's protobuf counterpart. An object decoded
// from a stored value of res's own version is not encoded: the stored
// value already is its encoding but for the resourceVersion, filled in.
func (e *memoEntry) encodedProtobuf(res *registry.Resource) ([]byte, error) {
	e.protoOnce.Do(func() {
		if e.stored != nil && res.StorageOf == nil {
			if acc, ok := e.obj.(interface{ GetResourceVersion() string }); ok {
				if data, ok := storedWithResourceVersion(e.stored, acc.GetResourceVersion()); ok {
					e.protoData = data
					return
				}
			}
		}
		e.protoData, e.protoErr = encodeProtobuf(e.obj)
	})
	return e.protoData, e.protoErr
}
