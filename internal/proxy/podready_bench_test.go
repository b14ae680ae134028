package proxy

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover/drover/internal/controller/endpoints"
	"github.com/drover/drover/internal/testenv"
)

// BenchmarkProxyOverhead measures requests to one backend straight to its
// address and through the proxy's node port, alternating in batches of
// 50 so both see the same machine load, and reports the ratios:
// latency-ratio is proxied over direct time per request (1.0 = no added
// cost), and the req/s of each.
func BenchmarkProxyOverhead(b *testing.B) {
	for _, mode := range []string{ModeUserspace, ModeIPTables} {
		for _, conn := range []string{"keepalive", "newconn"} {
			b.Run(mode+"/"+conn, func(b *testing.B) {
				tgt := setupBench(b, mode)
				c := &http.Client{Transport: &http.Transport{DisableKeepAlives: conn == "newconn"}}
				fetch(b, c, tgt.direct)
				fetch(b, c, tgt.proxied)
				var direct, proxied time.Duration
				b.ResetTimer()
				for done := 0; done < b.N; {
					n := min(50, b.N-done)
					for _, u := range []string{tgt.direct, tgt.proxied} {
						start := time.Now()
						for range n {
							fetch(b, c, u)
						}
						if u == tgt.direct {
							direct += time.Since(start)
						} else {
							proxied += time.Since(start)
						}
					}
					done += n
				}
				b.ReportMetric(float64(proxied)/float64(direct), "latency-ratio")
				b.ReportMetric(float64(b.N)/direct.Seconds(), "direct-req/s")
				b.ReportMetric(float64(b.N)/proxied.Seconds(), "proxied-req/s")
				b.ReportMetric(float64(proxied-direct)/float64(b.N)/1e3, "added-µs/req")
			})
		}
	}
}

// BenchmarkPodReadyToTraffic measures the whole path from a pod's status
// turning Ready (as the agent writes it) to the first request through
// the proxy that the pod answers: the EndpointSlice controller (real)
// marks the endpoint ready, the proxy picks it up. The service has no
// other endpoint. Reported as p50 and p99 over b.N flips.
func BenchmarkPodReadyToTraffic(b *testing.B) {
	for _, mode := range []string{ModeUserspace, ModeIPTables} {
		b.Run(mode, func(b *testing.B) {
			if mode == ModeIPTables {
				requireIPTables(b)
			}
			env := testenv.Start(b)
			ctx, cancel := context.WithCancel(context.Background())
			ctrlDone := make(chan error, 1)
			go func() { ctrlDone <- endpoints.Run(ctx, env.Kube, testenv.Logger(b), endpoints.Options{}) }()
			b.Cleanup(func() {
				cancel()
				if err := <-ctrlDone; err != nil {
					b.Errorf("endpoints.Run: %v", err)
				}
			})
			be := startBackend(b, "pod", loopbackIPs(1)[0], 0)
			s := createService(b, env.Kube, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: randomClusterIP(), Selector: map[string]string{"app": "web"},
					Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(be.port)}}},
			})
			pods := env.Kube.CoreV1().Pods("default")
			pod, err := pods.Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: "web"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			setReady := func(ready bool) {
				st := corev1.ConditionFalse
				if ready {
					st = corev1.ConditionTrue
				}
				pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: be.ip, PodIPs: []corev1.PodIP{{IP: be.ip}},
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}}
				if pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			opts := Options{Mode: mode, NodePortAddress: "127.0.0.1", NodeName: "node-1"}
			if mode == ModeIPTables {
				opts.ChainPrefix = testPrefix(b)
			}
			pr := startProxy(b, env.Kube, opts)
			url := fmt.Sprintf("http://127.0.0.1:%d/", s.Spec.Ports[0].NodePort)
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				setReady(false)
				testenv.Eventually(b, 10*time.Second, func() error {
					if bs, _ := pr.backendsOf("default/web:http/TCP"); len(bs) != 0 {
						return fmt.Errorf("backends %v", bs)
					}
					if _, err := get(url); err == nil {
						return fmt.Errorf("still answered")
					}
					return nil
				})
				b.StartTimer()
				start := time.Now()
				setReady(true)
				deadline := start.Add(10 * time.Second)
				for {
					if body, err := get(url); err == nil && body == "pod" {
						break
					}
					if time.Now().After(deadline) {
						b.Fatal("the ready pod never took traffic")
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
