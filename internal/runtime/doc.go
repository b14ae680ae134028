// Package runtime defines how the node agent runs pods: one small interface,
// [Runtime], modelled on the Kubernetes Container Runtime Interface (CRI) but
// with plain Go values instead of protobufs.
//
// Three implementations sit behind it and the agent does not know which one
// it has:
//
//   - cri (package runtime/cri): real containers through containerd's CRI
//     plugin over a unix socket;
//   - process: containers as host processes, for machines with no container
//     runtime;
//   - sim: simulated containers for scale tests and scripted failures.
//
// A pod is a sandbox (its network namespace and shared identity) that holds
// containers. The agent's life cycle for one pod is:
//
//	id, _ := rt.RunPodSandbox(ctx, sandboxCfg)
//	cid, _ := rt.CreateContainer(ctx, id, sandboxCfg, containerCfg)
//	_ = rt.StartContainer(ctx, cid)
//	...
//	_ = rt.StopContainer(ctx, cid, gracePeriod)
//	_ = rt.StopPodSandbox(ctx, id)
//	_ = rt.RemovePodSandbox(ctx, id) // removes its containers too
//
// Everything a runtime creates carries the labels and metadata the agent
// gave it, and List calls return them, so an agent that restarts finds its
// pods again from the runtime alone (see [LabelPodUID] and friends) and need
// not kill a healthy container.
//
// Abilities that not every runtime has are separate small interfaces
// ([ImageService], [Execer], [StatusReporter]); check for them with a type
// assertion.
//
// Container logs are files in the CRI log format (see [LogWriter] and
// [OpenLog]), so every runtime writes and reads them the same way.
package runtime
