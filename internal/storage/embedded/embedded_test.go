package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func start(t *testing.T, cfg Config) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m
}

func TestStartServesAndKeepsDataAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	m := start(t, Config{DataDir: dir})

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode = %o, want 700", perm)
	}
	if eps := m.Endpoints(); len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Errorf("Endpoints() = %v, want one http://127.0.0.1:<port>", eps)
	}

	ctx := context.Background()
	const n = 50
	for i := range n {
		if _, err := m.Client().Put(ctx, fmt.Sprintf("/k/%03d", i), "v"); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	m2 := start(t, Config{DataDir: dir})
	defer m2.Close()
	resp, err := m2.Client().Get(ctx, "/k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if resp.Count != n {
		t.Errorf("after restart %d keys, want %d", resp.Count, n)
	}
}

func TestCloseAfterClientClosed(t *testing.T) {
	m := start(t, Config{DataDir: t.TempDir()})
	if err := m.Client().Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("member Close after client Close: %v", err)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no data dir":   {},
		"bad state":     {DataDir: t.TempDir(), ClusterState: "maybe"},
		"url sans port": {DataDir: t.TempDir(), ClientURL: "http://127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := Start(context.Background(), cfg); err == nil {
				m.Close()
				t.Fatal("Start succeeded, want an error")
			}
		})
	}
}

func TestStartFailsWhenPortTaken(t *testing.T) {
	m := start(t, Config{DataDir: t.TempDir()})
	defer m.Close()
	_, err := Start(context.Background(), Config{DataDir: t.TempDir(), ClientURL: m.Endpoints()[0]})
	if err == nil {
		t.Fatal("second member on the same client URL started, want an error")
	}
	if !strings.Contains(err.Error(), "etcd:") {
		t.Errorf("error %q lacks the etcd: prefix", err)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogging(t *testing.T) {
	t.Run("quiet by default", func(t *testing.T) {
		var out syncBuffer
		m := start(t, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&out, nil))})
		m.Close()
		if s := out.String(); s != "" {
			t.Errorf("info-level logger got etcd logs:\n%s", s)
		}
	})
	t.Run("verbose at debug", func(t *testing.T) {
		var out syncBuffer
		h := slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
		m := start(t, Config{DataDir: t.TempDir(), Logger: slog.New(h)})
		m.Close()
		if s := out.String(); !strings.Contains(s, "component=etcd") {
			t.Errorf("debug-level logger got no etcd logs; got:\n%.2000s", s)
		}
	})
}

func TestAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = net.Listen("tcp", l.Addr().String())
	if !addrInUse(err) || !addrInUse(fmt.Errorf("etcd: %v", err)) {
		t.Errorf("addrInUse(%v) = false", err)
	}
	if addrInUse(nil) || addrInUse(errors.New("permission denied")) {
		t.Error("addrInUse true for other errors")
	}
}
