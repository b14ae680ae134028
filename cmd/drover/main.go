// Command drover is a Kubernetes-compatible container orchestrator in one
// binary: control plane, node agent and kubectl.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "drover: %s\n", oneLine(err))
		os.Exit(1)
	}
}

// newRootCommand builds the command tree.
func newRootCommand() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "drover",
		Short:         "Drover is a Kubernetes-compatible container orchestrator in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			slog.SetDefault(logger)
			if cmd.Name() != "kubectl" {
				// client-go logs through klog: one log format for the process.
				klog.SetSlogLogger(logger)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newServerCommand(),
		newKubectlCommand(),
		newVersionCommand(),
		newAgentCommand(),
		newUpCommand(),
		newImageCommand(),
		newPauseCommand(),
		newKubeconfigCommand(),
		newBenchCommand(),
	)
	return root
}

// newLogger returns a text logger on stderr at the named level.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// oneLine flattens an error message so a failure reads as a single line.
func oneLine(err error) string {
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(strings.TrimSpace(line))
	}
	if b.Len() == 0 {
		return "failed"
	}
	return b.String()
}
