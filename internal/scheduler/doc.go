// Package scheduler is Drover's pod scheduler: it assigns each pod that
// has no node to one, the way kube-scheduler's default profile does, so
// what kubectl users see (where pods land, the PodScheduled condition, the
// FailedScheduling and Scheduled events and their wording) is upstream's.
//
// The decisions are pure and table-tested: a Cache holds the nodes and the
// pods placed on them (bound, or "assumed": bound by the scheduler but not
// yet seen bound), with each node's requested resources, host ports and
// replica counts kept incrementally; Cache.Schedule filters the nodes
// (cordon, taints and tolerations, nodeSelector and required node
// affinity, host ports, CPU, memory, ephemeral storage, extended
// resources and hugepages, pod count) and scores
// the feasible ones (least allocated, balanced allocation, spread of a
// controller's replicas, preferred node affinity, PreferNoSchedule
// taints), or returns a *FitError whose message is upstream's
// "0/N nodes are available: ...". Queue is upstream's scheduling queue
// (active, backoff, unschedulable) with time passed in.
//
// Run is the loop around them: informers on nodes and pods feed the cache
// and the queue; one goroutine places pods one at a time against the cache
// (so it never overcommits a node between bindings) and hands bindings to
// a pool of workers, since a binding is an HTTP round trip.
//
// Differences from upstream, on purpose or not yet done: a node whose Ready
// condition is not True counts as tainted not-ready (or unreachable)
// NoSchedule even without the node lifecycle controller's taint; replicas
// are spread by controller owner (not by the selectors of services and
// replica sets, as upstream's default topology spread does); there is no
// preemption (the message's "preemption:" part says no victims were
// found), no pod (anti-)affinity, topology spread constraints or volumes.
package scheduler
