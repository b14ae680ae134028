package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/runtime"
)

// DefaultCgroupRoot is the cgroup pods go under unless Config.CgroupRoot
// says otherwise.
const DefaultCgroupRoot = "drover-process"

// controllers are the cgroup v1 controllers the runtime uses: cpu for
// shares and quota, cpuacct for CPU usage, memory for the limit and usage.
var controllers = []string{"cpu", "cpuacct", "memory"}

// hierarchy is where one cgroup v1 controller is mounted.
type hierarchy struct {
	// Mount is the mount point, e.g. /sys/fs/cgroup/memory.
	Mount string
	// Root is the cgroup the mount shows at its top, "/" unless the
	// mount is of a subtree (as inside some containers).
	Root string
}

// parseMountinfo finds the cgroup v1 mounts of controllers in the contents
// of /proc/self/mountinfo. Lines look like
//
//	36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
func parseMountinfo(b []byte, controllers []string) map[string]hierarchy {
	out := map[string]hierarchy{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 5 || len(f) < sep+4 || f[sep+1] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(f[sep+3], ",") {
			if slices.Contains(controllers, opt) {
				if _, seen := out[opt]; !seen {
					out[opt] = hierarchy{Mount: unescapeMount(f[4]), Root: unescapeMount(f[3])}
				}
			}
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup maps each cgroup v1 controller to the process's cgroup in
// its hierarchy, from the contents of /proc/<pid>/cgroup
// ("4:memory:/some/path" lines; co-mounted controllers share a line).
func parseProcCgroup(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// cgroupDirs resolves the cgroup path p in each hierarchy: an absolute p
// from the hierarchy's root, a relative one under own (the runtime's own
// cgroup there), so pods stay inside whatever cgroup the agent was given.
// Co-mounted controllers share one directory, listed once.
func cgroupDirs(hs map[string]hierarchy, own map[string]string, p string) ([]string, error) {
	var dirs []string
	for _, c := range controllers {
		h, ok := hs[c]
		if !ok {
			return nil, fmt.Errorf("process: no cgroup v1 %s hierarchy mounted", c)
		}
		cg := p
		if !filepath.IsAbs(p) {
			cg = filepath.Join(own[c], p)
			if own[c] == "" {
				cg = filepath.Join("/", p)
			}
		}
		// The mount shows the hierarchy from h.Root down.
		rel, err := filepath.Rel(h.Root, filepath.Join("/", cg))
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = cg // outside the mounted subtree: best effort
		}
		d := filepath.Join(h.Mount, rel)
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// cgroups creates and reads the runtime's cgroups (v1).
type cgroups struct {
	hs  map[string]hierarchy
	own map[string]string
}

// newCgroups finds the hierarchies and checks that the runtime may create
// cgroups under root there, by creating root.
func newCgroups(root string) (*cgroups, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("process: read mountinfo: %w", err)
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("process: read own cgroup: %w", err)
	}
	c := &cgroups{hs: parseMountinfo(mi, controllers), own: parseProcCgroup(pc)}
	dirs, err := c.dirs(root)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("process: create cgroup: %w", err)
		}
		// root may exist already, made by someone allowed to: check
		// that cgroups can be made in it by making one.
		probe := filepath.Join(d, "probe-"+newID())
		if err := os.Mkdir(probe, 0o755); err != nil {
			return nil, fmt.Errorf("process: create cgroup: %w", err)
		}
		os.Remove(probe)
	}
	return c, nil
}

// dirs resolves cgroup path p in every hierarchy (see cgroupDirs).
func (c *cgroups) dirs(p string) ([]string, error) {
	return cgroupDirs(c.hs, c.own, p)
}

// create makes the cgroup directories dirs.
func createCgroup(dirs []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("process: create cgroup: %w", err)
		}
	}
	return nil
}

// limitFiles are the cgroup v1 files Resources set, in the order written
// (the period before the quota that is relative to it).
func limitFiles(r runtime.Resources) [][2]string {
	var out [][2]string
	if r.CPUShares > 0 {
		out = append(out, [2]string{"cpu.shares", strconv.FormatInt(r.CPUShares, 10)})
	}
	if r.CPUQuota > 0 {
		period := r.CPUPeriod
		if period <= 0 {
			period = runtime.CPUPeriod
		}
		out = append(out,
			[2]string{"cpu.cfs_period_us", strconv.FormatInt(period, 10)},
			[2]string{"cpu.cfs_quota_us", strconv.FormatInt(r.CPUQuota, 10)})
	}
	if r.MemoryLimitBytes > 0 {
		out = append(out, [2]string{"memory.limit_in_bytes", strconv.FormatInt(r.MemoryLimitBytes, 10)})
	}
	return out
}

// setLimits writes r into whichever of dirs holds each file.
func setLimits(dirs []string, r runtime.Resources) error {
	for _, kv := range limitFiles(r) {
		d := dirWith(dirs, kv[0])
		if d == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, kv[0]), []byte(kv[1]), 0o644); err != nil {
			return fmt.Errorf("process: set cgroup limit: %w", err)
		}
	}
	return nil
}

// dirWith returns the first of dirs that has file name, or "".
func dirWith(dirs []string, name string) string {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return d
		}
	}
	return ""
}

// joinCgroup moves process pid (all its threads) into dirs.
func joinCgroup(dirs []string, pid int) error {
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("process: join cgroup: %w", err)
		}
	}
	return nil
}

// removeCgroup removes the cgroup directory dir, trying up to tries times
// 5ms apart while it is busy: a cgroup whose last process has just exited
// may stay busy for a moment. A cgroup already gone is not an error.
func removeCgroup(dir string, tries int) error {
	for i := 0; ; i++ {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscallEBUSY) || i+1 >= tries {
			return fmt.Errorf("process: remove cgroup: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readUint reads a file holding one unsigned number.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// statValue returns the value of key in a "key value" per line file such
// as memory.stat or memory.oom_control.
func statValue(b []byte, key string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// workingSet is memory usage minus inactive file pages (easily reclaimed),
// as the kubelet (cAdvisor) computes it, never below zero.
func workingSet(usage uint64, memoryStat []byte) uint64 {
	inactive, _ := statValue(memoryStat, "total_inactive_file")
	if inactive > usage {
		return 0
	}
	return usage - inactive
}

// cgroupUsage reads CPU usage (core nanoseconds) and the memory working set
// (bytes) of the cgroup dirs.
func cgroupUsage(dirs []string) (cpuNanos, workingSetBytes uint64, err error) {
	if d := dirWith(dirs, "cpuacct.usage"); d != "" {
		if cpuNanos, err = readUint(filepath.Join(d, "cpuacct.usage")); err != nil {
			return 0, 0, fmt.Errorf("process: read cpu usage: %w", err)
		}
	}
	if d := dirWith(dirs, "memory.usage_in_bytes"); d != "" {
		usage, err := readUint(filepath.Join(d, "memory.usage_in_bytes"))
		if err != nil {
			return 0, 0, fmt.Errorf("process: read memory usage: %w", err)
		}
		stat, err := os.ReadFile(filepath.Join(d, "memory.stat"))
		if err != nil {
			return 0, 0, fmt.Errorf("process: read memory stat: %w", err)
		}
		workingSetBytes = workingSet(usage, stat)
	}
	return cpuNanos, workingSetBytes, nil
}

// oomKilled reports whether the kernel's OOM killer has killed a process of
// the cgroup dirs for going over its memory limit.
func oomKilled(dirs []string) bool {
	d := dirWith(dirs, "memory.oom_control")
	if d == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(d, "memory.oom_control"))
	if err != nil {
		return false
	}
	n, _ := statValue(b, "oom_kill")
	return n > 0
}

// removeCgroupDirs removes dirs at once, ignoring errors: for undoing a
// failed creation.
func removeCgroupDirs(dirs []string) {
	for _, d := range dirs {
		os.Remove(d)
	}
}
