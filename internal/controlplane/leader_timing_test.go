package controlplane

import (
	"net/http"
	"strings"
	"testing"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestLeaderElectionValidate: zero fields are the defaults; a renew
// deadline not shorter than the lease, a retry period not well inside the
// renew deadline, or a negative duration is refused with the flag named.
func TestLeaderElectionValidate(t *testing.T) {
	for _, tc := range []struct {
		le   LeaderElection
		want string // "" means valid
	}{
		{LeaderElection{}, ""},
		{LeaderElection{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}, ""},
		{LeaderElection{RenewDeadline: 8 * time.Second}, "--leader-elect-renew-deadline < --leader-elect-lease-duration"},
		{LeaderElection{LeaseDuration: 5 * time.Second}, "renew deadline 6s must be shorter than the lease duration 5s"},
		{LeaderElection{RetryPeriod: 5 * time.Second}, "--leader-elect-renew-deadline > --leader-elect-retry-period"},
		{LeaderElection{RetryPeriod: -time.Second}, "negative"},
	} {
		err := tc.le.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want valid", tc.le, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error mentioning %q", tc.le, err, tc.want)
		}
	}
	if err := (Config{NodeMonitorGracePeriod: -time.Second}).ValidateTimings(); err == nil || !strings.Contains(err.Error(), "--node-monitor-grace-period") {
		t.Errorf("negative grace period: %v, want an error naming --node-monitor-grace-period", err)
	}
	if err := (Config{}).ValidateTimings(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// baseTransport unwraps client-go's round trippers (auth, user agent,
// the TLS cache's tracker) down to the *http.Transport that owns the
// connections.
func baseTransport(t *testing.T, kube kubernetes.Interface) *http.Transport {
	t.Helper()
	rt := kube.CoordinationV1().RESTClient().(*rest.RESTClient).Client.Transport
	for {
		switch v := rt.(type) {
		case *http.Transport:
			return v
		case utilnet.RoundTripperWrapper:
			rt = v.WrappedRoundTripper()
		default:
			t.Fatalf("round tripper %T neither an *http.Transport nor a wrapper", rt)
		}
	}
}

// TestLeaderElectionClientHasItsOwnConnection: client-go gives clients
// of equal TLS settings one cached transport (so one HTTP/2 connection);
// the leader elector's client must not be among them.
func TestLeaderElectionClientHasItsOwnConnection(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "t", TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 2000, Burst: 4000}
	a, err := newClients(cfg, cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newClients(rest.CopyConfig(cfg), cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	shared := baseTransport(t, a.Kube)
	if baseTransport(t, b.Kube) != shared {
		t.Fatal("two component clients of one config got different transports: the premise (client-go's transport cache) changed")
	}
	l1, err := leaderElectionClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := leaderElectionClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := baseTransport(t, l1), baseTransport(t, l2)
	if t1 == shared || t2 == shared {
		t.Fatal("the leader election client shares the components' transport")
	}
	if t1 == t2 {
		t.Error("two leader election clients share a transport")
	}
	if t1.TLSClientConfig == nil || !t1.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("leader election transport lost the TLS settings: %+v", t1.TLSClientConfig)
	}
	if cfg.Dial != nil || cfg.UserAgent != "" {
		t.Error("leaderElectionClient changed its argument")
	}
}
