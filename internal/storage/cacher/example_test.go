package cacher_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/drover/drover/internal/storage"
	"github.com/drover/drover/internal/storage/cacher"
	"github.com/drover/drover/internal/storage/embedded"
	"github.com/drover/drover/internal/storage/etcd"
)

// A cache of pods in front of etcd: lists and watches of pods come from
// memory, everything else (and every write) goes to etcd.
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

	store, err := cacher.NewMulti(etcd.New(member.Client(), etcd.Options{}), cacher.Options{}, "/registry/core/pods/")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // closes etcd.Store too

	rev, err := store.Create(ctx, "/registry/core/pods/default/web-1", []byte("v1"))
	if err != nil {
		log.Fatal(err)
	}
	list, err := store.List(ctx, "/registry/core/pods/default/", storage.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(list.Items), list.Revision >= rev)

	events, err := store.Watch(ctx, "/registry/core/pods/", list.Revision)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := store.Update(ctx, "/registry/core/pods/default/web-1", []byte("v2"), rev); err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		if ev.Type == storage.Modified {
			fmt.Printf("%s %s -> %s\n", ev.Key, ev.PrevValue, ev.Value)
			break
		}
	}
	// Output:
	// 1 true
	// /registry/core/pods/default/web-1 v1 -> v2
}
