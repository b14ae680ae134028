package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/drover/drover/internal/controlplane"
	"github.com/drover/drover/internal/controlplane/failover"
)

func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [kubectl arguments]",
		Short: "Run kubectl, with Drover's admin kubeconfig as the default",
		Long: `Run the real kubectl. Every argument is passed to it untouched.

The kubeconfig is --kubeconfig if given, else $KUBECONFIG, else
~/.drover/admin.kubeconfig.`,
		DisableFlagParsing: true,
		// kubectl parses its own flags, including --help.
		PersistentPreRun: func(*cobra.Command, []string) {},
		Run: func(_ *cobra.Command, args []string) {
			runKubectl(args)
		},
	}
}

// runKubectl runs kubectl with args and exits as kubectl exits.
func runKubectl(args []string) {
	if !hasKubeconfigFlag(args) && os.Getenv("KUBECONFIG") == "" {
		os.Setenv("KUBECONFIG", filepath.Join(defaultDataDir(), controlplane.KubeconfigFile))
	}
	// kubectl reads os.Args (for plugins and preferences) as well as its
	// flags: make them look exactly as if kubectl had been run.
	os.Args = append([]string{"kubectl"}, args...)
	kubectl := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlOptions())
	kubectl.SetArgs(args)
	if err := cli.RunNoErrOutput(kubectl); err != nil {
		cmdutil.CheckErr(err) // prints as kubectl does, and exits non-zero
	}
	os.Exit(0)
}

// kubectlOptions are kubectl's defaults (as NewDefaultKubectlCommand
// sets them), and clients that fail over among the servers the kubeconfig
// lists (failover.KubeconfigSeeds): an HA cluster's admin kubeconfig
// survives the death of the server it names.
func kubectlOptions() kubectlcmd.KubectlOptions {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)
	flags.WithWrapConfigFn(failover.WrapKubeconfig(func() (clientcmdapi.Config, error) {
		return flags.ToRawKubeConfigLoader().RawConfig()
	}))
	return kubectlcmd.KubectlOptions{
		PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		Arguments:     os.Args,
		ConfigFlags:   flags.WithWarningPrinter(streams),
		IOStreams:     streams,
	}
}

// hasKubeconfigFlag reports whether args name a kubeconfig, in any form
// kubectl accepts, before a "--" that ends kubectl's own flags.
func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}
