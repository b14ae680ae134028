// Package process implements the node agent's runtime interface with host
// processes: each container is a process (its command and args; the image
// is not used) for machines with no container runtime.
//
// # Sandboxes
//
// A sandbox is a directory under Config.StateDir and a pod IP: a loopback
// address from Config.PodSubnet (127.0.0.0/16 by default, skipping the
// 127.0.0.0/23 the host uses and addresses ending in .0 or .255), taken in
// turn from a counter persisted in the state directory. Linux routes all of
// 127.0.0.0/8 to lo, so processes bind it with no configuration. Containers
// of a pod share its IP (exported as POD_IP) and reach each other on it;
// pods are told apart by their IPs, so apps should bind POD_IP rather than
// 0.0.0.0. Host-network sandboxes have no IP of their own (the status shows
// none, as with CRI) and their containers get Config.NodeIP as POD_IP.
// There are no network namespaces: every process also sees the host's
// other addresses, and DNS settings are not applied. TCP hostPort mappings
// are published by a port forwarder per sandbox (the executable run again
// with DROVER_PROCESS_PORTS set, in a session of its own like a shim, so
// it outlives the agent): it binds every host port before RunPodSandbox
// returns (which fails if one is taken) and relays each connection to the
// pod IP and container port, until StopPodSandbox kills it.
//
// # Containers and their shims
//
// StartContainer does not start the process itself: it starts a shim, the
// agent's own executable run again with DROVER_PROCESS_SHIM set to the
// container's state directory (any binary importing this package turns into
// the shim then, in an init function, before main runs). The shim is in a
// session of its own, so it outlives the agent; it
//
//   - joins the container's cgroup, starts the process in a new process
//     group (so stop signals reach its children) and returns to the
//     runtime's cgroup (shims are the runtime's overhead, as containerd's
//     are); it is a child subreaper, so it reaps what the process leaves
//     behind;
//   - writes started.json (pids and /proc start times of the process and of
//     itself) and tells the runtime on a pipe that the process runs;
//   - copies the process's stdout and stderr into the container's log file
//     in the CRI log format ([runtime.LogWriter]), at the path the
//     ContainerConfig asks for under the sandbox's log directory, so the
//     log keeps growing while the agent is down and ContainerLogs (with
//     Follow) works as with CRI;
//   - waits for the process; when it ends, kills what is left of its
//     process group (as the end of a container's init process does), and
//     writes exit.json: exit code (128+signal when killed), the signal,
//     whether the cgroup's OOM killer did it, and the time.
//
// The runtime's own records are JSON files beside those (sandbox.json,
// container.json), written atomically. A new Runtime over the same state
// directory loads them; a container counts as running while its shim or
// its process is alive (the pid exists with the start time recorded, so a
// reused pid is not mistaken for it) and exited once exit.json exists. If
// both are gone without an exit.json (the machine rebooted, someone killed
// the shim), it is exited with reason Unknown and exit code 137, as the
// kubelet reports a container it cannot find.
//
// StopContainer sends SIGTERM to the process group, waits up to the
// timeout and sends SIGKILL. Exit reasons are Completed (0), Error, and
// OOMKilled; a process that cannot start (no such executable, no working
// directory) makes StartContainer fail and leaves the container exited
// with reason StartError and code 128.
//
// # Cgroups and stats
//
// As root with cgroup v1 cpu, cpuacct and memory hierarchies, each pod gets
// a cgroup under Config.CgroupRoot and each container one below it, with
// the container's CPU shares, CFS quota and memory limit. ContainerStats
// reads cpuacct.usage and the memory working set (usage minus inactive
// file pages) from it. Otherwise (logged once) containers run without
// limits and stats sum /proc/<pid>/stat and /proc/<pid>/status over the
// container's process group.
//
// # Mounts
//
// As root, a container with mounts (volumes) starts through an init stage,
// the executable run once more with DROVER_PROCESS_INIT set, in a mount
// namespace of its own: it makes all mounts private (nothing reaches the
// host), bind-mounts each host path at its container path (creating a
// missing mount point, which the host then sees as an empty directory or
// file), and execs the command, which keeps its pid. ExecSync makes the
// same bind mounts for the command it runs. Without root, mounts are not
// made (logged once) and containers see the host's files.
//
// A cgroup that cannot be removed yet (a process in it not yet reaped) is
// listed in the state directory and removed by a later call.
//
// ExecSync runs the command on the host with the container's environment,
// working directory and cgroup.
//
// # Several agents on one host
//
// Each needs its own StateDir, PodSubnet (e.g. 127.1.0.0/16, 127.2.0.0/16)
// and, with cgroups, CgroupRoot. Under systemd, run the agent with
// KillMode=process so that restarting it does not kill its shims and
// containers (systemd tracks the service's processes in its own cgroup,
// which the runtime does not change).
package process
