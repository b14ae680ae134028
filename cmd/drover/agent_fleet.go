package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drover/drover/internal/agent"
	"github.com/drover/drover/internal/agent/simfleet"
	"github.com/drover/drover/internal/kubeclient"
	"github.com/drover/drover/internal/runtime/sim"
)

// simFleetFlags are `drover agent --nodes N` and its companions.
type simFleetFlags struct {
	cfg         simfleet.Config
	cpu, memory string
	pods        int
	cpuProfile  string
	memProfile  string
}

func (s *simFleetFlags) add(f *pflag.FlagSet) {
	f.IntVar(&s.cfg.Nodes, "nodes", 0, "run this many simulated nodes in one process (with --runtime sim), named PREFIX0, PREFIX1, ...")
	f.StringVar(&s.cfg.NamePrefix, "node-name-prefix", simfleet.DefaultNamePrefix, "prefix of the simulated nodes' names (with --nodes)")
	f.StringVar(&s.cpu, "sim-cpu", simfleet.DefaultCPU, "CPU capacity of each simulated node (with --nodes)")
	f.StringVar(&s.memory, "sim-memory", simfleet.DefaultMemory, "memory capacity of each simulated node (with --nodes)")
	f.IntVar(&s.pods, "sim-pods", simfleet.DefaultPods, "pod capacity of each simulated node (with --nodes)")
	f.BoolVar(&s.cfg.WatchPerNode, "sim-watch-per-node", false, "give each simulated node its own pod watch, as real nodes have (default: one watch shared by the fleet, as KWOK has)")
	f.IntVar(&s.cfg.Workers, "sim-workers", simfleet.DefaultWorkers, "pod sync workers per simulated node (with --nodes)")
	f.StringVar(&s.cpuProfile, "sim-cpuprofile", "", "write a CPU profile of the fleet to this file until it stops (with --nodes)")
	f.StringVar(&s.memProfile, "sim-memprofile", os.Getenv("DROVER_SIM_MEMPROFILE"), "write the fleet's allocation profile to this file when it stops (with --nodes; default $DROVER_SIM_MEMPROFILE, for a fleet bench starts)")
}

// fleetGCPercent is the simulated fleet's GOGC unless the environment sets
// one. At 500 nodes / 10k pods (live heap ~110 MB) 400 against 200 took the
// GC from 1.28 to 0.92 CPU-s of 10 and the fleet's peak RSS from 464 to
// 632 MiB.
const fleetGCPercent = 400

// run is `drover agent --runtime sim --nodes N`: a fleet of simulated
// nodes sharing one client, with no workload of its own, like KWOK.
func (s *simFleetFlags) run(cmd *cobra.Command, rtName string, restCfg *rest.Config, acfg agent.Config) error {
	if rtName != sim.Name {
		return errors.New("--nodes needs --runtime sim")
	}
	capacity, err := simCapacity(s.cpu, s.memory, s.pods)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// A simulator, not a node: it trades memory for CPU, which the
		// control plane it loads shares on a small machine (GC was a
		// fifth of a 500-node fleet's CPU at Go's default of 100).
		debug.SetGCPercent(fleetGCPercent)
	}
	restCfg = simfleet.RESTConfig(restCfg)
	restCfg.UserAgent = "drover-simfleet"
	client, err := kubernetes.NewForConfig(kubeclient.Protobuf(restCfg))
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	cfg := s.cfg
	cfg.Capacity = capacity
	cfg.Client = client
	cfg.HeartbeatInterval = acfg.HeartbeatInterval
	cfg.DataDir = filepath.Join(acfg.DataDir, "simfleet")
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if s.cpuProfile != "" {
		f, err := os.Create(s.cpuProfile)
		if err != nil {
			return fmt.Errorf("--sim-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--sim-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if s.memProfile != "" {
		defer func() {
			f, err := os.Create(s.memProfile)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "--sim-memprofile: %v\n", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "--sim-memprofile: %v\n", err)
			}
		}()
	}
	out := cmd.OutOrStdout()
	cfg.Ready = func(nodes []string) {
		fmt.Fprintf(out, "%d simulated nodes registered (%s .. %s)\n", len(nodes), nodes[0], nodes[len(nodes)-1])
	}
	return simfleet.Run(cmd.Context(), cfg)
}

// simCapacity is a simulated node's capacity from the flags' values.
func simCapacity(cpu, memory string, pods int) (corev1.ResourceList, error) {
	c, err := resource.ParseQuantity(cpu)
	if err != nil {
		return nil, fmt.Errorf("--sim-cpu %q: %w", cpu, err)
	}
	m, err := resource.ParseQuantity(memory)
	if err != nil {
		return nil, fmt.Errorf("--sim-memory %q: %w", memory, err)
	}
	if pods <= 0 {
		return nil, fmt.Errorf("--sim-pods %d: want at least 1", pods)
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:    c,
		corev1.ResourceMemory: m,
		corev1.ResourcePods:   *resource.NewQuantity(int64(pods), resource.DecimalSI),
	}, nil
}
