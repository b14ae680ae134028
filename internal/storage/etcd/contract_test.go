package etcd

import (
	"testing"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/storagetest"
)

// TestContract runs the storage.Interface contract suite on the Store.
func TestContract(t *testing.T) {
	storagetest.Run(t, func(tb testing.TB, _ string, opts storagetest.Options) storage.Interface {
		return newStore(tb, Options{ProgressInterval: opts.ProgressInterval})
	})
}
