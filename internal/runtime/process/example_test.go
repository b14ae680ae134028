package process_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/drover/drover/internal/runtime"
	"github.com/drover/drover/internal/runtime/process"
)

// A container is a command run on the host; its output goes to its log.
func Example() {
	dir, err := os.MkdirTemp("", "process-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	rt, err := process.New(process.Config{StateDir: filepath.Join(dir, "state"), NoCgroups: true})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	sbCfg := runtime.PodSandboxConfig{
		Metadata:     runtime.PodSandboxMetadata{Name: "hello", Namespace: "default", UID: "u1"},
		LogDirectory: filepath.Join(dir, "logs"),
	}
	sb, err := rt.RunPodSandbox(ctx, sbCfg)
	if err != nil {
		panic(err)
	}
	defer rt.RemovePodSandbox(ctx, sb)
	id, err := rt.CreateContainer(ctx, sb, sbCfg, runtime.ContainerConfig{
		Name:    "greeter",
		Command: []string{"sh", "-c"},
		Args:    []string{`echo "hello from $HOSTNAME at $POD_IP"`},
		LogPath: runtime.ContainerLogPath("greeter", 0),
	})
	if err != nil {
		panic(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		panic(err)
	}
	logs, err := rt.ContainerLogs(ctx, id, runtime.LogOptions{Follow: true}) // ends when the container has
	if err != nil {
		panic(err)
	}
	io.Copy(os.Stdout, logs)
	logs.Close()
	st, err := rt.ContainerStatus(ctx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.State, st.ExitCode, st.Reason)
	// Output:
	// hello from hello at 127.0.2.1
	// Exited 0 Completed
}
