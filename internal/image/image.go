// Package image makes OCI images without a registry: it puts a static Go
// binary in a one-layer image, writes the image as a tarball, and imports the
// tarball into containerd where the CRI plugin finds it.
//
// Drover needs this because its nodes may reach no registry: the pod
// sandbox's pause image (PauseImage) and the test web image (WebImage) are
// built from source on the spot:
//
//	tar, err := image.BuildPackage(ctx, image.PausePackage, image.PauseImage, dir)
//	...
//	err = image.Import(ctx, containerdSocket, tar)
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Images Drover builds, and the Go packages they are built from.
const (
	// PauseImage is the sandbox image containerd is configured with
	// (sandbox_image); it runs PausePackage.
	PauseImage   = "drover.local/pause:1"
	PausePackage = "github.com/drover/drover/internal/image/pause"
	// WebImage is the test HTTP server image; it runs WebPackage.
	WebImage   = "drover.local/web:1"
	WebPackage = "github.com/drover/drover/test/images/web"
)

// Namespace is the containerd namespace the CRI plugin keeps its images in.
const Namespace = "k8s.io"

// defaultPath is the PATH set in images' environment.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec describes an image holding one binary.
type Spec struct {
	// Binary is the host path of the (static) executable.
	Binary string
	// Path is where it goes in the image; default "/" + its base name.
	Path string
	// Args are the default arguments (the image's Cmd); the entrypoint is
	// Path.
	Args []string
	// Env are extra "KEY=value" variables; PATH is always set.
	Env []string
	// WorkingDir is the default working directory; default "/".
	WorkingDir string
}

// FromBinary makes a single-layer image for the host's architecture that
// holds spec.Binary, mode 0755, and runs it as its entrypoint.
func FromBinary(spec Spec) (v1.Image, error) {
	data, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: read binary: %w", err)
	}
	inImage := spec.Path
	if inImage == "" {
		inImage = "/" + filepath.Base(spec.Binary)
	}
	if !path.IsAbs(inImage) {
		return nil, fmt.Errorf("image: path %q in image must be absolute", inImage)
	}
	layerTar, err := singleFileTar(strings.TrimPrefix(inImage, "/"), data)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("image: make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("image: add layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = goruntime.GOARCH
	cfg.Config.Entrypoint = []string{inImage}
	cfg.Config.Cmd = spec.Args
	cfg.Config.Env = append([]string{defaultPath}, spec.Env...)
	cfg.Config.WorkingDir = spec.WorkingDir
	if cfg.Config.WorkingDir == "" {
		cfg.Config.WorkingDir = "/"
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image: set config: %w", err)
	}
	return img, nil
}

// singleFileTar returns a tar archive with the file's parent directories and
// the file itself, executable.
func singleFileTar(name string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps images reproducible.
	mtime := time.Unix(0, 0)
	dirs := strings.Split(path.Dir(name), "/")
	for i := range dirs {
		if dirs[0] == "." {
			break
		}
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(dirs[:i+1], "/") + "/", Mode: 0o755, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("image: write layer: %w", err)
		}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("image: write layer: %w", err)
	}
	if _, err := tw.Write(data); err != nil {
		return nil, fmt.Errorf("image: write layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: write layer: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img, tagged ref (e.g. "drover.local/pause:1"), to a
// tarball at file in the format `docker load` and `ctr images import` read.
func WriteTarball(img v1.Image, ref, file string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image: tag %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		return fmt.Errorf("image: write tarball %s: %w", file, err)
	}
	return nil
}

// BuildBinary compiles the Go main package pkg (an import path or a
// directory) into a static linux executable in dir and returns its path.
// It runs the go command, so it works where the Drover source and a Go
// toolchain are (tests, development); the current directory must be inside
// the Drover module for import paths of its packages.
func BuildBinary(ctx context.Context, pkg, dir string) (string, error) {
	goBin, err := findGo()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, path.Base(pkg))
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("image: go build %s: %w: %s", pkg, err, bytes.TrimSpace(msg))
	}
	return out, nil
}

func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("image: no go command in PATH or $GOROOT/bin")
}

// BuildPackage builds the Go main package pkg, makes an image of it tagged
// ref, and writes the image to a tarball in dir, whose path it returns.
func BuildPackage(ctx context.Context, pkg, ref, dir string) (string, error) {
	bin, err := BuildBinary(ctx, pkg, dir)
	if err != nil {
		return "", err
	}
	img, err := FromBinary(Spec{Binary: bin})
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, path.Base(pkg)+".tar")
	if err := WriteTarball(img, ref, file); err != nil {
		return "", err
	}
	return file, nil
}

// FindCtr returns the path of containerd's ctr command, from PATH or
// /usr/bin/ctr.
func FindCtr() (string, error) {
	if p, err := exec.LookPath("ctr"); err == nil {
		return p, nil
	}
	const fallback = "/usr/bin/ctr"
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", errors.New("image: ctr not found in PATH or /usr/bin (it ships with containerd)")
}

// Import loads the image tarball at file into the containerd listening on
// the unix socket address, in the CRI plugin's namespace (k8s.io), where
// pods can use it by its tag. Importing an image that is already there
// replaces the tag.
func Import(ctx context.Context, address, file string) error {
	ctr, err := FindCtr()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, ctr, "--address", address, "--namespace", Namespace, "images", "import", file)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: ctr import %s: %w: %s", file, err, bytes.TrimSpace(msg))
	}
	return nil
}
