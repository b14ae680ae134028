package apiserver

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckNesting(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty", "", true},
		{"flat object", `{"a":1,"b":[1,2]}`, true},
		{"at the limit", deep(maxBodyNesting), true},
		{"one beyond", deep(maxBodyNesting + 1), false},
		{"objects beyond", strings.Repeat(`{"a":`, maxBodyNesting+1) + "1" + strings.Repeat("}", maxBodyNesting+1), false},
		{"brackets in strings do not count", `{"a":"` + strings.Repeat("[{", 1000) + `"}`, true},
		{"escaped quote keeps the string open", `{"a":"\"` + strings.Repeat("[", 1000) + `"}`, true},
		{"escaped backslash closes it", `{"a":"\\"` + strings.Repeat("[", maxBodyNesting+1) + `}`, false},
		{"unbalanced closers are the decoder's business", strings.Repeat("]", 1000), true},
	} {
		if err := checkNesting([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestIsLongRunning(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/api/v1/namespaces/a/pods?watch=true", true},
		{"GET", "/api/v1/namespaces/a/pods?watch=1", true},
		{"GET", "/apis/apps/v1/deployments?watch=true", true},
		{"GET", "/api/v1/namespaces/a/pods/p/log?follow=true", true},
		{"GET", "/api/v1/namespaces/a/pods/p/log", true},
		{"POST", "/api/v1/namespaces/a/pods/p/exec", true},
		{"GET", "/api/v1/namespaces/a/pods", false},
		{"GET", "/api/v1/namespaces/a/pods?watch=false", false},
		{"POST", "/api/v1/namespaces/a/pods", false},
		{"GET", "/healthz", false},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		if got := isLongRunning(r); got != tc.want {
			t.Errorf("%s %s: long-running %v, want %v", tc.method, tc.target, got, tc.want)
		}
	}
}

// BenchmarkCheckNesting measures the nesting scan on a 1 MiB JSON body.
func BenchmarkCheckNesting(b *testing.B) {
	body := []byte(`{"data":{` + strings.Repeat(`"key":"value with [brackets] and {braces}",`, 1<<20/44) + `"k":"v"}}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := checkNesting(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInflightAcquire measures taking and giving back a slot.
func BenchmarkInflightAcquire(b *testing.B) {
	l := newInflightLimiter(0, 0, 0, nil)
	r := httptest.NewRequest("GET", "/api/v1/namespaces/a/pods", nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, ok := l.acquire(r, nil)
			if !ok {
				b.Fatal("rejected below the limit")
			}
			release()
		}
	})
}
