package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/controlplane"
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
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API server, controllers and an embedded etcd member",
		Long: `Run the control plane: the Kubernetes API over HTTPS, the controllers, and an
embedded etcd member (or a client of external etcd with --etcd-endpoints).

All state lives in --data-dir; the admin kubeconfig is written to
DATA_DIR/admin.kubeconfig and its path printed once the API serves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = slog.Default()
			cfg.Version = kubernetesVersion()
			out := cmd.OutOrStdout()
			cfg.Ready = func(info controlplane.Info) {
				fmt.Fprintf(out, "Drover API server is serving at %s\n", info.URL)
				fmt.Fprintf(out, "Admin kubeconfig: %s\n", info.KubeconfigPath)
				fmt.Fprintf(out, "Try: drover kubectl --kubeconfig %s get namespaces\n", info.KubeconfigPath)
			}
			return controlplane.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory holding all state (etcd data, certificates, tokens, kubeconfig)")
	f.StringVar(&cfg.Listen, "listen", controlplane.DefaultListen, "HOST:PORT the API server listens on")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "client URLs of an external etcd cluster (default: run an embedded member)")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "host or IP clients use to reach the API server (default 127.0.0.1, or the --listen host)")
	return cmd
}
