package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/image"
)

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the node's container images",
	}
	cmd.AddCommand(newImageImportCommand())
	return cmd
}

func newImageImportCommand() *cobra.Command {
	var dataDir, socket string
	cmd := &cobra.Command{
		Use:   "import FILE.tar...",
		Short: "Load image archives (OCI or docker save format) into the node's containerd",
		Long: `Load image archives into the containerd that runs this node's pods, so that
pods can use them by their tags without a registry. By default that is the
containerd Drover started for the agent in DATA_DIR/containerd (DATA_DIR is
--data-dir of "drover agent", or DIR/agent for "drover up --data-dir DIR");
--containerd-socket names another one.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if socket == "" {
				socket = filepath.Join(dataDir, "containerd", "containerd.sock")
			}
			if _, err := os.Stat(socket); err != nil {
				return fmt.Errorf("no containerd at %s (is the agent running with --runtime cri? else give --containerd-socket)", socket)
			}
			for _, f := range files {
				if _, err := os.Stat(f); err != nil {
					return fmt.Errorf("image archive: %w", errors.Unwrap(err))
				}
				if err := image.Import(cmd.Context(), socket, f); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", filepath.Join(defaultDataDir(), "agent"), "the agent's data directory")
	cmd.Flags().StringVar(&socket, "containerd-socket", "", "containerd socket to import into (default DATA_DIR/containerd/containerd.sock)")
	return cmd
}
