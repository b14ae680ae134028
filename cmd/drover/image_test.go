package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
