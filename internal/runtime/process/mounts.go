package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/drover/drover/internal/runtime"
)

// initEnv is the environment variable that makes a binary importing this
// package act as a container's init stage: its value is the path of a
// shimSpec. The init stage runs in a new mount namespace, bind-mounts the
// spec's mounts, changes to its working directory and execs its command
// (so it becomes the container's process, with the same pid).
const initEnv = "DROVER_PROCESS_INIT"

// runInit is the init stage; it returns only on failure, with the exit
// status (the error goes to stderr, that is the container's log).
func runInit(specPath string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "drover process runtime: %v\n", err)
		return startErrorExitCode
	}
	var spec shimSpec
	if err := readJSON(specPath, &spec); err != nil {
		return fail(err)
	}
	if err := mountAll(spec.Mounts); err != nil {
		return fail(err)
	}
	if err := os.Chdir(spec.WorkingDir); err != nil {
		return fail(fmt.Errorf("working directory: %w", err))
	}
	if len(spec.Argv) == 0 {
		return fail(errors.New("no command"))
	}
	err := syscall.Exec(spec.Argv[0], spec.Argv, spec.Env)
	return fail(fmt.Errorf("exec %s: %w", spec.Argv[0], err))
}

// mountAll makes the mount namespace private (so nothing mounted here
// reaches the host) and bind-mounts each mount's host path at its
// container path, creating the mount point (a directory, or an empty file
// for a file) when it does not exist.
func mountAll(mounts []runtime.Mount) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, m := range mounts {
		if !filepath.IsAbs(m.ContainerPath) {
			return fmt.Errorf("mount %s: container path must be absolute", m.ContainerPath)
		}
		fi, err := os.Stat(m.HostPath)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.ContainerPath, err)
		}
		if err := mountPoint(m.ContainerPath, fi.IsDir()); err != nil {
			return fmt.Errorf("mount %s: %w", m.ContainerPath, err)
		}
		if err := syscall.Mount(m.HostPath, m.ContainerPath, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("mount %s at %s: %w", m.HostPath, m.ContainerPath, err)
		}
		if m.ReadOnly {
			if err := syscall.Mount("", m.ContainerPath, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_REC, ""); err != nil {
				return fmt.Errorf("mount %s read-only: %w", m.ContainerPath, err)
			}
		}
	}
	return nil
}

// mountPoint makes sure path exists as a directory (dir) or a file.
func mountPoint(path string, dir bool) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if dir {
		return os.MkdirAll(path, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// canMount reports whether this process may make mount namespaces and bind
// mounts (it has CAP_SYS_ADMIN; in practice, it is root).
func canMount() bool {
	return os.Geteuid() == 0
}
