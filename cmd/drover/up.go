package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/agent/noderuntime"
	"github.com/drover/drover/internal/controlplane"
	"github.com/drover/drover/internal/kubeclient"
)

func newUpCommand() *cobra.Command {
	var (
		server     = controlplane.Config{}
		node       agent.Config
		rtName     string
		socket     string
		podSubnet  string
		services   nodeServiceFlags
		heapTarget resource.Quantity
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole cluster on this machine: the control plane and one node",
		Long: `Run everything on one machine: the control plane (API server, controllers,
embedded etcd) and a node agent, in one process. The admin kubeconfig is
written to DATA_DIR/admin.kubeconfig, so "drover kubectl" works at once.

The node's runtime is cri (containerd) where containerd is installed, else
process (containers as host processes); --runtime chooses. Stopping (Ctrl-C)
leaves the node's containers running; the next "drover up" adopts them.

The node proxies Services (ClusterIP and NodePort; --proxy-mode) and, with
Drover's own containerd, serves the cluster DNS that pods resolve
<service>.<namespace>.svc.cluster.local with (--cluster-dns).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTimingFlags(server); err != nil {
				return err
			}
			log := slog.Default()
			defer startHeapTarget(heapTarget).Stop()
			out := cmd.OutOrStdout()
			why := "chosen with --runtime"
			if rtName == "" {
				rtName, why = noderuntime.Default(socket)
			}
			node.DataDir = filepath.Join(server.DataDir, "agent")
			if err := os.MkdirAll(node.DataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			exe, _ := os.Executable()
			rt, err := noderuntime.Open(cmd.Context(), noderuntime.Options{
				Name: rtName, DataDir: node.DataDir, ContainerdSocket: socket, PodSubnet: podSubnet,
				NodeIP: node.NodeIP, PauseBinary: exe, Logger: log.With("component", "runtime"),
			})
			if err != nil {
				return err
			}
			defer rt.Close()
			svc, err := services.plan(cmd.Context(), rtName, podSubnet, socket, node.NodeName, node.NodeIP)
			if err != nil {
				return err
			}
			svc.configure(&node)
			fmt.Fprintf(out, "Node %s: runtime %s (%s); %s\n", node.NodeName, rtName, why, svc.describe())

			server.Logger = log
			server.Version = kubernetesVersion()
			var kubeconfig string
			server.Ready = func(info controlplane.Info) {
				kubeconfig = info.KubeconfigPath
				fmt.Fprintf(out, "Drover API server is serving at %s\n", info.URL)
				fmt.Fprintf(out, "Admin kubeconfig: %s\n", info.KubeconfigPath)
			}
			node.Runtime = rt.Runtime
			node.KubeletVersion = kubernetesVersion()
			node.Ready = func(i agent.Info) {
				fmt.Fprintf(out, "Node %s is up (InternalIP %s, %s)\n", node.NodeName, i.NodeIP, i.Runtime)
				fmt.Fprintf(out, "Ready. Try: drover kubectl --kubeconfig %s get nodes\n", kubeconfig)
			}
			server.Components = []controlplane.Component{{
				Name: "agent",
				Run: func(ctx context.Context, c controlplane.Clients, log *slog.Logger) error {
					cfg := node
					cfg.Logger = log
					restCfg, err := upAgentConfig(ctx, c, server.DataDir, node.NodeName, log)
					if err != nil {
						return err
					}
					client, err := kubernetes.NewForConfig(kubeclient.Protobuf(restCfg))
					if err != nil {
						return err
					}
					cfg.Client = client
					return svc.run(ctx, client, log, func(ctx context.Context) error { return agent.Run(ctx, cfg) })
				},
			}}
			return controlplane.Run(cmd.Context(), server)
		},
	}
	host, _ := os.Hostname()
	f := cmd.Flags()
	f.StringVar(&server.DataDir, "data-dir", defaultDataDir(), "directory holding all state (etcd, certificates, kubeconfig, the node's pods)")
	f.StringVar(&server.Listen, "listen", controlplane.DefaultListen, "HOST:PORT the API server listens on")
	f.StringVar(&server.AdvertiseAddress, "advertise-address", "", "host or IP clients use to reach the API server (default 127.0.0.1, or the --listen host)")
	f.StringVar(&node.NodeName, "node-name", host, "the node's name")
	f.StringVar(&rtName, "runtime", "", "container runtime: cri, process or sim (default: cri where containerd is installed, else process)")
	f.StringVar(&socket, "containerd-socket", "", "use the containerd listening on this socket instead of starting one")
	f.StringVar(&podSubnet, "pod-subnet", "", "CIDR pod IPs come from on the node (default per runtime)")
	f.StringVar(&node.ListenAddr, "agent-listen", agent.DefaultListenAddr, "HOST:PORT of the node agent's HTTP endpoint (logs, stats)")
	f.StringVar(&node.NodeIP, "node-ip", "", "the node's InternalIP (default: the address of the default route's interface)")
	services.add(f)
	addTimingFlags(f, &server)
	addEventTTLFlag(f, &server)
	addHeapTargetFlag(f, &heapTarget)
	return cmd
}

// upAgentConfig is the in-process agent's client configuration: it joins
// like any agent, with the node token in the data dir, for a node
// certificate (never the admin's credentials), and throttles as a
// separate agent does.
func upAgentConfig(ctx context.Context, c controlplane.Clients, dataDir, nodeName string, log *slog.Logger) (*rest.Config, error) {
	token, err := os.ReadFile(filepath.Join(dataDir, controlplane.NodeTokenFile))
	if err != nil {
		return nil, fmt.Errorf("node token: %w", err)
	}
	j := controlplane.NodeJoin{
		Server: c.URL, Token: strings.TrimSpace(string(token)), NodeName: nodeName,
		Dir: filepath.Join(dataDir, "agent", agentPKIDir), Logger: log,
	}
	cfg, err := controlplane.NodeCredentials(ctx, j)
	if err != nil {
		return nil, err
	}
	go controlplane.KeepNodeCredentials(ctx, j, nodeCertCheckInterval)
	cfg.UserAgent = "drover-agent"
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}
