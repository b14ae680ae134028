// Package pauseproc is the pause process of a pod sandbox: it holds the
// pod's namespaces open by sleeping until SIGTERM or SIGINT and, as PID 1
// of the pod's PID namespace, reaps orphaned children so no zombies pile up.
//
// The pause command (internal/image/pause) is just Run; a static drover
// binary can offer the same as a hidden subcommand and serve as its own
// pause image (see image.BuildStatic).
package pauseproc

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// ReadyLine is what Run writes once SIGTERM and SIGINT are handled.
const ReadyLine = "pause: waiting for SIGTERM or SIGINT"

// Run blocks until SIGTERM or SIGINT arrives, reaping exited children
// meanwhile, then reports the signal on w and returns. The caller exits 0.
// Once its handlers are installed it says so on w, so a supervisor (or a
// test) knows from then on a SIGTERM means a clean exit.
func Run(w io.Writer) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	fmt.Fprintln(w, ReadyLine)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(w, "pause: %v, exiting\n", sig)
			return
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
