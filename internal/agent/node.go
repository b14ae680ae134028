package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/runtime"
)

// MaxPods is the pod capacity a node reports, the kubelet's default.
const MaxPods = 110

// Node condition reasons, as the kubelet spells them.
const (
	ReasonKubeletReady    = "KubeletReady"
	ReasonKubeletNotReady = "KubeletNotReady"
)

// hostInfo is what a node reports about its machine.
type hostInfo struct {
	Capacity       corev1.ResourceList
	KernelVersion  string
	OSImage        string
	MachineID      string
	BootID         string
	Hostname       string
	RuntimeVersion string // "<name>://<version>"
}

// readHost reads the machine's capacity and identity from /proc and /etc.
func readHost() hostInfo {
	h := hostInfo{
		KernelVersion: readTrim("/proc/sys/kernel/osrelease"),
		MachineID:     readTrim("/etc/machine-id"),
		BootID:        readTrim("/proc/sys/kernel/random/boot_id"),
		OSImage:       osImage(),
	}
	h.Hostname, _ = os.Hostname()
	h.Capacity = corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
	}
	return h
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return string(bytes.TrimSpace(b))
}

// osImage is PRETTY_NAME from /etc/os-release, as the kubelet reports it.
func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return goruntime.GOOS
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return goruntime.GOOS
}

// memTotal is MemTotal from /proc/meminfo in bytes.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// detectNodeIP returns the address of the interface the default route
// leaves by, else the first non-loopback IPv4 address, else 127.0.0.1.
func detectNodeIP() string {
	if c, err := net.Dial("udp", "192.0.2.1:9"); err == nil { // no packet is sent
		ip := c.LocalAddr().(*net.UDPAddr).IP
		c.Close()
		if !ip.IsLoopback() {
			return ip.String()
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}

// nodeObject builds the Node the agent registers: labels, addresses,
// capacity, node info and daemon endpoint. Conditions are added by
// nodeConditions.
func nodeObject(cfg *Config, h hostInfo, port int) *corev1.Node {
	capacity := h.Capacity.DeepCopy()
	if _, ok := capacity[corev1.ResourcePods]; !ok {
		capacity[corev1.ResourcePods] = *resource.NewQuantity(MaxPods, resource.DecimalSI)
	}
	labels := map[string]string{
		corev1.LabelHostname:   cfg.NodeName,
		corev1.LabelOSStable:   goruntime.GOOS,
		corev1.LabelArchStable: goruntime.GOARCH,
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	hostname := h.Hostname
	if hostname == "" || cfg.Capacity != nil { // simulated nodes are not this host
		hostname = cfg.NodeName
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: cfg.NodeIP},
				{Type: corev1.NodeHostName, Address: hostname},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               h.MachineID,
				BootID:                  h.BootID,
				KernelVersion:           h.KernelVersion,
				OSImage:                 h.OSImage,
				ContainerRuntimeVersion: h.RuntimeVersion,
				KubeletVersion:          cfg.KubeletVersion,
				KubeProxyVersion:        cfg.KubeletVersion,
				OperatingSystem:         goruntime.GOOS,
				Architecture:            goruntime.GOARCH,
			},
		},
	}
}

// nodeConditions returns the node's conditions at now: Ready from the
// runtime's status, the pressure conditions False. Transition times of
// conditions whose status did not change are kept from old.
func nodeConditions(old []corev1.NodeCondition, rs runtime.RuntimeStatus, now time.Time) []corev1.NodeCondition {
	t := metav1.NewTime(time.Unix(now.Unix(), 0))
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: ReasonKubeletReady, Message: "drover agent is posting ready status"}
	if !rs.RuntimeReady || !rs.NetworkReady {
		msg := rs.Message
		if msg == "" {
			msg = "container runtime is not ready"
		}
		ready = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
			Reason: ReasonKubeletNotReady, Message: "container runtime not ready: " + msg}
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "drover agent has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "drover agent has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "drover agent has sufficient PID available"},
		ready,
	}
	for i := range conds {
		c := &conds[i]
		c.LastHeartbeatTime = t
		c.LastTransitionTime = t
		for _, o := range old {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return conds
}

// runtimeStatus asks the runtime whether it is ready; runtimes that cannot
// say are ready when they answer Version.
func (a *agent) runtimeStatus(ctx context.Context) runtime.RuntimeStatus {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if sr, ok := a.cfg.Runtime.(runtime.StatusReporter); ok {
		st, err := sr.Status(ctx)
		if err != nil {
			return runtime.RuntimeStatus{Message: err.Error()}
		}
		return st
	}
	if _, err := a.cfg.Runtime.Version(ctx); err != nil {
		return runtime.RuntimeStatus{Message: err.Error()}
	}
	return runtime.RuntimeStatus{RuntimeReady: true, NetworkReady: true}
}

// registerNode creates the Node, or updates an existing one (left by an
// earlier run of this agent) with this run's labels and status. It keeps
// the spec (taints, podCIDR, unschedulable) others may have set.
func (a *agent) registerNode(ctx context.Context) error {
	nodes := a.cfg.Client.CoreV1().Nodes()
	want := nodeObject(&a.cfg, a.host, a.port)
	// In whole seconds, as the server keeps times: the created node's
	// status then compares equal to what was sent.
	want.Status.Conditions = nodeConditions(nil, a.runtimeStatus(ctx), time.Now().Truncate(time.Second))
	node, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		node, err = nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("agent: get node: %w", err)
		}
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			node.Labels[k] = v
		}
		if node, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("agent: update node: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("agent: create node: %w", err)
	} else if apiequality.Semantic.DeepEqual(node.Status, want.Status) {
		// The server kept the status the node was created with: writing
		// it again at once was one more write of every node (and an event
		// for every node watcher) at a fleet's start.
		a.node = node
		return nil
	}
	want.Status.Conditions = nodeConditions(node.Status.Conditions, a.runtimeStatus(ctx), time.Now())
	node.Status = want.Status
	if node, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("agent: update node status: %w", err)
	}
	a.node = node
	return nil
}

// updateNodeStatus refreshes the node's conditions (heartbeat times) and
// status fields.
func (a *agent) updateNodeStatus(ctx context.Context) error {
	nodes := a.cfg.Client.CoreV1().Nodes()
	rs := a.runtimeStatus(ctx)
	want := nodeObject(&a.cfg, a.host, a.port)
	for attempt := 0; ; attempt++ {
		node := a.node.DeepCopy()
		conds := nodeConditions(node.Status.Conditions, rs, time.Now())
		node.Status = want.Status
		node.Status.Conditions = conds
		updated, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			a.node = updated
			return nil
		}
		if attempt > 0 || !(apierrors.IsConflict(err) || apierrors.IsNotFound(err)) {
			return fmt.Errorf("agent: update node status: %w", err)
		}
		if apierrors.IsNotFound(err) { // deleted while we run: register again
			return a.registerNode(ctx)
		}
		if a.node, err = nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("agent: get node: %w", err)
		}
	}
}

// renewLease creates or renews the node's Lease in kube-node-lease.
func (a *agent) renewLease(ctx context.Context) error {
	leases := a.cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	if a.lease == nil {
		l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			l = a.newLease(now)
			if l, err = leases.Create(ctx, l, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("agent: create lease: %w", err)
			}
			a.lease = l
			return nil
		case err != nil:
			return fmt.Errorf("agent: get lease: %w", err)
		}
		a.lease = l
	}
	l := a.lease.DeepCopy()
	fresh := a.newLease(now)
	l.Spec = fresh.Spec
	l.OwnerReferences = fresh.OwnerReferences
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			a.lease = nil // read it again next time
		} // else (429, timeout) the copy we hold is still the latest
		return fmt.Errorf("agent: renew lease: %w", err)
	}
	a.lease = updated
	return nil
}

func (a *agent) newLease(now metav1.MicroTime) *coordinationv1.Lease {
	holder := a.cfg.NodeName
	secs := int32((a.cfg.LeaseDuration + time.Second - 1) / time.Second)
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &holder,
			LeaseDurationSeconds: &secs,
			RenewTime:            &now,
		},
	}
	if a.node != nil {
		l.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "Node", Name: a.node.Name, UID: a.node.UID,
		}}
	}
	return l
}

// heartbeat renews the lease every HeartbeatInterval and the node status
// every NodeStatusInterval (or at once when the runtime's readiness
// changes or the lease is renewed again after failures), until ctx ends.
// The first renewal comes after a random part of the interval, so that a
// fleet of nodes started together does not renew in step; a failed renewal
// is retried after a quarter of the interval, doubling up to the interval,
// so that a refused one (429) does not cost a whole interval of the node
// lifecycle controller's grace period.
func (a *agent) heartbeat(ctx context.Context) {
	interval := a.cfg.HeartbeatInterval
	timer := time.NewTimer(rand.N(interval) + 1)
	defer timer.Stop()
	lastStatus := time.Now()
	lastReady := true
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		renewed := a.renewLease(ctx)
		if renewed != nil && ctx.Err() == nil {
			a.log.Warn("lease renewal failed", "err", renewed)
		}
		// Back in touch after missed renewals: the node lifecycle
		// controller may have marked the node Unknown meanwhile, so say
		// at once that it is alive rather than at the next interval.
		reconnected := renewed == nil && failures > 0
		next := interval
		if renewed != nil {
			failures++
			next = min(interval/4<<min(failures-1, 2), interval)
		} else {
			failures = 0
		}
		timer.Reset(max(next-time.Since(start), time.Millisecond))
		rs := a.runtimeStatus(ctx)
		ready := rs.RuntimeReady && rs.NetworkReady
		if ready != lastReady || reconnected || time.Since(lastStatus) >= a.cfg.NodeStatusInterval {
			if err := a.updateNodeStatus(ctx); err != nil {
				if ctx.Err() == nil {
					a.log.Warn("node status update failed", "err", err)
				}
				continue
			}
			if ready != lastReady {
				a.log.Info("runtime readiness changed", "ready", ready, "message", rs.Message)
			}
			lastStatus, lastReady = time.Now(), ready
		}
	}
}
