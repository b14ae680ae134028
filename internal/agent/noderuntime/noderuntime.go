// Package noderuntime opens the runtime a node agent runs its pods with, by
// name: "cri" (an existing containerd, or Drover's own started on the spot
// with a pause image Drover builds and imports itself), "process" or "sim".
// It is shared by `drover agent` and `drover up`.
//
//	rt, err := noderuntime.Open(ctx, noderuntime.Options{Name: noderuntime.Default(""), DataDir: dir})
//	...
//	defer rt.Close() // containers keep running
package noderuntime

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/drover/drover/internal/image"
	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/cri"
	"github.com/drover/drover/internal/runtime/cri/containerd"
	"github.com/drover/drover/internal/runtime/process"
	"github.com/drover/drover/internal/runtime/sim"
)

// Runtime names.
const (
	CRI     = "cri"
	Process = "process"
	Sim     = "sim"
)

// Options say which runtime to open and how.
type Options struct {
	// Name is CRI, Process or Sim.
	Name string
	// DataDir is the agent's data directory; runtimes keep their state
	// under it (containerd in DataDir/containerd, the process runtime in
	// DataDir/process).
	DataDir string
	// ContainerdSocket, for CRI, is an existing containerd's socket; empty
	// starts Drover's own containerd.
	ContainerdSocket string
	// PodSubnet is the CIDR pod IPs come from (Drover's containerd, sim,
	// and process, where it must lie in 127.0.0.0/8).
	PodSubnet string
	// NodeIP is the node's address (the process runtime's host-network
	// pod IP).
	NodeIP string
	// PauseBinary, for Drover's own containerd, is a static executable
	// whose "pause" argument runs the pause process (a drover binary);
	// when it is not static, the pause image is built with the Go
	// toolchain instead.
	PauseBinary string
	// Logger receives what is done; default slog.Default().
	Logger *slog.Logger
}

// Runtime is an open runtime; Close releases it (containers keep running).
type Runtime struct {
	runtime.Runtime
	closers []func()
}

// Close disconnects from the runtime and stops Drover's containerd if it
// started one. Containers keep running.
func (r *Runtime) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// Default resolves an empty runtime name: CRI when a containerd socket was
// given or containerd can run here, else Process. It also says why.
func Default(containerdSocket string) (name, why string) {
	if containerdSocket != "" {
		return CRI, "a containerd socket was given"
	}
	if err := containerd.Check(); err != nil {
		return Process, err.Error()
	}
	return CRI, "containerd is installed"
}

// Open opens the named runtime.
func Open(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	switch opts.Name {
	case Sim:
		return &Runtime{Runtime: sim.New(sim.Config{Subnet: opts.PodSubnet})}, nil
	case CRI:
		return openCRI(ctx, opts)
	case Process:
		rt, err := process.New(process.Config{
			StateDir:  filepath.Join(opts.DataDir, "process"),
			Logger:    opts.Logger,
			PodSubnet: opts.PodSubnet,
			NodeIP:    opts.NodeIP,
		})
		if err != nil {
			return nil, err
		}
		return &Runtime{Runtime: rt}, nil
	}
	return nil, fmt.Errorf("noderuntime: unknown runtime %q: want cri, process or sim", opts.Name)
}

func openCRI(ctx context.Context, opts Options) (*Runtime, error) {
	out := &Runtime{}
	socket := opts.ContainerdSocket
	if socket == "" {
		c, err := containerd.Start(ctx, containerd.Config{Dir: filepath.Join(opts.DataDir, "containerd"), PodSubnet: opts.PodSubnet})
		if err != nil {
			return nil, err
		}
		out.closers = append(out.closers, c.Stop)
		socket = c.Address()
		opts.Logger.Info("started containerd", "socket", socket, "log", c.LogFile(), "podSubnet", c.Config().PodSubnet)
	}
	rt, err := cri.New(ctx, socket)
	if err != nil {
		out.Close()
		return nil, err
	}
	out.Runtime = rt
	out.closers = append(out.closers, func() { rt.Close() })
	if opts.ContainerdSocket == "" {
		if err := ensurePause(ctx, rt, socket, opts); err != nil {
			out.Close()
			return nil, err
		}
	}
	return out, nil
}

// ensurePause imports Drover's pause image unless it is there already.
func ensurePause(ctx context.Context, rt *cri.Runtime, socket string, opts Options) error {
	if _, err := rt.ImageStatus(ctx, image.PauseImage); err == nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "drover-pause-")
	if err != nil {
		return fmt.Errorf("noderuntime: %w", err)
	}
	defer os.RemoveAll(dir)
	var tar string
	if opts.PauseBinary != "" {
		if static, _ := image.IsStatic(opts.PauseBinary); static {
			tar, err = image.BuildStatic(opts.PauseBinary, image.PauseImage, []string{"pause"}, dir)
			if err != nil {
				return err
			}
		}
	}
	if tar == "" {
		if tar, err = image.BuildPackage(ctx, image.PausePackage, image.PauseImage, dir); err != nil {
			return fmt.Errorf("noderuntime: no pause image: the drover binary is not static (build it with CGO_ENABLED=0) and %w", err)
		}
	}
	if err := image.Import(ctx, socket, tar); err != nil {
		return err
	}
	opts.Logger.Info("imported the pause image", "image", image.PauseImage)
	return nil
}
