package process

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/internal/runtime"
)

// portsEnv is the environment variable that makes a binary importing this
// package act as a sandbox's port forwarder: its value is the path of a
// portsSpec. The forwarder publishes the sandbox's hostPort mappings: it
// listens on each host address and port and relays every TCP connection to
// the pod IP and container port. Like a shim it has a session of its own
// and outlives the agent; StopPodSandbox kills it.
const portsEnv = "DROVER_PROCESS_PORTS"

// portsFile and portsLogFile are the forwarder's spec and its own log, in
// the sandbox's state directory.
const (
	portsFile    = "ports.json"
	portsLogFile = "ports.log"
)

// portsSpec is what a forwarder publishes.
type portsSpec struct {
	PodIP    string
	Mappings []runtime.PortMapping
}

// tcpMappings returns the mappings a forwarder publishes: TCP ones with a
// host port. Others (UDP, SCTP) are not published by this runtime.
func tcpMappings(ms []runtime.PortMapping) (tcp, other []runtime.PortMapping) {
	for _, m := range ms {
		switch {
		case m.HostPort <= 0:
		case m.Protocol == "" || m.Protocol == runtime.ProtocolTCP:
			tcp = append(tcp, m)
		default:
			other = append(other, m)
		}
	}
	return tcp, other
}

// runPorts is the forwarder; it reports on shimFD once every port is bound
// (or why one could not be) and then serves until killed.
func runPorts(specPath string) int {
	syscall.CloseOnExec(shimFD)
	report := os.NewFile(shimFD, "report")
	signal.Ignore(syscall.SIGHUP)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "drover process ports %s: %v\n", specPath, err)
		if report != nil {
			fmt.Fprint(report, err.Error())
			report.Close()
		}
		return 1
	}
	var spec portsSpec
	if err := readJSON(specPath, &spec); err != nil {
		return fail(err)
	}
	var lns []net.Listener
	for _, m := range spec.Mappings {
		addr := net.JoinHostPort(m.HostIP, strconv.Itoa(int(m.HostPort)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("publish host port %d: %w", m.HostPort, err))
		}
		lns = append(lns, ln)
	}
	if report != nil {
		fmt.Fprint(report, "ok")
		report.Close()
	}
	var wg sync.WaitGroup
	for i, ln := range lns {
		target := net.JoinHostPort(spec.PodIP, strconv.Itoa(int(spec.Mappings[i].ContainerPort)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveForward(ln, target)
		}()
	}
	wg.Wait()
	return 0
}

// serveForward relays each connection accepted on ln to target.
func serveForward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			fmt.Fprintf(os.Stderr, "drover process ports: accept on %s: %v\n", ln.Addr(), err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go forward(c, target)
	}
}

// forward relays one connection both ways, closing each direction's write
// side when the other ends, so half-closes pass through.
func forward(c net.Conn, target string) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return // the client sees the connection closed, as with no listener
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		closeWrite(u)
		close(done)
	}()
	io.Copy(c, u)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// startPorts starts the forwarder for a sandbox (state directory dir) and
// waits until it has bound every port. It returns the forwarder's pid and
// start time.
func (r *Runtime) startPorts(dir, podIP string, mappings []runtime.PortMapping) (int, uint64, error) {
	specPath := filepath.Join(dir, portsFile)
	if err := writeJSON(specPath, portsSpec{PodIP: podIP, Mappings: mappings}); err != nil {
		return 0, 0, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, portsLogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("process: port forwarder log: %w", err)
	}
	defer logf.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return 0, 0, fmt.Errorf("process: port forwarder pipe: %w", err)
	}
	defer reportR.Close()
	cmd := &exec.Cmd{
		Path:        r.exe,
		Args:        []string{r.exe},
		Env:         []string{portsEnv + "=" + specPath},
		Dir:         "/",
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{reportW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("process: start port forwarder: %w", err)
	}
	go cmd.Wait()
	reportR.SetReadDeadline(time.Now().Add(startTimeout))
	report, err := io.ReadAll(reportR)
	if err == nil && string(report) != "ok" {
		err = errors.New(string(report))
		if len(report) == 0 {
			err = errors.New("the port forwarder exited without a report")
		}
	}
	if err != nil {
		cmd.Process.Kill()
		return 0, 0, fmt.Errorf("process: %w", err)
	}
	st, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		return 0, 0, fmt.Errorf("process: port forwarder start time: %w", err)
	}
	return cmd.Process.Pid, st.StartTime, nil
}

// stopPorts kills a sandbox's forwarder, if it is still the process
// recorded.
func stopPorts(pid int, start uint64) {
	if alive(pid, start) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
