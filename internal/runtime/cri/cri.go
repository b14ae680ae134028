// Package cri implements the node agent's runtime interface over the
// Kubernetes Container Runtime Interface (CRI v1), talking gRPC to a runtime
// such as containerd on a unix socket.
//
// The Runtime keeps no state of its own: everything it reports comes from
// the CRI runtime, so a new Runtime (after an agent restart) sees the same
// sandboxes and containers as the old one.
package cri

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/drover/drover/internal/runtime"
)

// Name is the runtime's name, the agent's --runtime value.
const Name = "cri"

// maxMsgSize bounds gRPC messages, as the kubelet does (16 MiB): lists of
// many containers are large.
const maxMsgSize = 16 << 20

// Runtime is a CRI client. It is safe for concurrent use.
type Runtime struct {
	conn   *grpc.ClientConn
	rt     runtimeapi.RuntimeServiceClient
	images runtimeapi.ImageServiceClient
}

// The abilities Runtime has.
var (
	_ runtime.Runtime        = (*Runtime)(nil)
	_ runtime.ImageService   = (*Runtime)(nil)
	_ runtime.Execer         = (*Runtime)(nil)
	_ runtime.StatusReporter = (*Runtime)(nil)
)

// New connects to the CRI runtime listening on the unix socket socketPath
// and checks that it answers Version (within ctx). Close the Runtime when
// done.
func New(ctx context.Context, socketPath string) (*Runtime, error) {
	conn, err := grpc.NewClient("unix://"+socketPath,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("cri: connect %s: %w", socketPath, err)
	}
	r := &Runtime{
		conn:   conn,
		rt:     runtimeapi.NewRuntimeServiceClient(conn),
		images: runtimeapi.NewImageServiceClient(conn),
	}
	if _, err := r.Version(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cri: %s does not answer: %w", socketPath, err)
	}
	return r, nil
}

// Close closes the connection. Containers keep running.
func (r *Runtime) Close() error {
	return r.conn.Close()
}

// Name returns "cri".
func (r *Runtime) Name() string { return Name }

// wrap adds context to a CRI error and makes gRPC NotFound errors match
// runtime.ErrNotFound.
func wrap(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("cri: %s: %w: %w", msg, runtime.ErrNotFound, err)
	}
	return fmt.Errorf("cri: %s: %w", msg, err)
}

// ignoreNotFound makes stop and remove calls idempotent.
func ignoreNotFound(err error) error {
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

// Version reports the CRI runtime's name and version.
func (r *Runtime) Version(ctx context.Context) (runtime.VersionInfo, error) {
	resp, err := r.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return runtime.VersionInfo{}, wrap(err, "version")
	}
	return runtime.VersionInfo{
		RuntimeName:    resp.GetRuntimeName(),
		RuntimeVersion: resp.GetRuntimeVersion(),
		APIVersion:     resp.GetRuntimeApiVersion(),
	}, nil
}

// Status reports the CRI runtime's RuntimeReady and NetworkReady conditions.
func (r *Runtime) Status(ctx context.Context) (runtime.RuntimeStatus, error) {
	resp, err := r.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return runtime.RuntimeStatus{}, wrap(err, "status")
	}
	var out runtime.RuntimeStatus
	for _, c := range resp.GetStatus().GetConditions() {
		switch c.GetType() {
		case runtimeapi.RuntimeReady:
			out.RuntimeReady = c.GetStatus()
		case runtimeapi.NetworkReady:
			out.NetworkReady = c.GetStatus()
		default:
			continue
		}
		if !c.GetStatus() {
			if out.Message != "" {
				out.Message += "; "
			}
			out.Message += fmt.Sprintf("%s: %s %s", c.GetType(), c.GetReason(), c.GetMessage())
		}
	}
	return out, nil
}

// RunPodSandbox creates and starts a sandbox with its network.
func (r *Runtime) RunPodSandbox(ctx context.Context, config runtime.PodSandboxConfig) (runtime.SandboxID, error) {
	resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: toSandboxConfig(config)})
	if err != nil {
		m := config.Metadata
		return "", wrap(err, "run sandbox %s/%s attempt %d", m.Namespace, m.Name, m.Attempt)
	}
	return runtime.SandboxID(resp.GetPodSandboxId()), nil
}

// StopPodSandbox stops a sandbox and its containers.
func (r *Runtime) StopPodSandbox(ctx context.Context, id runtime.SandboxID) error {
	_, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: string(id)})
	if err := ignoreNotFound(err); err != nil {
		return wrap(err, "stop sandbox %s", id)
	}
	return nil
}

// RemovePodSandbox removes a sandbox and its containers.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id runtime.SandboxID) error {
	_, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: string(id)})
	if err := ignoreNotFound(err); err != nil {
		return wrap(err, "remove sandbox %s", id)
	}
	return nil
}

// PodSandboxStatus reports a sandbox and its IP.
func (r *Runtime) PodSandboxStatus(ctx context.Context, id runtime.SandboxID) (runtime.PodSandboxStatus, error) {
	resp, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: string(id)})
	if err != nil {
		return runtime.PodSandboxStatus{}, wrap(err, "sandbox %s status", id)
	}
	return fromSandboxStatus(resp.GetStatus()), nil
}

// ListPodSandboxes lists sandboxes matching filter.
func (r *Runtime) ListPodSandboxes(ctx context.Context, filter runtime.PodSandboxFilter) ([]runtime.PodSandbox, error) {
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: toSandboxFilter(filter)})
	if err != nil {
		return nil, wrap(err, "list sandboxes")
	}
	out := make([]runtime.PodSandbox, 0, len(resp.GetItems()))
	for _, s := range resp.GetItems() {
		out = append(out, fromSandbox(s))
	}
	return out, nil
}

// CreateContainer creates a container in a sandbox.
func (r *Runtime) CreateContainer(ctx context.Context, sandbox runtime.SandboxID, sandboxConfig runtime.PodSandboxConfig, config runtime.ContainerConfig) (runtime.ContainerID, error) {
	resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  string(sandbox),
		Config:        toContainerConfig(sandboxConfig, config),
		SandboxConfig: toSandboxConfig(sandboxConfig),
	})
	if err != nil {
		return "", wrap(err, "create container %s attempt %d in sandbox %s", config.Name, config.Attempt, sandbox)
	}
	return runtime.ContainerID(resp.GetContainerId()), nil
}

// StartContainer starts a created container.
func (r *Runtime) StartContainer(ctx context.Context, id runtime.ContainerID) error {
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: string(id)}); err != nil {
		return wrap(err, "start container %s", id)
	}
	return nil
}

// StopContainer stops a container, killing it after timeout.
func (r *Runtime) StopContainer(ctx context.Context, id runtime.ContainerID, timeout time.Duration) error {
	_, err := r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: string(id), Timeout: seconds(timeout)})
	if err := ignoreNotFound(err); err != nil {
		return wrap(err, "stop container %s", id)
	}
	return nil
}

// RemoveContainer removes a container.
func (r *Runtime) RemoveContainer(ctx context.Context, id runtime.ContainerID) error {
	_, err := r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: string(id)})
	if err := ignoreNotFound(err); err != nil {
		return wrap(err, "remove container %s", id)
	}
	return nil
}

// ListContainers lists containers matching filter.
func (r *Runtime) ListContainers(ctx context.Context, filter runtime.ContainerFilter) ([]runtime.Container, error) {
	resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: toContainerFilter(filter)})
	if err != nil {
		return nil, wrap(err, "list containers")
	}
	out := make([]runtime.Container, 0, len(resp.GetContainers()))
	for _, c := range resp.GetContainers() {
		out = append(out, fromContainer(c))
	}
	return out, nil
}

// ContainerStatus reports a container. CRI's status omits the sandbox, so
// it is looked up with a list call.
func (r *Runtime) ContainerStatus(ctx context.Context, id runtime.ContainerID) (runtime.ContainerStatus, error) {
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: string(id)})
	if err != nil {
		return runtime.ContainerStatus{}, wrap(err, "container %s status", id)
	}
	out := fromContainerStatus(resp.GetStatus())
	list, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: string(id)}})
	if err != nil {
		return runtime.ContainerStatus{}, wrap(err, "container %s sandbox", id)
	}
	for _, c := range list.GetContainers() {
		out.SandboxID = runtime.SandboxID(c.GetPodSandboxId())
	}
	return out, nil
}

// ContainerStats samples a container's CPU and memory use.
func (r *Runtime) ContainerStats(ctx context.Context, id runtime.ContainerID) (runtime.ContainerStats, error) {
	resp, err := r.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: string(id)})
	if err != nil {
		return runtime.ContainerStats{}, wrap(err, "container %s stats", id)
	}
	out := fromContainerStats(resp.GetStats())
	out.ID = id
	return out, nil
}

// ContainerLogs reads the container's log file, which the CRI runtime writes
// on this machine at the path its status names.
func (r *Runtime) ContainerLogs(ctx context.Context, id runtime.ContainerID, opts runtime.LogOptions) (io.ReadCloser, error) {
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: string(id)})
	if err != nil {
		return nil, wrap(err, "container %s logs", id)
	}
	path := resp.GetStatus().GetLogPath()
	if path == "" {
		return nil, fmt.Errorf("cri: container %s logs: it was created without a log path", id)
	}
	exited := func(ctx context.Context) bool {
		resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: string(id)})
		if status.Code(err) == codes.NotFound {
			return true
		}
		return err == nil && resp.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_EXITED
	}
	rc, err := runtime.OpenLog(ctx, path, opts, exited)
	if err != nil {
		return nil, fmt.Errorf("cri: container %s logs: %w", id, err)
	}
	return rc, nil
}

// ExecSync runs a command in a running container.
func (r *Runtime) ExecSync(ctx context.Context, id runtime.ContainerID, cmd []string, timeout time.Duration) (runtime.ExecResult, error) {
	resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: string(id), Cmd: cmd, Timeout: seconds(timeout)})
	if err != nil {
		return runtime.ExecResult{}, wrap(err, "exec in container %s", id)
	}
	return runtime.ExecResult{Stdout: resp.GetStdout(), Stderr: resp.GetStderr(), ExitCode: resp.GetExitCode()}, nil
}

// ImageStatus reports a local image.
func (r *Runtime) ImageStatus(ctx context.Context, ref string) (runtime.Image, error) {
	resp, err := r.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return runtime.Image{}, wrap(err, "image %s status", ref)
	}
	if resp.GetImage() == nil {
		return runtime.Image{}, fmt.Errorf("cri: image %s: %w", ref, runtime.ErrNotFound)
	}
	return fromImage(resp.GetImage()), nil
}

// PullImage pulls an image from its registry.
func (r *Runtime) PullImage(ctx context.Context, ref string) (string, error) {
	resp, err := r.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return "", wrap(err, "pull image %s", ref)
	}
	return resp.GetImageRef(), nil
}

// ListImages lists local images.
func (r *Runtime) ListImages(ctx context.Context) ([]runtime.Image, error) {
	resp, err := r.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, wrap(err, "list images")
	}
	out := make([]runtime.Image, 0, len(resp.GetImages()))
	for _, i := range resp.GetImages() {
		out = append(out, fromImage(i))
	}
	return out, nil
}
