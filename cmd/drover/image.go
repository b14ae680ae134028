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
	cmd.AddCommand(newImageImportCommand(), newImageBuildCommand())
	return cmd
}

func newImageBuildCommand() *cobra.Command {
	var (
		ref, output string
		spec        image.Spec
	)
	cmd := &cobra.Command{
		Use:   "build PACKAGE",
		Short: "Build a Go main package into a one-binary image archive, without a registry",
		Long: `Compile the Go main package PACKAGE (a directory such as ./test/images/web, or
an import path; the go command must be at hand) into a static binary, put it
in a one-layer OCI image tagged --tag that runs it with the given --arg
arguments and --env variables, and write the image archive to --output
(default NAME.tar in the current directory). Load it into a node with
"drover image import".`,
		Example: `  drover image build ./test/images/web --tag drover.local/my-web:2.0 --arg=-version=2.0
  drover image import --data-dir /tmp/drover/agent web.tar`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ref == "" {
				return errors.New("--tag is required")
			}
			tmp, err := os.MkdirTemp("", "drover-image-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			spec.Binary, err = image.BuildBinary(cmd.Context(), args[0], tmp)
			if err != nil {
				return err
			}
			img, err := image.FromBinary(spec)
			if err != nil {
				return err
			}
			if output == "" {
				output = filepath.Base(spec.Binary) + ".tar"
			}
			if err := image.WriteTarball(img, ref, output); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s into %s\n", ref, output)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&ref, "tag", "t", "", "the image's reference, e.g. drover.local/my-web:1.0")
	f.StringVarP(&output, "output", "o", "", "archive to write (default NAME.tar, NAME the package's base name)")
	f.StringArrayVar(&spec.Args, "arg", nil, "an argument the image runs its binary with (repeatable)")
	f.StringArrayVar(&spec.Env, "env", nil, "a KEY=value variable of the image's environment (repeatable)")
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
