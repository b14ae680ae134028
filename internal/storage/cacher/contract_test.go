package cacher

import (
	"testing"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

// TestContract runs the storage.Interface contract suite on a Multi with a
// cacher for the test's prefix: the suite's keys next to the prefix go to
// etcd directly, the ones under it through the cache.
func TestContract(t *testing.T) {
	storagetest.Run(t, func(tb testing.TB, prefix string, opts storagetest.Options) storage.Interface {
		inner := newEtcd(tb, opts.ProgressInterval)
		m, err := NewMulti(inner, Options{ProgressInterval: opts.ProgressInterval}, prefix)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { m.Close() })
		waitReady(tb, m.Cacher(prefix))
		return m
	})
}
