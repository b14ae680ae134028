package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/testenv"
)

// benchTarget is a backend, a service for it and a proxy in one mode.
type benchTarget struct {
	env      *testenv.Env
	pr       *proxyRun
	backend  *backend
	direct   string
	proxied  string
	nodePort int32
}

func setupBench(b *testing.B, mode string) *benchTarget {
	b.Helper()
	if mode == ModeIPTables {
		requireIPTables(b)
	}
	env := testenv.Start(b)
	be := startBackend(b, "a", loopbackIPs(1)[0], 0)
	s := nodePortService(b, env.Kube, "web")
	applySlice(b, env.Kube, endpointSlice("web", "web-a", be, "http", true))
	opts := Options{Mode: mode, NodePortAddress: "127.0.0.1"}
	if mode == ModeIPTables {
		opts.ChainPrefix = testPrefix(b)
	}
	pr := startProxy(b, env.Kube, opts)
	testenv.Eventually(b, 10*time.Second, func() error {
		if bs, _ := pr.backendsOf("default/web:http/TCP"); len(bs) != 1 {
			return fmt.Errorf("backends %v", bs)
		}
		return nil
	})
	np := s.Spec.Ports[0].NodePort
	return &benchTarget{env: env, pr: pr, backend: be, nodePort: np,
		direct:  fmt.Sprintf("http://%s:%d/", be.ip, be.port),
		proxied: fmt.Sprintf("http://127.0.0.1:%d/", np)}
}

func fetch(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkRequest measures one HTTP request straight to a backend and
// through the proxy's node port, on a kept-alive connection and on a new
// connection each, serially (ns/op is the latency) and from parallel
// clients (ns/op is the inverse of the throughput). Compare the modes'
// ns/op with "direct" for the added cost.
func BenchmarkRequest(b *testing.B) {
	for _, mode := range []string{"direct", ModeUserspace, ModeIPTables} {
		b.Run(mode, func(b *testing.B) {
			m := mode
			if m == "direct" {
				m = ModeUserspace
			}
			tgt := setupBench(b, m)
			url := tgt.proxied
			if mode == "direct" {
				url = tgt.direct
			}
			for _, conn := range []string{"keepalive", "newconn"} {
				client := func() *http.Client {
					return &http.Client{Transport: &http.Transport{DisableKeepAlives: conn == "newconn", MaxIdleConnsPerHost: 64}}
				}
				b.Run(conn+"/serial", func(b *testing.B) {
					c := client()
					fetch(b, c, url)
					b.ResetTimer()
					for range b.N {
						fetch(b, c, url)
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
				})
				b.Run(conn+"/parallel", func(b *testing.B) {
					c := client()
					b.SetParallelism(4)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							fetch(b, c, url)
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
				})
			}
		})
	}
}

// BenchmarkReadyToTraffic measures the time from an endpoint being
// written ready to the API server to the first request through the proxy
// that it answers (the service has no other endpoint), reported as p50
// and p99 over b.N flips.
func BenchmarkReadyToTraffic(b *testing.B) {
	for _, mode := range []string{ModeUserspace, ModeIPTables} {
		b.Run(mode, func(b *testing.B) {
			tgt := setupBench(b, mode)
			urls := []string{tgt.proxied}
			var lat []time.Duration
			for range b.N {
				b.StopTimer()
				applySlice(b, tgt.env.Kube, endpointSlice("web", "web-a", tgt.backend, "http", false))
				testenv.Eventually(b, 10*time.Second, func() error {
					if bs, _ := tgt.pr.backendsOf("default/web:http/TCP"); len(bs) != 0 {
						return fmt.Errorf("backends %v", bs)
					}
					if _, err := get(urls[0]); err == nil {
						return fmt.Errorf("still answered")
					}
					return nil
				})
				b.StartTimer()
				start := time.Now()
				cur, err := tgt.env.Kube.DiscoveryV1().EndpointSlices("default").Get(context.Background(), "web-a", metav1.GetOptions{})
				if err != nil {
					b.Fatal(err)
				}
				ready := true
				cur.Endpoints[0].Conditions.Ready = &ready
				cur.Endpoints[0].Conditions.Serving = &ready
				if _, err := tgt.env.Kube.DiscoveryV1().EndpointSlices("default").Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
					b.Fatal(err)
				}
				deadline := start.Add(10 * time.Second)
				for {
					if body, err := get(urls[0]); err == nil && body == "a" {
						break
					}
					if time.Now().After(deadline) {
						b.Fatal("endpoint never took traffic")
					}
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}
