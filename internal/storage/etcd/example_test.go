package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

// A store on an embedded member: create, then update from the revision read.
func Example() {
	dir, err := os.MkdirTemp("", "drover-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	member, err := embedded.Start(ctx, embedded.Config{DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer member.Close()
	store := etcd.New(member.Client(), etcd.Options{})
	defer store.Close()

	rev, err := store.Create(ctx, "/registry/configmaps/default/demo", []byte("v1"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := store.Update(ctx, "/registry/configmaps/default/demo", []byte("v2"), rev); err != nil {
		log.Fatal(err)
	}
	// A second writer still holding the old revision loses.
	_, err = store.Update(ctx, "/registry/configmaps/default/demo", []byte("v2'"), rev)
	fmt.Println(errors.Is(err, storage.ErrConflict))

	kv, err := store.Get(ctx, "/registry/configmaps/default/demo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(kv.Value), kv.Revision > rev)
	// Output:
	// true
	// v2 true
}
