package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for user
// space), so it is not read with sysconf (which would need cgo).
const clockTicks = 100

// procStat is what the runtime uses of /proc/<pid>/stat.
type procStat struct {
	// State is the one-letter state: R, S, D, Z (zombie), X (dead), ...
	State byte
	// PGrp is the process group.
	PGrp int
	// CPUTicks is user and system time of the process and of its children
	// it has waited for (utime+stime+cutime+cstime), in clock ticks.
	CPUTicks uint64
	// StartTime is when the process started, in clock ticks since boot;
	// with the pid it identifies a process (pids are reused, start times
	// of one pid are not).
	StartTime uint64
}

// parseProcStat parses the contents of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may itself hold spaces and parentheses,
// so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 > len(b) {
		return procStat{}, fmt.Errorf("process: malformed stat %q", b)
	}
	f := strings.Fields(string(b[end+2:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("process: stat has %d fields after the name, want at least 20", len(f))
	}
	num := func(i int) (uint64, error) { return strconv.ParseUint(f[i-3], 10, 64) }
	var s procStat
	s.State = f[0][0]
	pgrp, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, fmt.Errorf("process: stat pgrp: %w", err)
	}
	s.PGrp = pgrp
	for i := 14; i <= 17; i++ { // utime, stime, cutime, cstime
		// cutime and cstime are signed in the kernel's format; they are
		// never negative in practice, but parse them leniently.
		v, err := strconv.ParseInt(f[i-3], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("process: stat field %d: %w", i, err)
		}
		if v > 0 {
			s.CPUTicks += uint64(v)
		}
	}
	if s.StartTime, err = num(22); err != nil {
		return procStat{}, fmt.Errorf("process: stat starttime: %w", err)
	}
	return s, nil
}

// readProcStat reads /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// alive reports whether the process pid that started at startTime still
// runs: it exists, is the same process (not a later one with a reused pid)
// and is neither a zombie nor dead.
func alive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	s, err := readProcStat(pid)
	if err != nil {
		return false
	}
	return s.StartTime == startTime && s.State != 'Z' && s.State != 'X'
}

// parseVmRSS returns VmRSS from the contents of /proc/<pid>/status, in
// bytes (0 when absent, as for kernel threads and zombies).
func parseVmRSS(b []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "1234 kB"
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// groupUsage sums CPU time (core nanoseconds) and resident memory (bytes)
// over the live processes of process group pgid, scanning /proc: the
// fallback for stats when the container has no cgroup. CPU time of members
// that have exited and were reaped by a member is included (cutime); of
// those reaped by the container's shim, not.
func groupUsage(pgid int) (cpuNanos, rssBytes uint64, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, fmt.Errorf("process: read /proc: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readProcStat(pid)
		if err != nil || s.PGrp != pgid || s.State == 'Z' || s.State == 'X' {
			continue
		}
		cpuNanos += s.CPUTicks * (1e9 / clockTicks)
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status")); err == nil {
			rssBytes += parseVmRSS(b)
		}
	}
	return cpuNanos, rssBytes, nil
}

// killGroup sends sig to process group pgid, whose leader (pid pgid) started
// at startTime, without ever signalling an unrelated group: while any
// process of a group lives, the kernel does not give its id to a new
// process, so if pid pgid now belongs to another process the group is gone;
// if no process has that pid, the leader has exited and members it left
// behind (if any) still form the group. A group that is gone is not an error.
func killGroup(pgid int, startTime uint64, sig syscall.Signal) error {
	if pgid <= 0 {
		return nil
	}
	if s, err := readProcStat(pgid); err == nil && s.StartTime != startTime {
		return nil // pid reused: our group is gone
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("process: signal group %d: %w", pgid, err)
	}
	return nil
}

// syscallEBUSY is the error a cgroup still in use is removed with.
var syscallEBUSY = syscall.EBUSY
