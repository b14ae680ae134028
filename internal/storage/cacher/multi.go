package cacher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover/drover/internal/storage"
)

// Multi is a storage.Interface with one Cacher per prefix in front of an
// inner store: lists and watches under a cached prefix go to its Cacher (the
// longest matching prefix wins), everything else to the inner store.
type Multi struct {
	inner   storage.Interface
	cachers []*Cacher // longest prefix first
}

var (
	_ storage.Interface = (*Multi)(nil)
	_ storage.Expirer   = (*Multi)(nil)
)

// NewMulti starts a Cacher with opts for each of prefixes (opts.Prefix is
// ignored) in front of inner. Multi owns inner: Close closes it too.
func NewMulti(inner storage.Interface, opts Options, prefixes ...string) (*Multi, error) {
	m := &Multi{inner: inner}
	for _, p := range prefixes {
		o := opts
		o.Prefix = p
		c, err := New(inner, o)
		if err != nil {
			for _, c := range m.cachers {
				c.Close()
			}
			return nil, fmt.Errorf("cacher: %w", err)
		}
		m.cachers = append(m.cachers, c)
	}
	slices.SortFunc(m.cachers, func(a, b *Cacher) int { return len(b.opts.Prefix) - len(a.opts.Prefix) })
	return m, nil
}

// Cacher returns the cacher that serves prefix, or nil.
func (m *Multi) Cacher(prefix string) *Cacher {
	for _, c := range m.cachers {
		if strings.HasPrefix(prefix, c.opts.Prefix) {
			return c
		}
	}
	return nil
}

// Stats returns every cacher's Stats, longest prefix first.
func (m *Multi) Stats() []Stats {
	out := make([]Stats, len(m.cachers))
	for i, c := range m.cachers {
		out[i] = c.Stats()
	}
	return out
}

func (m *Multi) route(prefix string) storage.Interface {
	if c := m.Cacher(prefix); c != nil {
		return c
	}
	return m.inner
}

// Get reads the inner store.
func (m *Multi) Get(ctx context.Context, key string) (storage.KeyValue, error) {
	return m.inner.Get(ctx, key)
}

// GetCached returns the cached copy of key from the cacher whose prefix
// covers it (see Cacher.GetCached); false when no cacher holds it.
func (m *Multi) GetCached(key string) (storage.KeyValue, bool) {
	if c := m.Cacher(key); c != nil {
		return c.GetCached(key)
	}
	return storage.KeyValue{}, false
}

// List reads prefix's cacher, or the inner store.
func (m *Multi) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	return m.route(prefix).List(ctx, prefix, opts)
}

// Count reads the inner store.
func (m *Multi) Count(ctx context.Context, prefix string) (int64, error) {
	return m.inner.Count(ctx, prefix)
}

// Create writes to the inner store.
func (m *Multi) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return m.inner.Create(ctx, key, value)
}

// Update writes to the inner store.
func (m *Multi) Update(ctx context.Context, key string, value []byte, expectedRevision int64) (int64, error) {
	return m.inner.Update(ctx, key, value, expectedRevision)
}

// CreateWithTTL writes to the inner store, with the TTL if it can expire
// keys (see storage.CreateWithTTL).
func (m *Multi) CreateWithTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	return storage.CreateWithTTL(ctx, m.inner, key, value, ttl)
}

// UpdateWithTTL writes to the inner store, with the TTL if it can expire
// keys (see storage.UpdateWithTTL).
func (m *Multi) UpdateWithTTL(ctx context.Context, key string, value []byte, expectedRevision int64, ttl time.Duration) (int64, error) {
	return storage.UpdateWithTTL(ctx, m.inner, key, value, expectedRevision, ttl)
}

// Delete writes to the inner store.
func (m *Multi) Delete(ctx context.Context, key string, expectedRevision int64) (storage.KeyValue, int64, error) {
	return m.inner.Delete(ctx, key, expectedRevision)
}

// Watch watches prefix's cacher, or the inner store.
func (m *Multi) Watch(ctx context.Context, prefix string, fromRevision int64) (<-chan storage.Event, error) {
	return m.route(prefix).Watch(ctx, prefix, fromRevision)
}

// Revision reads the inner store's current revision.
func (m *Multi) Revision(ctx context.Context) (int64, error) { return m.inner.Revision(ctx) }

// Compact compacts the inner store and every cacher's event window.
func (m *Multi) Compact(ctx context.Context, revision int64) error {
	if err := m.inner.Compact(ctx, revision); err != nil {
		return err
	}
	for _, c := range m.cachers {
		c.compacted(revision)
	}
	return nil
}

// Close stops the cachers, then closes the inner store.
func (m *Multi) Close() error {
	var errs []error
	for _, c := range m.cachers {
		errs = append(errs, c.Close())
	}
	errs = append(errs, m.inner.Close())
	return errors.Join(errs...)
}
