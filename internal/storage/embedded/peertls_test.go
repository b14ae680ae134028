package embedded

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover/drover/internal/auth"
)

// peerFiles issues a peer certificate of ca in a fresh directory.
func peerFiles(t *testing.T, ca *auth.CA, caDir string) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := ca.EnsurePeerCert(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &TLSFiles{CertFile: cert, KeyFile: key, TrustedCAFile: filepath.Join(caDir, auth.CACertFile)}
}

func freeHTTPS(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "https://" + l.Addr().String()
}

// TestPeerTLSJoinAndRemove grows a cluster over peer TLS the way servers
// join (learner, then promoted), refuses a member whose certificate another
// CA signed, and reports a member's removal on its Err channel.
func TestPeerTLSJoinAndRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several members")
	}
	caDir := t.TempDir()
	ca, err := auth.EnsureCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	aURL := freeHTTPS(t)
	a := start(t, Config{DataDir: t.TempDir(), Name: "a", PeerURL: aURL, InitialCluster: "a=" + aURL, PeerTLS: peerFiles(t, ca, caDir)})
	defer a.Close()

	// b joins as a learner and is promoted once in sync.
	bURL := freeHTTPS(t)
	added, err := a.Client().MemberAddAsLearner(ctx, []string{bURL})
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, Config{
		DataDir: t.TempDir(), Name: "b", PeerURL: bURL, ListenPeerURL: bURL,
		InitialCluster: "a=" + aURL + ",b=" + bURL, ClusterState: ClusterStateExisting,
		PeerTLS: peerFiles(t, ca, caDir),
	})
	defer b.Close()
	if b.ID() != added.Member.ID || b.Name() != "b" {
		t.Errorf("b: ID %x name %q, want %x and b", b.ID(), b.Name(), added.Member.ID)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := a.Client().MemberPromote(ctx, b.ID())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b not promoted within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := a.Client().Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Client().Get(ctx, "/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("b reads /k: %v, %v", resp, err)
	}

	// A member with a certificate from another CA is not let in.
	otherDir := t.TempDir()
	other, err := auth.EnsureCA(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	cURL := freeHTTPS(t)
	// etcd refuses membership changes until every voter has been connected
	// for a few seconds ("unhealthy cluster"): retry, as servers do.
	var addedC *clientv3.MemberAddResponse
	retry(t, func() (err error) { addedC, err = a.Client().MemberAddAsLearner(ctx, []string{cURL}); return err })
	c, err := Start(ctx, Config{
		DataDir: t.TempDir(), Name: "c", PeerURL: cURL,
		InitialCluster: "a=" + aURL + ",b=" + bURL + ",c=" + cURL, ClusterState: ClusterStateExisting,
		PeerTLS: peerFiles(t, other, otherDir), StartTimeout: 5 * time.Second,
	})
	if err == nil {
		c.Close()
		t.Fatal("a member with a foreign CA's certificate joined")
	}
	retry(t, func() error { _, err := a.Client().MemberRemove(ctx, addedC.Member.ID); return err })

	// Removing b stops it, and says so.
	if b.removed(ctx) {
		t.Error("b, a member, counts itself removed")
	}
	retry(t, func() error { _, err := a.Client().MemberRemove(ctx, b.ID()); return err })
	// Whether b applied its removal before it stopped or not (a answers its
	// raft traffic with 410 Gone once it has applied it, and b stops with
	// its own member list unchanged), b learns it was removed: a, which
	// applied the removal before MemberRemove returned, lists it no more.
	if !b.removed(ctx) {
		t.Error("b does not count itself removed after its removal")
	}
	select {
	case err := <-b.Err():
		if err == nil || !strings.Contains(err.Error(), "removed") {
			t.Errorf("b.Err() = %v, want removal", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("removed member reported nothing within 30s")
	}
}

// retry calls f until it succeeds, for up to 30 seconds.
func retry(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPeerTLSConfigErrors(t *testing.T) {
	files := &TLSFiles{CertFile: "c", KeyFile: "k", TrustedCAFile: "ca"}
	for name, cfg := range map[string]Config{
		"http peer with TLS":   {DataDir: t.TempDir(), PeerURL: "http://127.0.0.1:1", PeerTLS: files},
		"https peer sans TLS":  {DataDir: t.TempDir(), PeerURL: "https://127.0.0.1:1"},
		"TLS without a CA":     {DataDir: t.TempDir(), PeerURL: "https://127.0.0.1:1", PeerTLS: &TLSFiles{CertFile: "c", KeyFile: "k"}},
		"bad listen peer url":  {DataDir: t.TempDir(), PeerURL: "https://127.0.0.1:1", ListenPeerURL: "https://0.0.0.0", PeerTLS: files},
		"http listen with TLS": {DataDir: t.TempDir(), PeerURL: "https://127.0.0.1:1", ListenPeerURL: "http://0.0.0.0:1", PeerTLS: files},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := etcdConfig(cfg, nil); err == nil {
				t.Fatal("etcdConfig accepted it")
			}
		})
	}
}
