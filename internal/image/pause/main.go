// Command pause is the process that holds a pod sandbox's namespaces open.
// It sleeps until SIGTERM or SIGINT, then exits 0, reaping orphaned
// children meanwhile (see package pauseproc).
//
// It is built statically (CGO_ENABLED=0) into Drover's pause image,
// image.PauseImage.
package main

import (
	"os"

	"github.com/drover/drover/internal/image/pauseproc"
)

func main() {
	pauseproc.Run(os.Stderr)
}
