package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	_ "unsafe" // for go:linkname

	"github.com/spf13/cobra"
	componentversion "k8s.io/component-base/version"
)

// Build information, settable at link time:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.gitCommit=$(git rev-parse HEAD)" ./cmd/drover
var (
	version   = "v0.0.0-dev"
	gitCommit = ""
	buildDate = ""
)

// What the k8s.io libraries report when the build did not set their version.
const (
	unsetKubeVersion = "v0.0.0-master+$Format:%H$"
	unsetKubeCommit  = "$Format:%H$"
)

// The Kubernetes libraries keep their version in unexported variables meant
// to be set with -ldflags -X. When the build did not set them (go run, go
// test, plain go build), set them at start-up from the module versions, so
// `drover kubectl version` and client User-Agents name a real Kubernetes
// version instead of v0.0.0-master.

//go:linkname clientGoGitVersion k8s.io/client-go/pkg/version.gitVersion
var clientGoGitVersion string

//go:linkname clientGoGitMajor k8s.io/client-go/pkg/version.gitMajor
var clientGoGitMajor string

//go:linkname clientGoGitMinor k8s.io/client-go/pkg/version.gitMinor
var clientGoGitMinor string

//go:linkname clientGoGitCommit k8s.io/client-go/pkg/version.gitCommit
var clientGoGitCommit string

//go:linkname componentGitVersion k8s.io/component-base/version.gitVersion
var componentGitVersion string

//go:linkname componentGitCommit k8s.io/component-base/version.gitCommit
var componentGitCommit string

//go:linkname componentGitMajor k8s.io/component-base/version.gitMajor
var componentGitMajor string

//go:linkname componentGitMinor k8s.io/component-base/version.gitMinor
var componentGitMinor string

func init() {
	if gitCommit == "" {
		gitCommit = vcsRevision()
	}
	v := kubernetesVersion()
	major, minor := majorMinor(v)
	if clientGoGitVersion == unsetKubeVersion {
		clientGoGitVersion, clientGoGitMajor, clientGoGitMinor = v, major, minor
	}
	if clientGoGitCommit == unsetKubeCommit {
		clientGoGitCommit = gitCommit
	}
	if componentGitCommit == unsetKubeCommit {
		componentGitCommit = gitCommit
	}
	if componentGitVersion == unsetKubeVersion {
		componentGitVersion, componentGitMajor, componentGitMinor = v, major, minor
		// component-base caches the version at init, before this package's init.
		if err := componentversion.SetDynamicVersion(v); err != nil {
			panic(fmt.Sprintf("set kubernetes version %s: %v", v, err))
		}
	}
}

// kubernetesVersion is the Kubernetes version Drover's API and clients
// follow: that of the k8s.io/client-go module it is built with (v0.37.2 is
// Kubernetes v1.37.2).
func kubernetesVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "k8s.io/client-go" {
				return kubeFromLibraryVersion(m.Version)
			}
		}
	}
	return "v1.37.2" // the version go.mod pins; for binaries without build info
}

// vcsRevision is the commit the binary was built from, if Go recorded it.
func vcsRevision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// kubeFromLibraryVersion maps a k8s.io library version (v0.X.Y) to the
// Kubernetes release it belongs to (v1.X.Y).
func kubeFromLibraryVersion(v string) string {
	if rest, ok := strings.CutPrefix(v, "v0."); ok {
		return "v1." + rest
	}
	return v
}

// majorMinor splits v1.37.2 into "1" and "37".
func majorMinor(v string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Drover's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Drover %s\n", version)
			if gitCommit != "" {
				fmt.Fprintf(out, "Git commit: %s\n", gitCommit)
			}
			if buildDate != "" {
				fmt.Fprintf(out, "Built: %s\n", buildDate)
			}
			fmt.Fprintf(out, "Kubernetes API: %s\n", kubernetesVersion())
			fmt.Fprintf(out, "Go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
