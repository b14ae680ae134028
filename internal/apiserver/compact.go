package apiserver

import (
	"encoding/binary"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// compactor makes the pods the watch memo decodes smaller in memory without
// changing what they hold. A memo object is shared, read-only, by every
// watcher and in-process informer, which keep one per pod for the pod's
// life: most of a pod is the same as its ReplicaSet siblings' (labels,
// requests, image, owner, condition types) or its node's, and the decoder
// gives each pod its own copy of it all, in slices grown by append.
//
// The compactor reallocates such slices at their length, and shares equal
// strings, labels (and node selector) maps and resource lists between the
// pods it compacts, through bounded tables. Sharing maps is safe only
// because nothing modifies a memo object: an object that its holder owns and
// may change must never be compacted. The zero value is ready to use.
//
// Strings are interned in a table of its own rather than with the unique
// package: unique keeps a value only while a Handle to it lives, so a
// string interned before a collection is interned anew after it, and pods
// decoded in different cycles would not share it.
type compactor struct {
	mu        sync.Mutex // held while a pod is compacted
	strs      internTable[string]
	labels    internTable[map[string]string]
	resources internTable[corev1.ResourceList]
	key       []byte   // scratch for map keys
	names     []string // scratch for a map's sorted keys
	quantity  []byte   // scratch for a quantity's canonical form (never reassigned: CanonicalizeBytes may return a shared array)
}

// maxSharedMapLen bounds the maps shared: the key of a larger one costs
// more to build, and such maps are rare.
const maxSharedMapLen = 32

// internGeneration bounds an intern table: it keeps at most two
// generations of this many keys. Equal values that outnumber that (nodes by
// the ten thousand) are shared less, but never kept without bound.
const internGeneration = 8192

// internTable hands out the first value kept for a key to every later
// caller with that key. When the current generation is full it becomes the
// old one, and the older is dropped; a key found in the old generation moves
// to the current one. Objects keep what they were given when it is dropped:
// only the ones compacted afterwards no longer share it. Callers lock.
type internTable[V any] struct {
	cur, old map[string]V
}

// intern returns the value kept for key, keeping v if there is none.
func (t *internTable[V]) intern(key string, v V) V {
	if got, ok := t.cur[key]; ok {
		return got
	}
	if got, ok := t.old[key]; ok {
		v = got
	}
	t.keep(key, v)
	return v
}

// internBytes is intern with a key in a scratch buffer, copied when kept.
func (t *internTable[V]) internBytes(key []byte, v V) V {
	if got, ok := t.cur[string(key)]; ok {
		return got
	}
	if got, ok := t.old[string(key)]; ok {
		v = got
	}
	t.keep(string(key), v)
	return v
}

func (t *internTable[V]) keep(key string, v V) {
	if t.cur == nil || len(t.cur) >= internGeneration {
		t.old, t.cur = t.cur, make(map[string]V)
	}
	t.cur[key] = v
}

// pod compacts a pod decoded for the watch memo.
func (c *compactor) pod(p *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()

	m := &p.ObjectMeta
	m.Namespace = c.str(m.Namespace)
	m.GenerateName = c.str(m.GenerateName)
	m.Labels = c.stringMap(m.Labels)
	m.Finalizers = exact(m.Finalizers)
	c.strSlice(m.Finalizers)
	m.OwnerReferences = exact(m.OwnerReferences)
	for i := range m.OwnerReferences {
		r := &m.OwnerReferences[i]
		r.APIVersion, r.Kind, r.Name = c.str(r.APIVersion), c.str(r.Kind), c.str(r.Name)
		r.UID = types.UID(c.str(string(r.UID)))
	}

	s := &p.Spec
	s.NodeName = c.str(s.NodeName)
	s.SchedulerName = c.str(s.SchedulerName)
	s.ServiceAccountName = c.str(s.ServiceAccountName)
	s.DeprecatedServiceAccount = c.str(s.DeprecatedServiceAccount)
	s.RestartPolicy = corev1.RestartPolicy(c.str(string(s.RestartPolicy)))
	s.DNSPolicy = corev1.DNSPolicy(c.str(string(s.DNSPolicy)))
	s.PriorityClassName = c.str(s.PriorityClassName)
	s.NodeSelector = c.stringMap(s.NodeSelector)
	s.Overhead = c.resourceList(s.Overhead)
	s.InitContainers = exact(s.InitContainers)
	c.containers(s.InitContainers)
	s.Containers = exact(s.Containers)
	c.containers(s.Containers)
	s.Tolerations = exact(s.Tolerations)
	for i := range s.Tolerations {
		t := &s.Tolerations[i]
		t.Key, t.Value = c.str(t.Key), c.str(t.Value)
		t.Operator = corev1.TolerationOperator(c.str(string(t.Operator)))
		t.Effect = corev1.TaintEffect(c.str(string(t.Effect)))
	}
	s.Volumes = exact(s.Volumes)

	st := &p.Status
	st.Phase = corev1.PodPhase(c.str(string(st.Phase)))
	st.QOSClass = corev1.PodQOSClass(c.str(string(st.QOSClass)))
	st.HostIP = c.str(st.HostIP)
	st.NominatedNodeName = c.str(st.NominatedNodeName)
	st.HostIPs = exact(st.HostIPs)
	for i := range st.HostIPs {
		st.HostIPs[i].IP = c.str(st.HostIPs[i].IP)
	}
	st.PodIPs = exact(st.PodIPs) // each pod's own: not interned
	st.Conditions = exact(st.Conditions)
	for i := range st.Conditions {
		cd := &st.Conditions[i]
		cd.Type = corev1.PodConditionType(c.str(string(cd.Type)))
		cd.Status = corev1.ConditionStatus(c.str(string(cd.Status)))
		cd.Reason = c.str(cd.Reason)
	}
	st.InitContainerStatuses = exact(st.InitContainerStatuses)
	c.containerStatuses(st.InitContainerStatuses)
	st.ContainerStatuses = exact(st.ContainerStatuses)
	c.containerStatuses(st.ContainerStatuses)
}

func (c *compactor) containers(cs []corev1.Container) {
	for i := range cs {
		ct := &cs[i]
		ct.Name, ct.Image = c.str(ct.Name), c.str(ct.Image)
		ct.ImagePullPolicy = corev1.PullPolicy(c.str(string(ct.ImagePullPolicy)))
		ct.TerminationMessagePath = c.str(ct.TerminationMessagePath)
		ct.TerminationMessagePolicy = corev1.TerminationMessagePolicy(c.str(string(ct.TerminationMessagePolicy)))
		c.requirements(&ct.Resources)
		ct.Ports = exact(ct.Ports)
		for j := range ct.Ports {
			ct.Ports[j].Name = c.str(ct.Ports[j].Name)
			ct.Ports[j].Protocol = corev1.Protocol(c.str(string(ct.Ports[j].Protocol)))
		}
		ct.Env = exact(ct.Env)
		ct.VolumeMounts = exact(ct.VolumeMounts)
	}
}

func (c *compactor) containerStatuses(cs []corev1.ContainerStatus) {
	for i := range cs {
		s := &cs[i]
		s.Name, s.Image, s.ImageID = c.str(s.Name), c.str(s.Image), c.str(s.ImageID)
		if w := s.State.Waiting; w != nil {
			w.Reason = c.str(w.Reason)
		}
		if t := s.State.Terminated; t != nil {
			t.Reason = c.str(t.Reason)
		}
		if t := s.LastTerminationState.Terminated; t != nil {
			t.Reason = c.str(t.Reason)
		}
		s.AllocatedResources = c.resourceList(s.AllocatedResources)
		if s.Resources != nil {
			c.requirements(s.Resources)
		}
	}
}

func (c *compactor) requirements(r *corev1.ResourceRequirements) {
	r.Requests = c.resourceList(r.Requests)
	r.Limits = c.resourceList(r.Limits)
}

func (c *compactor) str(s string) string {
	if s == "" {
		return s
	}
	return c.strs.intern(s, s)
}

func (c *compactor) strSlice(ss []string) {
	for i := range ss {
		ss[i] = c.str(ss[i])
	}
}

// stringMap returns the map kept for m's content, or m.
func (c *compactor) stringMap(m map[string]string) map[string]string {
	if len(m) == 0 || len(m) > maxSharedMapLen {
		return m
	}
	c.names = c.names[:0]
	for k := range m {
		c.names = append(c.names, k)
	}
	slices.Sort(c.names)
	key := c.key[:0]
	for _, k := range c.names {
		key = appendField(appendField(key, k), m[k])
	}
	c.key = key
	return c.labels.internBytes(key, m)
}

// resourceList returns the list kept for l's content, or l. Quantities are
// keyed by their canonical form, which is what they encode to.
func (c *compactor) resourceList(l corev1.ResourceList) corev1.ResourceList {
	if len(l) == 0 || len(l) > maxSharedMapLen {
		return l
	}
	c.names = c.names[:0]
	for k := range l {
		c.names = append(c.names, string(k))
	}
	slices.Sort(c.names)
	if c.quantity == nil {
		c.quantity = make([]byte, 0, 64)
	}
	key := c.key[:0]
	for _, k := range c.names {
		q := l[corev1.ResourceName(k)]
		number, suffix := q.CanonicalizeBytes(c.quantity[:0])
		key = appendField(key, k)
		key = binary.AppendUvarint(key, uint64(len(number)+len(suffix)))
		key = append(append(key, number...), suffix...)
	}
	c.key = key
	return c.resources.internBytes(key, l)
}

// appendField appends s to key, length first, so that no two sequences of
// fields make the same key.
func appendField(key []byte, s string) []byte {
	return append(binary.AppendUvarint(key, uint64(len(s))), s...)
}

// exact returns s reallocated at its length when it has spare capacity, as
// a slice grown by append has: the copy is never larger.
func exact[S ~[]E, E any](s S) S {
	if len(s) == 0 || cap(s) == len(s) {
		return s
	}
	return append(make(S, 0, len(s)), s...)
}
