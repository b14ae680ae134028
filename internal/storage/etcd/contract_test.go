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

// TestContractInProcess runs the contract on a Store whose client calls the
// member's server in process (embedded.Member.InProcessClient), as a single
// server's control plane does.
func TestContractInProcess(t *testing.T) {
	storagetest.Run(t, func(tb testing.TB, _ string, opts storagetest.Options) storage.Interface {
		return newInProcessStore(tb, Options{ProgressInterval: opts.ProgressInterval})
	})
}
