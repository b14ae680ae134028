package controlplane

import (
	"log/slog"
	"net"
	"strconv"
	"testing"
)

// A new member of a server whose API port the kernel chose gets a peer port
// held for it until etcd binds it; a fixed API port keeps API port + 1.
func TestReservePeerPort(t *testing.T) {
	c := &clusterSetup{log: slog.New(slog.DiscardHandler)}
	port := c.reservePeerPort("127.0.0.1:0")
	if port == 0 || c.peerHold == nil || c.peerHold.Port != port {
		t.Fatalf("reservePeerPort(127.0.0.1:0) = %d, hold %+v: want a reserved port", port, c.peerHold)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatalf("listen on the reserved peer port %s succeeded, want it held", addr)
	}
	c.releasePeerPort()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the released peer port %s: %v", addr, err)
	}
	l.Close()
	c.releasePeerPort() // twice is fine

	fixed := &clusterSetup{log: slog.New(slog.DiscardHandler)}
	if port := fixed.reservePeerPort("127.0.0.1:6443"); port != 0 || fixed.peerHold != nil {
		t.Errorf("reservePeerPort(127.0.0.1:6443) = %d, want 0 (the API port + 1)", port)
	}
	if port := fixed.reservePeerPort(":0"); port == 0 || fixed.peerHold.Host != "0.0.0.0" {
		t.Errorf("reservePeerPort(:0) = %d on %+v, want a port on 0.0.0.0", port, fixed.peerHold)
	}
	fixed.releasePeerPort()
}
