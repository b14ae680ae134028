// Package storage is Drover's key-value store contract: revisioned keys with
// optimistic concurrency and watches, as etcd provides them. The API server
// stores serialized objects here; resourceVersion is the key's mod revision.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors; implementations wrap them so callers can use errors.Is.
var (
	// ErrNotFound: the key does not exist (at the requested revision).
	ErrNotFound = errors.New("storage: key not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("storage: key already exists")
	// ErrConflict: the key's current revision differs from the expected one.
	ErrConflict = errors.New("storage: revision conflict")
	// ErrCompacted: the requested revision has been compacted away.
	ErrCompacted = errors.New("storage: revision compacted")
	// ErrFutureRevision: the requested revision is newer than the store's.
	ErrFutureRevision = errors.New("storage: revision is in the future")
	// ErrUnavailable: the store cannot serve the request now (e.g. no quorum).
	ErrUnavailable = errors.New("storage: unavailable")
)

// KeyValue is one stored key at one revision.
type KeyValue struct {
	Key      string
	Value    []byte
	Revision int64 // the key's mod revision: the object's resourceVersion
}

// ListOptions narrows a List.
type ListOptions struct {
	// Revision reads the store as it was at this revision; 0 reads the latest.
	Revision int64
	// Limit caps the number of items returned; 0 means no cap.
	Limit int64
	// StartKey, if set, lists keys >= StartKey (still under the prefix).
	StartKey string
}

// ListResult is a consistent snapshot of keys under a prefix.
type ListResult struct {
	Items []KeyValue
	// Revision is the store revision the list was read at.
	Revision int64
	// More reports that keys after the last item exist under the prefix.
	More bool
	// Remaining counts the keys after the last item, when More is true.
	Remaining int64
}

// EventType tells what happened to a key.
type EventType int

// Event types.
const (
	Added EventType = iota + 1
	Modified
	Deleted
	// Progress carries no key: it tells that every change up to Revision
	// has been delivered (a bookmark).
	Progress
	// Error ends the stream; Err says why (e.g. ErrCompacted).
	Error
)

// Event is one change seen by a Watch.
type Event struct {
	Type EventType
	Key  string
	// Value is the new value; for Deleted it is the last value before deletion.
	Value []byte
	// PrevValue is the value before a Modified change (nil when unknown).
	PrevValue []byte
	// PrevRevision is the revision at which PrevValue was written (0 when
	// unknown).
	PrevRevision int64
	// Revision is the revision of the change (for Deleted: the deletion's revision).
	Revision int64
	Err      error
}

// Interface is the store the API server is built on. Keys are plain strings
// such as "/registry/pods/default/web-1"; a prefix lists or watches a subtree.
type Interface interface {
	// Get returns the key's current value and revision, or ErrNotFound.
	Get(ctx context.Context, key string) (KeyValue, error)
	// List returns the keys under prefix in key order.
	List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error)
	// Count returns how many keys are under prefix.
	Count(ctx context.Context, prefix string) (int64, error)
	// Create stores value under a new key and returns its revision, or ErrExists.
	Create(ctx context.Context, key string, value []byte) (int64, error)
	// Update replaces the value if the key's revision equals expectedRevision
	// and returns the new revision; ErrConflict if it does not, ErrNotFound if
	// the key is gone.
	Update(ctx context.Context, key string, value []byte, expectedRevision int64) (int64, error)
	// Delete removes the key if its revision equals expectedRevision (0: any)
	// and returns the deleted value and the deletion's revision.
	Delete(ctx context.Context, key string, expectedRevision int64) (KeyValue, int64, error)
	// Watch streams changes under prefix with revisions > fromRevision
	// (fromRevision 0: from now on). The channel closes when ctx ends or after
	// an Error event. Progress events are sent at least every ProgressInterval
	// while the watch is idle.
	Watch(ctx context.Context, prefix string, fromRevision int64) (<-chan Event, error)
	// Revision returns the store's current revision.
	Revision(ctx context.Context) (int64, error)
	// Compact discards history before revision.
	Compact(ctx context.Context, revision int64) error
	// Close releases the store's connections.
	Close() error
}

// Expirer is implemented by stores whose keys can expire, as upstream stores
// events (kube-apiserver's --event-ttl): a key written with a TTL is deleted
// by the store itself about ttl after that write (perhaps up to a few
// seconds later, never earlier), and watchers see it Deleted. Every write
// sets the key's expiry afresh: a key written again with the plain Update
// of Interface no longer expires. A ttl is rounded up to whole seconds, and
// a store may raise it to its minimum (etcd's is about 1.5 s).
//
// It is separate from Interface so that stores that cannot expire keys (and
// test fakes) need not implement it; callers check with a type assertion.
type Expirer interface {
	// CreateWithTTL is Create of a key that expires ttl after this write.
	CreateWithTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error)
	// UpdateWithTTL is Update of a key that then expires ttl after this
	// write.
	UpdateWithTTL(ctx context.Context, key string, value []byte, expectedRevision int64, ttl time.Duration) (int64, error)
}

// CreateWithTTL creates key in s to expire ttl after the write when s is an
// Expirer and ttl is positive; otherwise it is s.Create, and the key stays.
func CreateWithTTL(ctx context.Context, s Interface, key string, value []byte, ttl time.Duration) (int64, error) {
	if e, ok := s.(Expirer); ok && ttl > 0 {
		return e.CreateWithTTL(ctx, key, value, ttl)
	}
	return s.Create(ctx, key, value)
}

// UpdateWithTTL updates key in s to expire ttl after the write when s is an
// Expirer and ttl is positive; otherwise it is s.Update, and the key stays.
func UpdateWithTTL(ctx context.Context, s Interface, key string, value []byte, expectedRevision int64, ttl time.Duration) (int64, error) {
	if e, ok := s.(Expirer); ok && ttl > 0 {
		return e.UpdateWithTTL(ctx, key, value, expectedRevision, ttl)
	}
	return s.Update(ctx, key, value, expectedRevision)
}
