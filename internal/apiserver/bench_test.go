package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// benchConfigMap is a ~1 KiB object.
func benchConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Data:       map[string]string{"payload": fmt.Sprintf("%01000d", 0)},
	}
}

var benchNamespaces sync.Map

// benchNamespace creates (once per name) a namespace holding n configmaps.
func benchNamespace(b *testing.B, ts *testServer, name string, n int) string {
	if _, done := benchNamespaces.Load(name); done {
		return name
	}
	ts.namespace(b, name)
	ctx := context.Background()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := ts.client.CoreV1().ConfigMaps(name).Create(ctx, benchConfigMap(fmt.Sprintf("cm-%05d", i)), metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		}(i)
	}
	wg.Wait()
	benchNamespaces.Store(name, true)
	return name
}

func BenchmarkCreate(b *testing.B) {
	ts := newTestServer(b)
	ns := ts.namespace(b, fmt.Sprintf("bench-create-%d", b.N))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ts.client.CoreV1().ConfigMaps(ns).Create(ctx, benchConfigMap(fmt.Sprintf("c-%d", i)), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	ts := newTestServer(b)
	ns := benchNamespace(b, ts, "bench-list-1k", 1000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ts.client.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprintf("cm-%05d", i%1000), metav1.GetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkList(b *testing.B, n int) {
	ts := newTestServer(b)
	ns := benchNamespace(b, ts, fmt.Sprintf("bench-list-%dk", n/1000), n)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		list, err := ts.client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != n {
			b.Fatalf("listed %d, want %d", len(list.Items), n)
		}
	}
}

func BenchmarkList1k(b *testing.B)  { benchmarkList(b, 1000) }
func BenchmarkList10k(b *testing.B) { benchmarkList(b, 10000) }

// BenchmarkWatchFanOut measures one write reaching 100 watchers.
func BenchmarkWatchFanOut(b *testing.B) {
	ts := newTestServer(b)
	ns := ts.namespace(b, fmt.Sprintf("bench-watch-%d", b.N))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const watchers = 100
	cms := ts.client.CoreV1().ConfigMaps(ns)
	seed, err := cms.Create(ctx, benchConfigMap("seed"), metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ws := make([]watch.Interface, watchers)
	for i := range ws {
		if ws[i], err = cms.Watch(ctx, metav1.ListOptions{ResourceVersion: seed.ResourceVersion}); err != nil {
			b.Fatal(err)
		}
		defer ws[i].Stop()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cms.Create(ctx, benchConfigMap(fmt.Sprintf("w-%d", i)), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		for _, w := range ws {
			if ev := <-w.ResultChan(); ev.Type != watch.Added {
				b.Fatalf("event %s", ev.Type)
			}
		}
	}
}
