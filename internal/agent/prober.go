package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover/drover/internal/runtime"
)

// probeAnswerer is implemented by runtimes whose containers cannot be
// reached (sim): they answer probes themselves.
type probeAnswerer interface {
	ProbeResult(ctx context.Context, id runtime.ContainerID, kind string) (bool, error)
}

// prober runs probe and hook actions against a container.
type prober struct {
	rt   runtime.Runtime
	http *http.Client
}

func newProber(rt runtime.Runtime) *prober {
	return &prober{
		rt: rt,
		http: &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			// Like the kubelet, do not follow redirects to other hosts;
			// a redirect is a success.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// probe runs one probe and reports whether it succeeded.
func (p *prober) probe(ctx context.Context, kind ProbeKind, pr *corev1.Probe, c *corev1.Container, id runtime.ContainerID, podIP string) (bool, error) {
	if a, ok := p.rt.(probeAnswerer); ok {
		return a.ProbeResult(ctx, id, string(kind))
	}
	timeout := TimingOf(pr).Timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.run(ctx, pr.ProbeHandler, c, id, podIP, timeout)
}

// run performs a probe handler.
func (p *prober) run(ctx context.Context, h corev1.ProbeHandler, c *corev1.Container, id runtime.ContainerID, podIP string, timeout time.Duration) (bool, error) {
	switch {
	case h.Exec != nil:
		ex, ok := p.rt.(runtime.Execer)
		if !ok {
			return false, fmt.Errorf("runtime %s cannot exec", p.rt.Name())
		}
		res, err := ex.ExecSync(ctx, id, h.Exec.Command, timeout)
		if err != nil {
			return false, err
		}
		return res.ExitCode == 0, nil
	case h.HTTPGet != nil:
		return p.httpGet(ctx, h.HTTPGet, c, podIP)
	case h.TCPSocket != nil:
		host := h.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(h.TCPSocket.Port, c)
		if err != nil {
			return false, err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	case h.GRPC != nil:
		return false, fmt.Errorf("grpc probes are not supported")
	}
	return false, fmt.Errorf("probe has no handler")
}

func (p *prober) httpGet(ctx context.Context, g *corev1.HTTPGetAction, c *corev1.Container, podIP string) (bool, error) {
	host := g.Host
	if host == "" {
		host = podIP
	}
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return false, err
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: g.Path}
	if u.Path == "" {
		u.Path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("User-Agent", "drover-probe/1")
	for _, h := range g.HTTPHeaders {
		if h.Name == "Host" {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return false, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400, nil
}

// resolvePort turns a numeric or named port into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q not found in container %s", port.StrVal, c.Name)
}

// runHook runs a lifecycle hook (preStop or postStart), waiting at most
// until ctx ends.
func (p *prober) runHook(ctx context.Context, h *corev1.LifecycleHandler, c *corev1.Container, id runtime.ContainerID, podIP string) error {
	switch {
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	case h.Exec != nil:
		_, err := p.run(ctx, corev1.ProbeHandler{Exec: h.Exec}, c, id, podIP, 0)
		return err
	case h.HTTPGet != nil:
		_, err := p.httpGet(ctx, h.HTTPGet, c, podIP)
		return err
	case h.TCPSocket != nil:
		return nil // deprecated and a no-op in the kubelet too
	}
	return nil
}
