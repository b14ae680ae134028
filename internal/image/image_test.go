package image

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/drover/drover/internal/image/pauseproc"
)

func TestFromBinaryAndTarball(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	content := []byte("#!/not/really/a/binary\n")
	if err := os.WriteFile(bin, content, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := FromBinary(Spec{Binary: bin, Path: "/usr/bin/hello", Args: []string{"-v"}, Env: []string{"A=b"}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "hello.tar")
	if err := WriteTarball(img, "drover.local/hello:2", file); err != nil {
		t.Fatal(err)
	}

	tag, _ := name.NewTag("drover.local/hello:2")
	back, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatalf("read tarball back: %v", err)
	}
	cfg, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != goruntime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cfg.OS, cfg.Architecture, goruntime.GOARCH)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/bin/hello"}) || !slices.Equal(cfg.Config.Cmd, []string{"-v"}) {
		t.Errorf("entrypoint %q cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if !slices.Contains(cfg.Config.Env, "A=b") || !slices.ContainsFunc(cfg.Config.Env, func(s string) bool { return strings.HasPrefix(s, "PATH=") }) {
		t.Errorf("env = %q, want PATH and A=b", cfg.Config.Env)
	}
	layers, err := back.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == "usr/bin/hello" {
			if hdr.Mode&0o111 == 0 {
				t.Errorf("binary mode %o is not executable", hdr.Mode)
			}
			b, _ := io.ReadAll(tr)
			if string(b) != string(content) {
				t.Errorf("binary content = %q", b)
			}
		}
	}
	if want := []string{"usr/", "usr/bin/", "usr/bin/hello"}; !slices.Equal(names, want) {
		t.Errorf("layer entries = %q, want %q", names, want)
	}
}

func TestFromBinaryErrors(t *testing.T) {
	if _, err := FromBinary(Spec{Binary: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing binary: no error")
	}
	bin := filepath.Join(t.TempDir(), "x")
	os.WriteFile(bin, []byte("x"), 0o755)
	if _, err := FromBinary(Spec{Binary: bin, Path: "relative/x"}); err == nil {
		t.Error("relative path in image: no error")
	}
	img, _ := FromBinary(Spec{Binary: bin})
	if err := WriteTarball(img, "Not A Valid Tag", filepath.Join(t.TempDir(), "x.tar")); err == nil {
		t.Error("invalid tag: no error")
	}
}

// TestPauseProgram builds the pause program and checks it waits, then
// exits 0 on SIGTERM.
func TestPauseProgram(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := BuildBinary(ctx, PausePackage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// It keeps running until signalled. Wait for its ready line: the Go
	// runtime catches SIGTERM from the start, so /proc's SigCgt cannot tell
	// whether pause's own handler is installed yet.
	errLines := bufio.NewReader(stderr)
	first, err := errLines.ReadString('\n')
	if strings.TrimSpace(first) != pauseproc.ReadyLine {
		t.Fatalf("pause's first line %q (%v), want %q", first, err, pauseproc.ReadyLine)
	}
	exited := make(chan error, 1)
	go func() { io.ReadAll(errLines); exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("pause exited before a signal: %v", err)
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("pause after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause did not exit on SIGTERM")
	}
}

// TestWebProgram builds the web program and exercises its endpoints on a
// loopback port.
func TestWebProgram(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := BuildBinary(ctx, WebPackage, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unhealthy := filepath.Join(t.TempDir(), "sick")
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-unhealthy-file", unhealthy)
	cmd.Env = append(os.Environ(), "VERSION=v7")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatal("web printed nothing")
	}
	first := sc.Text()
	_, addr, ok := strings.Cut(first, "listening on ")
	if !ok || !strings.HasPrefix(first, "web v7:") {
		t.Fatalf("first line %q, want the version and address", first)
	}
	go io.Copy(io.Discard, stdout)
	base := "http://" + addr

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/"); code != 200 || !strings.HasPrefix(body, "v7 ") {
		t.Errorf("GET / = %d %q, want 200 starting with v7", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	os.WriteFile(unhealthy, nil, 0o644)
	if code, _ := get("/healthz"); code != 500 {
		t.Errorf("GET /healthz with unhealthy file = %d, want 500", code)
	}
	if code, body := get("/burn?ms=20"); code != 200 || !strings.HasPrefix(body, "burned ") {
		t.Errorf("GET /burn = %d %q", code, body)
	}
	if code, _ := get("/burn?ms=x"); code != 400 {
		t.Errorf("GET /burn?ms=x = %d, want 400", code)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestBuildBinaryError(t *testing.T) {
	_, err := BuildBinary(context.Background(), "github.com/drover/drover/no/such/package", t.TempDir())
	if err == nil {
		t.Fatal("no error for a missing package")
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBuildStatic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := BuildBinary(ctx, PausePackage, dir)
	if err != nil {
		t.Fatal(err)
	}
	if static, err := IsStatic(bin); err != nil || !static {
		t.Fatalf("IsStatic(CGO_ENABLED=0 build) = %v, %v; want true", static, err)
	}
	file, err := BuildStatic(bin, "drover.local/self:1", []string{"pause"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("drover.local/self:1")
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/pause"}) || !slices.Equal(cfg.Config.Cmd, []string{"pause"}) {
		t.Errorf("entrypoint %q cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}

	// A dynamically linked system binary is refused.
	if static, err := IsStatic("/bin/ls"); err != nil || static {
		t.Errorf("IsStatic(/bin/ls) = %v, %v; want false", static, err)
	}
	if _, err := BuildStatic("/bin/ls", "drover.local/ls:1", nil, dir); err == nil {
		t.Error("BuildStatic(/bin/ls) succeeded")
	}
	if _, err := IsStatic(filepath.Join(dir, "pause.tar")); err == nil {
		t.Error("IsStatic of a non-ELF file: no error")
	}
}
