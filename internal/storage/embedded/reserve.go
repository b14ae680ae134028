package embedded

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// PortReservation holds a free TCP port from the moment it is chosen until
// the member's listener has bound it, so that nothing else takes it in
// between: choosing a port by listening on port 0 and closing the listener
// leaves a window in which another process's listener, or the source port
// of any outgoing connection, may take it (the kernel gives connections
// ports of the other parity than listeners, so the API port + 1 is exactly
// one they prefer).
//
// The reservation is a socket bound with SO_REUSEPORT that does not listen:
// it accepts no connection, keeps every socket without SO_REUSEPORT (and
// the kernel's choice of ports) off the port, and lets a listener with
// SO_REUSEPORT bind it too. Start binds with SO_REUSEPORT when
// Config.Reserved is set, and releases what it reserved itself once etcd
// has bound its listeners.
type PortReservation struct {
	// Host and Port are the address reserved.
	Host string
	Port int

	mu sync.Mutex
	fd int // -1 once released
}

// ReservePort reserves a free TCP port on host (an IP address; "" and
// "0.0.0.0" mean every IPv4 address). Release it once the listener for it
// is bound (or when giving up).
func ReservePort(host string) (*PortReservation, error) {
	ip := net.IPv4zero
	if host != "" {
		if ip = net.ParseIP(host); ip == nil {
			return nil, fmt.Errorf("reserve a port on %q: not an IP address", host)
		}
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip4 := ip.To4(); ip4 != nil {
		sa4 := &unix.SockaddrInet4{}
		copy(sa4.Addr[:], ip4)
		sa = sa4
	} else {
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{}
		copy(sa6.Addr[:], ip.To16())
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reserve a port on %s: %w", ip, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reserve a port on %s: SO_REUSEPORT: %w", ip, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reserve a port on %s: bind: %w", ip, err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reserve a port on %s: %w", ip, err)
	}
	r := &PortReservation{Host: ip.String(), fd: fd}
	switch a := bound.(type) {
	case *unix.SockaddrInet4:
		r.Port = a.Port
	case *unix.SockaddrInet6:
		r.Port = a.Port
	}
	return r, nil
}

// Addr is host:port.
func (r *PortReservation) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// Release gives the port up; a listener bound to it keeps it. Calls after
// the first do nothing.
func (r *PortReservation) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
