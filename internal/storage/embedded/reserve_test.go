package embedded

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// A reserved port is kept from other listeners until its member binds it,
// and the member's listeners keep it after the reservation is released.
func TestReservedPortsAreKeptForTheMember(t *testing.T) {
	client, err := ReservePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Release()
	peer, err := ReservePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Release()
	if client.Port == 0 || client.Port == peer.Port {
		t.Fatalf("reserved ports %d and %d", client.Port, peer.Port)
	}
	for _, r := range []*PortReservation{client, peer} {
		if l, err := net.Listen("tcp", r.Addr()); !addrInUse(err) {
			if l != nil {
				l.Close()
			}
			t.Fatalf("listen on reserved %s: %v, want address in use", r.Addr(), err)
		}
		// A reservation accepts no connection.
		if c, err := net.DialTimeout("tcp", r.Addr(), 5*time.Second); err == nil {
			c.Close()
			t.Fatalf("dial reserved %s: connected, want refused", r.Addr())
		}
	}

	m := start(t, Config{DataDir: t.TempDir(), ClientURL: "http://" + client.Addr(), PeerURL: "http://" + peer.Addr(), Reserved: true})
	defer m.Close()
	client.Release()
	peer.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Client().Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put through the reserved client port: %v", err)
	}
	for _, r := range []*PortReservation{client, peer} {
		if l, err := net.Listen("tcp", r.Addr()); !addrInUse(err) {
			if l != nil {
				l.Close()
			}
			t.Errorf("listen on %s after release: %v, want it in use by the member", r.Addr(), err)
		}
	}
	if _, err := ReservePort("localhost"); err == nil {
		t.Error("ReservePort(localhost): want an error (IP addresses only)")
	}
}

// Without Reserved, a port the caller gives that turns out taken is not
// worth picking again; a port Start picked is.
func TestPickedInUse(t *testing.T) {
	taken := errors.New("listen tcp 127.0.0.1:4321: bind: address already in use")
	picked := &picked{addrs: []string{"127.0.0.1:4321"}}
	if !pickedInUse(taken, picked) {
		t.Error("a picked port taken: want a new pick")
	}
	given := errors.New("listen tcp 127.0.0.1:2380: bind: address already in use")
	if pickedInUse(given, picked) {
		t.Error("a given port taken: want no new pick")
	}
	picked.reserve = true
	if pickedInUse(taken, picked) {
		t.Error("a reserved port: want no new pick")
	}
}
