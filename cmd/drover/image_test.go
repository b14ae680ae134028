package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/runtime/cri/critest"
)

func TestImageImportWithoutContainerdFailsInOneLine(t *testing.T) {
	_, stderr, err := drover(t, nil, "image", "import", "--data-dir", t.TempDir(), "x.tar")
	if err == nil || !strings.Contains(stderr, "no containerd at") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("err %v, stderr %q", err, stderr)
	}
}

// TestImageImportLoadsAnArchive imports an image built here into a real
// containerd, where CRI then finds it by its tag.
func TestImageImportLoadsAnArchive(t *testing.T) {
	env := critest.Start(t)
	dir := t.TempDir()
	const ref = "drover.test/imported:v1"
	bin := filepath.Join(dir, "hello")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := image.FromBinary(image.Spec{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "img.tar")
	if err := image.WriteTarball(img, ref, file); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := drover(t, nil, "image", "import", "--containerd-socket", env.Containerd.Address(), file)
	if err != nil || !strings.Contains(stdout, "imported "+file) {
		t.Fatalf("import: %v: %s %s", err, stdout, stderr)
	}
	if _, err := env.Runtime.ImageStatus(context.Background(), ref); err != nil {
		t.Errorf("image %s not in containerd after import: %v", ref, err)
	}
}

// TestImageBuildMakesARunnableArchive builds the test web server into an
// archive and reads the image back: its entrypoint is the static binary and
// its arguments are the ones given.
func TestImageBuildMakesARunnableArchive(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.tar")
	const ref = "drover.test/my-web:2.0"
	stdout, stderr, err := drover(t, nil, "image", "build", "../../test/images/web", "--tag", ref, "--arg=-version=2.0", "--env", "A=b", "-o", out)
	if err != nil || !strings.Contains(stdout, "built "+ref+" into "+out) {
		t.Fatalf("build: %v: %s %s", err, stdout, stderr)
	}
	tag, _ := name.NewTag(ref)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read archive back: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/web"}) || !slices.Equal(cfg.Config.Cmd, []string{"-version=2.0"}) || !slices.Contains(cfg.Config.Env, "A=b") {
		t.Errorf("entrypoint %q cmd %q env %q", cfg.Config.Entrypoint, cfg.Config.Cmd, cfg.Config.Env)
	}
}

func TestImageBuildNeedsATag(t *testing.T) {
	_, stderr, err := drover(t, nil, "image", "build", "../../test/images/web")
	if err == nil || !strings.Contains(stderr, "--tag is required") {
		t.Errorf("err %v, stderr %q", err, stderr)
	}
}
