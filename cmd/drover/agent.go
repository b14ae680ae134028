package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/agent/noderuntime"
	"github.com/drover/drover/internal/image/pauseproc"
	"github.com/drover/drover/internal/kubeclient"
)

func newAgentCommand() *cobra.Command {
	var (
		cfg        agent.Config
		rtName     string
		kubeconfig string
		server     string
		token      string
		socket     string
		podSubnet  string
		fleet      simFleetFlags
		services   nodeServiceFlags
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node: register it, heartbeat, and run the pods bound to it",
		Long: `Run a node agent (Drover's kubelet): it registers the node with the API server,
keeps its lease fresh, runs the pods bound to it with a container runtime and
reports their status. It serves container logs, usage and its metrics on --listen.

--runtime cri uses containerd (an existing one with --containerd-socket, or
Drover's own, started in DATA_DIR/containerd); process runs containers as host
processes; sim simulates them. The default is cri where containerd is
installed, else process.

With --server URL --token NODE_TOKEN (printed by "drover server", kept in its
DATA_DIR/node-token) the agent joins: it trusts only the CA the token's hash
names, and gets a client certificate for the identity system:node:NAME (group
system:nodes), kept in DATA_DIR/pki and reused on restart (--token may then be
left out) until a third of its life is left. --server may name several
servers, comma-separated; the agent also learns every server of an HA
cluster from the cluster (kept in DATA_DIR/servers) and sends its requests
to a live one, switching when the one it uses fails.

Stopping the agent (SIGTERM) leaves containers running; a restarted agent
adopts them.

The node proxies Services (--proxy-mode: iptables rules as root, else a
userspace TCP proxy on the node ports) and, with Drover's own containerd,
serves the cluster DNS on the pods' gateway address, port 53, which pods get
as their nameserver. A terminating pod leaves every Service's endpoints
before it gets its preStop hook and SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.Default()
			// It holds the node's key and the pods' secret volumes.
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			restCfg, err := agentRestConfig(cmd.Context(), kubeconfig, server, token, cfg.NodeName, cfg.DataDir, log)
			if err != nil {
				return err
			}
			restCfg.UserAgent = "drover-agent"
			client, err := kubernetes.NewForConfig(kubeclient.Protobuf(restCfg))
			if err != nil {
				return fmt.Errorf("client: %w", err)
			}
			if fleet.cfg.Nodes > 0 {
				return fleet.run(cmd, rtName, restCfg, cfg)
			}
			why := "chosen with --runtime"
			if rtName == "" {
				rtName, why = noderuntime.Default(socket)
			}
			svc, err := services.plan(cmd.Context(), rtName, podSubnet, socket, cfg.NodeName, cfg.NodeIP)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Drover agent %s: runtime %s (%s); %s\n", cfg.NodeName, rtName, why, svc.describe())
			exe, _ := os.Executable()
			rt, err := noderuntime.Open(cmd.Context(), noderuntime.Options{
				Name: rtName, DataDir: cfg.DataDir, ContainerdSocket: socket, PodSubnet: podSubnet, NodeIP: cfg.NodeIP, PauseBinary: exe, Logger: log,
			})
			if err != nil {
				return err
			}
			defer rt.Close()
			cfg.Client = client
			cfg.Runtime = rt.Runtime
			cfg.Logger = log
			cfg.KubeletVersion = kubernetesVersion()
			out := cmd.OutOrStdout()
			cfg.Ready = func(i agent.Info) {
				fmt.Fprintf(out, "Node %s registered (InternalIP %s, runtime %s); agent endpoint http://%s\n", cfg.NodeName, i.NodeIP, i.Runtime, i.Addr)
			}
			svc.configure(&cfg)
			return svc.run(cmd.Context(), client, log, func(ctx context.Context) error { return agent.Run(ctx, cfg) })
		},
	}
	host, _ := os.Hostname()
	f := cmd.Flags()
	f.StringVar(&cfg.NodeName, "node-name", host, "the node's name")
	f.StringVar(&rtName, "runtime", "", "container runtime: cri, process or sim (default: cri where containerd is installed, else process)")
	f.StringVar(&cfg.DataDir, "data-dir", filepath.Join(defaultDataDir(), "agent"), "directory for the agent's state: pod volumes, logs, containerd")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file to reach the API server (e.g. the admin kubeconfig)")
	f.StringVar(&server, "server", "", "API server URL, or several comma-separated (with --token); the agent also learns every server from the cluster and fails over among them")
	f.StringVar(&token, "token", "", "node join token printed by the server (default $DROVER_NODE_TOKEN); optional once DATA_DIR/pki holds a node certificate")
	f.StringVar(&socket, "containerd-socket", "", "use the containerd listening on this socket instead of starting one")
	f.StringVar(&podSubnet, "pod-subnet", "", "CIDR pod IPs come from on this node (default 10.244.0.0/24 for containerd, 10.88.0.0/16 for sim, a 127.0.0.0/8 range for process)")
	f.StringVar(&cfg.ListenAddr, "listen", agent.DefaultListenAddr, "HOST:PORT of the agent's HTTP endpoint (logs, stats)")
	f.StringVar(&cfg.NodeIP, "node-ip", "", "the node's InternalIP (default: the address of the default route's interface)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", agent.DefaultHeartbeatInterval, "how often the node's lease is renewed")
	f.DurationVar(&cfg.BackoffBase, "crashloop-backoff-base", agent.DefaultBackoffBase, "first CrashLoopBackOff delay")
	f.DurationVar(&cfg.BackoffCap, "crashloop-backoff-cap", agent.DefaultBackoffCap, "longest CrashLoopBackOff delay")
	fleet.add(f)
	services.add(f)
	return cmd
}

// agentPKIDir holds the agent's node credentials inside its data dir.
const agentPKIDir = "pki"

// nodeCertCheckInterval is how often a running agent checks whether its
// certificate (valid for a year) is due for renewal.
const nodeCertCheckInterval = time.Hour

// agentRestConfig builds the client configuration from --kubeconfig, or
// joins --server with the node token for a node certificate.
func agentRestConfig(ctx context.Context, kubeconfig, server, token, nodeName, dataDir string, log *slog.Logger) (*rest.Config, error) {
	if token == "" {
		token = os.Getenv("DROVER_NODE_TOKEN")
	}
	switch {
	case kubeconfig != "" && server != "":
		return nil, errors.New("give either --kubeconfig or --server, not both")
	case kubeconfig != "":
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		return agentKubeconfigFailover(ctx, c, dataDir, log)
	case server != "":
		return agentFailoverConfig(ctx, server, token, nodeName, dataDir, log)
	}
	return nil, errors.New("give --kubeconfig FILE, or --server URL and --token TOKEN")
}

// newPauseCommand is the pause process of a pod sandbox, so that a static
// drover binary can be its own pause image.
func newPauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "pause",
		Short:  "Hold a pod sandbox's namespaces open until SIGTERM (the pause image's process)",
		Hidden: true,
		Args:   cobra.NoArgs,
		// No logger setup: it runs as PID 1 in a container image.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		Run: func(*cobra.Command, []string) {
			pauseproc.Run(os.Stderr)
		},
	}
}
