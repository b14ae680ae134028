package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drover/drover/internal/controlplane"
	"github.com/drover/drover/internal/controlplane/failover"
)

// defaultDataDir is ~/.drover, where commands keep and look for state by default.
func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".drover"
	}
	return filepath.Join(home, ".drover")
}

func newServerCommand() *cobra.Command {
	cfg := controlplane.Config{}
	var heapTarget resource.Quantity
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API server, controllers and an embedded etcd member",
		Long: `Run the control plane: the Kubernetes API over HTTPS, the controllers, and an
embedded etcd member (or a client of external etcd with --etcd-endpoints).

All state lives in --data-dir; the admin kubeconfig is written to
DATA_DIR/admin.kubeconfig and its path printed once the API serves.

High availability: start the first server with --cluster-init (its etcd
member then listens for peers over TLS on --advertise-address, port
--etcd-peer-port, default the API port + 1) and the others with
--join https://FIRST:6443 --token TOKEN, where TOKEN is printed by the first
server and kept in its DATA_DIR/join-token. Each server serves the API; one
at a time runs the controllers. Three servers survive the loss of any one.
Each server's admin kubeconfig also lists the other live servers (contexts
drover@NAME, e.g. for kubectl --context); drover kubectl and agents fail
over to a live server by themselves.
A restarted server finds its cluster in its data dir: no flags needed.
--cluster-init on a single server's data dir turns it into the first server
of an HA cluster, keeping its objects.
"drover server remove NAME" removes a server's etcd member.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTimingFlags(cfg); err != nil {
				return err
			}
			cfg.Logger = slog.Default()
			defer startHeapTarget(heapTarget).Stop()
			if cfg.Cluster.Token == "" {
				cfg.Cluster.Token = os.Getenv("DROVER_TOKEN") // not a flag default: help would show it
			}
			cfg.Version = kubernetesVersion()
			out := cmd.OutOrStdout()
			cfg.Ready = func(info controlplane.Info) {
				fmt.Fprintf(out, "Drover API server is serving at %s\n", info.URL)
				fmt.Fprintf(out, "Admin kubeconfig: %s\n", info.KubeconfigPath)
				fmt.Fprintf(out, "Try: drover kubectl --kubeconfig %s get namespaces\n", info.KubeconfigPath)
				fmt.Fprintf(out, "Node token (also in %s):\n%s\n", filepath.Join(cfg.DataDir, controlplane.NodeTokenFile), info.NodeToken)
				fmt.Fprintf(out, "Add a node: drover agent --server %s --token <node token>\n", info.URL)
				if info.JoinToken != "" {
					fmt.Fprintf(out, "Server %s. Join token (also in %s):\n%s\n", info.ServerName,
						filepath.Join(cfg.DataDir, controlplane.JoinTokenFile), info.JoinToken)
					fmt.Fprintf(out, "Add a server: drover server --join %s --token <join token>\n", info.URL)
				}
			}
			return controlplane.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory holding all state (etcd data, certificates, tokens, kubeconfig)")
	f.StringVar(&cfg.Listen, "listen", controlplane.DefaultListen, "HOST:PORT the API server listens on")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "client URLs of an external etcd cluster (default: run an embedded member)")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "host or IP clients (and, in an HA cluster, other servers' etcd members) use to reach this server (default 127.0.0.1, or the --listen host)")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra DNS names or IPs for the serving certificate (e.g. a load balancer in front of the servers)")
	f.StringVar(&cfg.EtcdTLS.CAFile, "etcd-cafile", "", "CA certificate that verifies the external etcd servers")
	f.StringVar(&cfg.EtcdTLS.CertFile, "etcd-certfile", "", "client certificate for external etcd")
	f.StringVar(&cfg.EtcdTLS.KeyFile, "etcd-keyfile", "", "client key for external etcd")
	f.BoolVar(&cfg.Cluster.Init, "cluster-init", false, "start the first server of a highly available cluster (embedded etcd reachable by other servers)")
	f.StringVar(&cfg.Cluster.JoinURL, "join", "", "URL of an existing server whose cluster this server joins (needs --token)")
	f.StringVar(&cfg.Cluster.Token, "token", "", "join token printed by the first server (default $DROVER_TOKEN)")
	f.IntVar(&cfg.Cluster.PeerPort, "etcd-peer-port", 0, "port of this server's etcd peer listener in an HA cluster (default the API port + 1)")
	f.StringVar(&cfg.Cluster.Name, "name", "", "this server's name in the cluster (default <hostname>-<random>, kept in DATA_DIR/server-name)")
	f.IntVar(&cfg.MaxRequestsInFlight, "max-requests-inflight", 0, "most read-only requests served at once, watches excepted; beyond it requests queue (heartbeats and admins first, each identity in turn) for up to 15 s, then 429 (0: 400, negative: no limit)")
	f.IntVar(&cfg.MaxMutatingRequestsInFlight, "max-mutating-requests-inflight", 0, "most mutating requests served at once; beyond it requests queue as for --max-requests-inflight (0: 200, negative: no limit)")
	addTimingFlags(f, &cfg)
	addEventTTLFlag(f, &cfg)
	addHeapTargetFlag(f, &heapTarget)
	cmd.AddCommand(newServerMembersCommand(), newServerRemoveCommand(), newRotateNodeTokenCommand())
	return cmd
}

// adminConfig loads the admin kubeconfig: --kubeconfig, else $KUBECONFIG,
// else ~/.drover/admin.kubeconfig.
func adminConfig(path string) (*rest.Config, error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		path = filepath.Join(defaultDataDir(), controlplane.KubeconfigFile)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return failover.ConfigureFromKubeconfig(cfg, path), nil
}

func newServerMembersCommand() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the servers (etcd members) of a highly available cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := adminConfig(kubeconfig)
			if err != nil {
				return err
			}
			members, err := controlplane.ListMembers(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tROLE\tPEER URLS")
			for _, m := range members {
				role := "voter"
				if m.Learner {
					role = "learner"
				}
				name := m.Name
				if name == "" {
					name = "(starting)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", name, m.ID, role, strings.Join(m.PeerURLs, ","))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "admin kubeconfig (default $KUBECONFIG, else ~/.drover/admin.kubeconfig)")
	return cmd
}

func newServerRemoveCommand() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a server's etcd member from a highly available cluster",
		Long: `Remove a server's etcd member from the cluster, through any live server.
The removed server stops (its member is no longer part of the cluster); to
bring it back, wipe its data dir and start it again with --join.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := adminConfig(kubeconfig)
			if err != nil {
				return err
			}
			if err := controlplane.RemoveMember(cmd.Context(), cfg, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s removed\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "admin kubeconfig (default $KUBECONFIG, else ~/.drover/admin.kubeconfig)")
	return cmd
}

func newRotateNodeTokenCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "rotate-node-token",
		Short: "Replace the token agents join with (DATA_DIR/node-token) and print the new one",
		Long: `Replace the node join token in DATA_DIR/node-token with a fresh one and print
it. A running server accepts only the new token from its next join on; nodes
that already joined keep their certificates. The server join token (for
--join) is a different token and is not changed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := controlplane.RotateNodeToken(dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the server's data directory")
	return cmd
}
