package controlplane

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/storage/embedded"
)

func TestDecideMode(t *testing.T) {
	init, join := Cluster{Init: true}, Cluster{JoinURL: "https://a:6443", Token: "K10x::y"}
	for _, tc := range []struct {
		name                          string
		c                             Cluster
		external, haveState, haveData bool
		want                          clusterMode
		wantErr                       string
	}{
		{name: "no flags", want: modeSingle},
		{name: "no flags, old data", haveData: true, want: modeSingle},
		{name: "init", c: init, want: modeInit},
		{name: "init restart", c: init, haveState: true, haveData: true, want: modeRestart},
		{name: "restart without flags", haveState: true, haveData: true, want: modeRestart},
		{name: "join", c: join, want: modeJoin},
		{name: "join restart", c: join, haveState: true, haveData: true, want: modeRestart},
		{name: "join retried before etcd started", c: join, haveState: true, want: modeJoin},
		{name: "join needs token", c: Cluster{JoinURL: "https://a:6443"}, wantErr: "--token"},
		{name: "init and join", c: Cluster{Init: true, JoinURL: "https://a", Token: "t"}, wantErr: "exclusive"},
		{name: "single data to HA", c: init, haveData: true, want: modeConvert},
		{name: "single data joins", c: join, haveData: true, wantErr: "drop"},
		{name: "HA state without data", haveState: true, wantErr: "--join"},
		{name: "external", external: true, want: modeExternal},
		{name: "external join (credentials)", c: join, external: true, want: modeExternal},
		{name: "external init", c: init, external: true, wantErr: "not with --etcd-endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decideMode(tc.c, tc.external, tc.haveState, tc.haveData)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("decideMode = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestPeerListenURL(t *testing.T) {
	for _, tc := range []struct{ listen, peer, want string }{
		{":6443", "https://10.0.0.1:6444", "https://0.0.0.0:6444"},
		{"0.0.0.0:6443", "https://10.0.0.1:7000", "https://0.0.0.0:7000"},
		{"127.0.0.1:6443", "https://127.0.0.1:6444", "https://127.0.0.1:6444"},
		{"10.0.0.1:6443", "https://node-a:6444", "https://10.0.0.1:6444"},
	} {
		got, err := peerListenURL(tc.listen, tc.peer)
		if err != nil || got != tc.want {
			t.Errorf("peerListenURL(%q, %q) = %q, %v; want %q", tc.listen, tc.peer, got, err, tc.want)
		}
	}
	if _, err := peerListenURL("no-port", "https://a:1"); err == nil {
		t.Error("a listen address without a port was accepted")
	}
}

func TestLiveServersEndpointsAndURLs(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	lease := func(name, u string, renewedAgo time.Duration) coordinationv1.Lease {
		return coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: ServerLeasePrefix + name, Annotations: map[string]string{ServerURLAnnotation: u}},
			Spec: coordinationv1.LeaseSpec{
				RenewTime:            &metav1.MicroTime{Time: now.Add(-renewedAgo)},
				LeaseDurationSeconds: ptr.To(int32(15)),
			},
		}
	}
	leases := []coordinationv1.Lease{
		lease("c", "https://10.0.0.3:6443", time.Second),
		lease("a", "https://10.0.0.1:6443", 14*time.Second),
		lease("dead", "https://10.0.0.9:6443", 15*time.Second), // expired exactly now
		lease("b", "https://10.0.0.2:7443", 0),
		lease("named", "https://server.example:6443", 0), // no IP: not an endpoint
		{ObjectMeta: metav1.ObjectMeta{Name: ServerLeasePrefix + "no-url"}},
	}
	live := liveServers(leases, now)
	var names []string
	for _, s := range live {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "a,b,c,named"; got != want {
		t.Fatalf("live servers = %s, want %s", got, want)
	}
	wantSubsets := []corev1.EndpointSubset{
		{
			Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.3"}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: 6443, Protocol: corev1.ProtocolTCP}},
		},
		{
			Addresses: []corev1.EndpointAddress{{IP: "10.0.0.2"}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: 7443, Protocol: corev1.ProtocolTCP}},
		},
	}
	if got := endpointSubsets(live); !apiequality.Semantic.DeepEqual(got, wantSubsets) {
		t.Errorf("endpointSubsets = %+v\nwant %+v", got, wantSubsets)
	}
	if got, want := serverURLs(live), "https://10.0.0.1:6443,https://10.0.0.2:7443,https://10.0.0.3:6443,https://server.example:6443"; got != want {
		t.Errorf("serverURLs = %s\nwant %s", got, want)
	}
	if got := endpointSubsets(nil); got != nil {
		t.Errorf("endpointSubsets(nil) = %v, want none", got)
	}
	slices := endpointSlices(wantSubsets)
	if len(slices) != 2 || slices[0].Name != "kubernetes" || slices[1].Name != "kubernetes-7443" {
		t.Fatalf("endpointSlices = %+v, want kubernetes and kubernetes-7443", slices)
	}
	if got := slices[0]; got.Labels[discoveryv1.LabelServiceName] != "kubernetes" || got.AddressType != discoveryv1.AddressTypeIPv4 ||
		len(got.Endpoints) != 2 || got.Endpoints[1].Addresses[0] != "10.0.0.3" || !*got.Endpoints[1].Conditions.Ready ||
		len(got.Ports) != 1 || *got.Ports[0].Port != 6443 || *got.Ports[0].Name != "https" {
		t.Errorf("first slice = %+v", got)
	}
	v6 := endpointSlices(endpointSubsets([]liveServer{{Name: "a", URL: "https://[fd00::1]:6443"}}))
	if len(v6) != 1 || v6[0].AddressType != discoveryv1.AddressTypeIPv6 || v6[0].Endpoints[0].Addresses[0] != "fd00::1" {
		t.Errorf("IPv6 slice = %+v", v6)
	}
}

func TestInitialCluster(t *testing.T) {
	members := []*etcdserverpb.Member{
		{ID: 1, Name: "s1", PeerURLs: []string{"https://10.0.0.1:6444"}},
		{ID: 2, Name: "", PeerURLs: []string{"https://10.0.0.2:6444"}},
	}
	if got, want := initialCluster(members, 2, "s2"), "s1=https://10.0.0.1:6444,s2=https://10.0.0.2:6444"; got != want {
		t.Errorf("initialCluster = %s, want %s", got, want)
	}
}

func TestEnsureServerName(t *testing.T) {
	path := filepath.Join(t.TempDir(), ServerNameFile)
	name, err := ensureServerName(path, "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := ensureServerName(path, "")
	if err != nil || again != name {
		t.Fatalf("second call = %q, %v; want the stored %q", again, err, name)
	}
	if got, err := ensureServerName(path, "given"); err != nil || got != "given" {
		t.Errorf("explicit name = %q, %v", got, err)
	}
	if _, err := ensureServerName(path, "Not_Valid"); err == nil {
		t.Error("an invalid name was accepted")
	}
}

// startWith runs a control plane with cfg (DataDir, Listen, Version, Logger
// and Ready filled in) and waits until it is ready.
func startWith(t *testing.T, dir string, cfg Config) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	cfg.DataDir, cfg.Listen, cfg.Version, cfg.Logger = dir, "127.0.0.1:0", "v1.37.2-test", testLogger(t)
	cfg.Ready = func(i Info) { ready <- i }
	go func() { done <- Run(ctx, cfg) }()
	s := &started{cancel: cancel, done: done}
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.info = <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("control plane not ready within 2 minutes")
	}
	return s
}

// reservePort holds a free loopback port until released (or the test
// ends) for a listener that binds with SO_REUSEPORT.
func reservePort(t *testing.T) *embedded.PortReservation {
	t.Helper()
	r, err := embedded.ReservePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	return r
}

func TestJoinRemoveAndTokenChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two control planes")
	}
	dirA := filepath.Join(t.TempDir(), "a")
	a := startWith(t, dirA, Config{Cluster: Cluster{Init: true, Name: "a"}, TLSSANs: []string{"lb.example", "10.9.9.9"}})
	block, _ := pem.Decode(readFile(t, filepath.Join(dirA, PKIDir, auth.ServerCertFile)))
	if block == nil {
		t.Fatal("no serving certificate")
	}
	serving, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, san := range []string{"lb.example", "10.9.9.9", "127.0.0.1"} {
		if err := serving.VerifyHostname(san); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	tok, err := auth.ParseJoinToken(a.info.JoinToken)
	if err != nil {
		t.Fatalf("join token %q: %v", a.info.JoinToken, err)
	}
	if stored := strings.TrimSpace(string(readFile(t, filepath.Join(dirA, JoinTokenFile)))); stored != a.info.JoinToken {
		t.Errorf("DataDir/join-token = %q, want the printed %q", stored, a.info.JoinToken)
	}
	ctx := context.Background()

	// A token pinning another CA: refused before any secret is sent, at once.
	bad := tok
	bad.CAHash = strings.Repeat("0", 64)
	if _, err := requestJoin(ctx, a.info.URL, bad, joinRequest{Name: "x"}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("join with another CA's hash: err = %v, want a CA mismatch", err)
	}
	// The right CA, a wrong secret: 401, not retried.
	bad = tok
	bad.Secret = "wrong"
	if _, err := requestJoin(ctx, a.info.URL, bad, joinRequest{Name: "x"}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("join with a wrong secret: err = %v, want 401", err)
	}
	// A plain http peer URL is refused.
	if _, err := requestJoin(ctx, a.info.URL, tok, joinRequest{Name: "x", PeerURL: "http://127.0.0.1:1"}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("join with an http peer URL: err = %v, want 400", err)
	}

	// A second server joins: same CA and admin token, a voting member.
	dirB := filepath.Join(t.TempDir(), "b")
	b := startWith(t, dirB, Config{Cluster: Cluster{JoinURL: a.info.URL, Token: a.info.JoinToken, Name: "b"}})
	for _, f := range []string{filepath.Join(PKIDir, auth.CACertFile), TokenFile, JoinTokenFile} {
		if string(readFile(t, filepath.Join(dirA, f))) != string(readFile(t, filepath.Join(dirB, f))) {
			t.Errorf("%s differs between the servers", f)
		}
	}
	members, err := ListMembers(ctx, b.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[0].Name != "a" || members[1].Name != "b" || members[0].Learner || members[1].Learner {
		t.Fatalf("members = %+v, want voters a and b", members)
	}
	kube, err := kubernetes.NewForConfig(a.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, func() error {
		cm, err := kube.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, ServersConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if want := serverURLs([]liveServer{{URL: a.info.URL}, {URL: b.info.URL}}); cm.Data[ServersKey] != want {
			return fmt.Errorf("servers = %q, want %q", cm.Data[ServersKey], want)
		}
		return nil
	})
	// Joining again under a taken name with another peer URL is refused.
	if _, err := requestJoin(ctx, a.info.URL, tok, joinRequest{Name: "b", PeerURL: "https://127.0.0.1:1"}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("join under a taken name: err = %v, want 409", err)
	}

	// Removing b stops it, with a reason.
	if err := RemoveMember(ctx, a.info.RestConfig, "b"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err == nil || !strings.Contains(err.Error(), "removed") {
			t.Errorf("removed server's Run = %v, want an error saying it was removed", err)
		}
		b.cancel()
		b.cancel = nil
	case <-time.After(30 * time.Second):
		t.Fatal("removed server still running after 30s")
	}
	if err := RemoveMember(ctx, a.info.RestConfig, "b"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("removing b again: err = %v, want 404", err)
	}
	if _, err := kube.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "alone"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("write on a after removing b: %v", err)
	}
	// Only the admin manages members.
	anon := *a.info.RestConfig
	anon.BearerToken = ""
	if _, err := ListMembers(ctx, &anon); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("members without credentials: err = %v, want 401", err)
	}
}

func TestExternalEtcdWithClientTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and a control plane")
	}
	// An etcd that requires client certificates of its own CA.
	pki := t.TempDir()
	ca, err := auth.EnsureCA(pki)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := ca.EnsureServingCert(pki, nil)
	if err != nil {
		t.Fatal(err)
	}
	clientPEM, clientKeyPEM, err := ca.IssueClientCert("drover", nil)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := filepath.Join(pki, "client.crt"), filepath.Join(pki, "client.key")
	if err := os.WriteFile(clientCert, clientPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clientKey, clientKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(pki, auth.CACertFile)
	ecfg := embed.NewConfig()
	ecfg.Dir = t.TempDir()
	ecfg.LogLevel = "error"
	// Ports held until etcd, binding with SO_REUSEPORT, has them: none is
	// taken in between.
	clientPort, peerPort := reservePort(t), reservePort(t)
	ecfg.SocketOpts.ReusePort = true
	clientURL := url.URL{Scheme: "https", Host: clientPort.Addr()}
	peerURL := url.URL{Scheme: "http", Host: peerPort.Addr()}
	ecfg.ListenClientUrls, ecfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	ecfg.ListenPeerUrls, ecfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	ecfg.InitialCluster = ecfg.InitialClusterFromName(ecfg.Name)
	ecfg.ClientTLSInfo.CertFile, ecfg.ClientTLSInfo.KeyFile = srvCert, srvKey
	ecfg.ClientTLSInfo.TrustedCAFile, ecfg.ClientTLSInfo.ClientCertAuth = caFile, true
	e, err := embed.StartEtcd(ecfg)
	clientPort.Release()
	peerPort.Release()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		t.Fatal("etcd not ready")
	}

	// Without a client certificate the server refuses to start.
	err = Run(context.Background(), Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: testLogger(t),
		EtcdEndpoints: []string{clientURL.String()}, EtcdTLS: EtcdTLS{CAFile: caFile},
	})
	if err == nil || !strings.Contains(err.Error(), "unhealthy") {
		t.Errorf("Run without a client certificate = %v, want etcd unhealthy", err)
	}
	// With one it serves.
	s := startWith(t, t.TempDir(), Config{
		EtcdEndpoints: []string{clientURL.String()},
		EtcdTLS:       EtcdTLS{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey},
	})
	assertSystemNamespaces(t, s.info.KubeconfigPath)
}

func TestMemberConfig(t *testing.T) {
	base := embedded.Config{DataDir: "/d/etcd"}
	tlsFiles := &embedded.TLSFiles{CertFile: "p.crt", KeyFile: "p.key", TrustedCAFile: "ca.crt"}
	setup := func(mode clusterMode) *clusterSetup {
		return &clusterSetup{mode: mode, name: "s1", peerURL: "https://10.0.0.1:6444", listen: "https://0.0.0.0:6444",
			initial: "s0=https://10.0.0.9:6444,s1=https://10.0.0.1:6444", log: testLogger(t)}
	}
	// Without HA flags the member is exactly as before: loopback, no peer TLS.
	for _, mode := range []clusterMode{modeSingle, modeExternal} {
		if got := setup(mode).memberConfig(base, nil); !reflect.DeepEqual(got, base) {
			t.Errorf("mode %v: memberConfig = %+v, want the base %+v", mode, got, base)
		}
	}
	for _, tc := range []struct {
		mode             clusterMode
		state, initial   string
		longStartTimeout bool
	}{
		{modeInit, embedded.ClusterStateNew, "s0=https://10.0.0.9:6444,s1=https://10.0.0.1:6444", false},
		{modeJoin, embedded.ClusterStateExisting, "s0=https://10.0.0.9:6444,s1=https://10.0.0.1:6444", false},
		{modeRestart, embedded.ClusterStateExisting, "s1=https://10.0.0.1:6444", true},
	} {
		got := setup(tc.mode).memberConfig(base, tlsFiles)
		if got.Name != "s1" || got.PeerURL != "https://10.0.0.1:6444" || got.ListenPeerURL != "https://0.0.0.0:6444" || got.PeerTLS != tlsFiles {
			t.Errorf("mode %v: member %+v lacks the HA name, peer URLs or TLS", tc.mode, got)
		}
		if got.ClusterState != tc.state || got.InitialCluster != tc.initial {
			t.Errorf("mode %v: state %q initial %q; want %q %q", tc.mode, got.ClusterState, got.InitialCluster, tc.state, tc.initial)
		}
		if (got.StartTimeout > embedded.DefaultStartTimeout) != tc.longStartTimeout {
			t.Errorf("mode %v: start timeout %v", tc.mode, got.StartTimeout)
		}
	}
}

func TestConvertSingleServerToHA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control planes")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a")
	single := startWith(t, dir, Config{})
	kube, err := kubernetes.NewForConfig(single.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if single.info.JoinToken != "" {
		t.Errorf("a single server printed a join token")
	}
	single.stop(t)

	a := startWith(t, dir, Config{Cluster: Cluster{Init: true}})
	if a.info.JoinToken == "" {
		t.Fatal("converted server has no join token")
	}
	kube, err = kubernetes.NewForConfig(a.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("object from before the conversion: %v", err)
	}
	// Another server joins over peer TLS.
	b := startWith(t, filepath.Join(t.TempDir(), "b"), Config{Cluster: Cluster{JoinURL: a.info.URL, Token: a.info.JoinToken, Name: "b"}})
	members, err := ListMembers(ctx, b.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 {
		t.Fatalf("members = %+v, want 2", members)
	}
	nameA := strings.TrimSpace(string(readFile(t, filepath.Join(dir, ServerNameFile))))
	if members[0].Name != nameA && members[1].Name != nameA {
		t.Errorf("members = %+v, want one named after the converted server, %s", members, nameA)
	}
	for _, m := range members {
		if m.Learner || len(m.PeerURLs) != 1 || !strings.HasPrefix(m.PeerURLs[0], "https://") {
			t.Errorf("member %+v: want a voter with an https peer URL", m)
		}
	}
	kubeB, err := kubernetes.NewForConfig(b.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubeB.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("joined server does not see the converted server's objects: %v", err)
	}
	// The converted server restarts without flags, still in HA (b keeps
	// the quorum of two).
	a.stop(t)
	again := startWith(t, dir, Config{})
	if again.info.JoinToken != a.info.JoinToken {
		t.Errorf("restarted without flags: join token %q, want %q", again.info.JoinToken, a.info.JoinToken)
	}
}

// TestServersOnExternalEtcd: a second server on the same external etcd gets
// the cluster's credentials with --join, both are listed, and one stopping
// cleanly leaves the list at once rather than when its lease expires.
func TestServersOnExternalEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and two control planes")
	}
	ctx := context.Background()
	member, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Close() }) // after the servers stop
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := startWith(t, dirA, Config{EtcdEndpoints: member.Endpoints(), Cluster: Cluster{Name: "a"}})
	if a.info.JoinToken == "" {
		t.Fatal("a server on external etcd prints no join token")
	}
	b := startWith(t, dirB, Config{EtcdEndpoints: member.Endpoints(), Cluster: Cluster{Name: "b", JoinURL: a.info.URL, Token: a.info.JoinToken}})
	for _, f := range []string{filepath.Join(PKIDir, auth.CACertFile), TokenFile} {
		if string(readFile(t, filepath.Join(dirA, f))) != string(readFile(t, filepath.Join(dirB, f))) {
			t.Errorf("%s differs between the servers", f)
		}
	}
	if _, err := ListMembers(ctx, a.info.RestConfig); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("members on external etcd: err = %v, want 404", err)
	}
	kube, err := kubernetes.NewForConfig(a.info.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	servers := func(want string) func() error {
		return func() error {
			cm, err := kube.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, ServersConfigMap, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data[ServersKey] != want {
				return fmt.Errorf("servers = %q, want %q", cm.Data[ServersKey], want)
			}
			return nil
		}
	}
	waitUntil(t, 30*time.Second, servers(serverURLs([]liveServer{{URL: a.info.URL}, {URL: b.info.URL}})))
	// a's admin kubeconfig names b too (cluster and context drover@b), for clients to fail over to.
	kubeconfigNamesB := func(want bool) func() error {
		return func() error {
			kc, err := clientcmd.LoadFromFile(a.info.KubeconfigPath)
			if err != nil {
				return err
			}
			c, ctx := kc.Clusters["drover@b"], kc.Contexts["drover@b"]
			if got := c != nil && c.Server == b.info.URL && ctx != nil && ctx.Cluster == "drover@b"; got != want || kc.CurrentContext != "drover" {
				return fmt.Errorf("a's kubeconfig: current context %q, cluster drover@b %+v, context %+v; want b listed: %v", kc.CurrentContext, c, ctx, want)
			}
			return nil
		}
	}
	waitUntil(t, 30*time.Second, kubeconfigNamesB(true))
	b.stop(t)
	// Well before b's lease could expire (15s after its last renewal).
	waitUntil(t, 8*time.Second, servers(a.info.URL))
	waitUntil(t, 8*time.Second, kubeconfigNamesB(false))
	if _, err := kube.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, ServerLeasePrefix+"b", metav1.GetOptions{}); err == nil {
		t.Error("b's lease is still there after b stopped")
	}
}
