package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/drover/drover/internal/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		cfg        bench.Config
		output     string
		cpuProfile string
		memProfile string
		heapTarget resource.Quantity
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the control plane on simulated nodes: throughput, startup latency, API latency, memory",
		Long: `Start a control plane in a temporary directory (or target one with
--kubeconfig) and --nodes simulated nodes, create --deployments Deployments
of --pods sim pods in all, wait until every pod is Running and Ready, and
report end-to-end and scheduler throughput, pod startup latency, the API
server's request latency by verb, peak memory, etcd size and CPU time.

--fleet child runs the simulated nodes in a child process (drover agent
--runtime sim --nodes N) so that the control plane's memory and CPU are
reported apart from the fleet's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Thousands of client-go clients stopping at once log one
			// "connection refused" each: the figures are the output.
			klog.SetSlogLogger(slog.New(slog.DiscardHandler))
			defer startHeapTarget(heapTarget).Stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				cfg.Started = func(*rest.Config) {
					if err := pprof.StartCPUProfile(f); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "cpu profile: %v\n", err)
					}
				}
				defer pprof.StopCPUProfile()
			}
			res, err := bench.Run(cmd.Context(), cfg)
			pprof.StopCPUProfile()
			if err != nil {
				return err
			}
			if memProfile != "" {
				// Everything allocated since the process started (its
				// alloc_space/alloc_objects views): what feeds the GC.
				if err := writeProfile(memProfile, "allocs"); err != nil {
					return fmt.Errorf("--memprofile: %w", err)
				}
			}
			res.WriteTable(cmd.OutOrStdout())
			if output != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(output, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("--output: %w", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Nodes, "nodes", bench.DefaultNodes, "simulated nodes")
	f.IntVar(&cfg.Pods, "pods", bench.DefaultPods, "pods in all")
	f.IntVar(&cfg.Deployments, "deployments", bench.DefaultDeployments, "Deployments the pods are split among")
	f.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "Deployments created at once")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "target this cluster instead of starting a control plane")
	f.StringVar(&cfg.Fleet, "fleet", bench.FleetInProcess, "where the simulated nodes run: in-process, child (a drover agent process) or none (they exist)")
	f.BoolVar(&cfg.WatchPerNode, "watch-per-node", false, "give each simulated node its own pod watch, as real nodes have (default: one shared watch, as KWOK has)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "the simulated nodes' lease renewal period (default: the agent's 2s, longer for fleets over 100 nodes to stay near 50 renewals/s, at most the kubelet's 10s, or 3s with --kubeconfig); the bench's own control plane gets a node monitor grace period of 5 intervals (at least 8s); against another cluster keep it well under that cluster's, or nodes go Unknown and their pods are evicted")
	f.StringVar(&cfg.NodePrefix, "node-name-prefix", bench.DefaultNodePrefix, "prefix of the simulated nodes' names")
	f.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "give up after this long")
	f.StringVar(&output, "output", "", "write the figures as JSON to this file")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process during the workload to this file")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of this process (control plane and bench) to this file when the workload is done")
	addHeapTargetFlag(f, &heapTarget)
	f.StringVar(&cfg.FleetCPUProfile, "fleet-cpuprofile", "", "with --fleet child: write a CPU profile of the fleet process to this file")
	return cmd
}

// writeProfile writes the named runtime/pprof profile to path.
func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
