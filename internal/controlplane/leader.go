package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/drover/drover/internal/inprocess"
	"github.com/drover/drover/internal/kubeclient"
)

// LeaderLeaseName is the Lease in kube-system that decides which server's
// controllers and scheduler act when several servers share one etcd.
const LeaderLeaseName = "drover-controllers"

// leaderElectionName names the component that runs the leader-only ones.
const leaderElectionName = "leader-election"

// Defaults of LeaderElection's timings (upstream's are 15s, 10s and 2s).
const (
	DefaultLeaseDuration = 8 * time.Second
	DefaultRenewDeadline = 6 * time.Second
	DefaultRetryPeriod   = time.Second
)

// LeaderElection tunes the election among servers. Zero fields take the
// defaults: a dead leader is replaced within LeaseDuration + RetryPeriod,
// a cleanly stopped one at once (it releases the lease).
type LeaderElection struct {
	LeaseDuration time.Duration // default 8s (upstream 15s)
	RenewDeadline time.Duration // default 6s (upstream 10s)
	RetryPeriod   time.Duration // default 1s (upstream 2s)
	// Identity names this server in the lease; default hostname_uuid.
	Identity string
}

func (le LeaderElection) withDefaults() LeaderElection {
	if le.LeaseDuration == 0 {
		le.LeaseDuration = DefaultLeaseDuration
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = DefaultRenewDeadline
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = DefaultRetryPeriod
	}
	if le.Identity == "" {
		host, _ := os.Hostname()
		le.Identity = host + "_" + string(uuid.NewUUID())
	}
	return le
}

// Validate checks the timings (zero fields as their defaults) as
// client-go's elector would, with the upstream flag names in the message:
// each positive, the renew deadline shorter than the lease, and the retry
// period (with client-go's jitter of 1.2) shorter than the renew deadline.
func (le LeaderElection) Validate() error {
	if le.LeaseDuration < 0 || le.RenewDeadline < 0 || le.RetryPeriod < 0 {
		return fmt.Errorf("leader election: negative duration (lease %v, renew deadline %v, retry period %v)",
			le.LeaseDuration, le.RenewDeadline, le.RetryPeriod)
	}
	d := le.withDefaults()
	if d.RenewDeadline >= d.LeaseDuration {
		return fmt.Errorf("leader election: renew deadline %v must be shorter than the lease duration %v (--leader-elect-renew-deadline < --leader-elect-lease-duration)",
			d.RenewDeadline, d.LeaseDuration)
	}
	if d.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(d.RetryPeriod)) {
		return fmt.Errorf("leader election: renew deadline %v must be longer than %g × the retry period %v (--leader-elect-renew-deadline > --leader-elect-retry-period)",
			d.RenewDeadline, leaderelection.JitterFactor, d.RetryPeriod)
	}
	return nil
}

// leaderElectionUserAgent names the elector's own client in the API
// server's logs and metrics.
const leaderElectionUserAgent = "drover-controlplane/leader-election"

// leaderElectionClient is a client for the leader lease alone, over a
// connection of its own: the in-process components share one HTTP/2
// connection (client-go caches transports by TLS configuration) whose
// streams and flow control a flood of their requests can hold up long
// enough for the leader to miss its renew deadline. A Dial function is
// what makes client-go build a new transport: its cache is keyed by the
// TLS settings and the address of the dial holder, which is made afresh
// for each client. It has its own rate limiter too. In process (the
// components' own transport), it gets its own transport for the same reason.
func leaderElectionClient(cfg *rest.Config) (kubernetes.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.UserAgent = leaderElectionUserAgent
	c.QPS, c.Burst = 20, 40 // a Get and an Update per retry period
	c.RateLimiter = nil
	c.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if t, ok := c.Transport.(*inprocess.Transport); ok {
		// In process there is no connection to hold it up, but the
		// components' transport bounds their requests at once: the
		// elector gets a transport of its own, unbounded, so that a
		// flood of theirs cannot delay its renewals either.
		c.Transport = &inprocess.Transport{Handler: t.Handler, BaseContext: t.BaseContext, Logger: t.Logger}
	}
	kube, err := kubernetes.NewForConfig(kubeclient.Protobuf(c))
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	return kube, nil
}

// leaderComponent runs comps only while this server holds the leader
// lease. Losing the lease stops them; the server then campaigns again
// once they have all returned, so two leaders' controllers never overlap
// in one process. It returns nil when ctx is done, or the first error a
// component returns while leading. released, if set, is called once the
// election has stopped for good, the lease released if it was held, so
// that the server can wait for that before it stops serving (the
// elector's connection is its own, and idle between renewals: closed
// first when the server shuts down).
func leaderComponent(cfg LeaderElection, comps []Component, released func()) Component {
	cfg = cfg.withDefaults()
	if released == nil {
		released = func() {}
	}
	return Component{Name: leaderElectionName, Run: func(ctx context.Context, clients Clients, log *slog.Logger) error {
		var once sync.Once
		defer once.Do(released)
		elog := log.With("component", leaderElectionName, "identity", cfg.Identity)
		lockClient := clients.Kube
		if clients.Config != nil {
			c, err := leaderElectionClient(clients.Config)
			if err != nil {
				return err
			}
			lockClient = c
		}
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: LeaderLeaseName},
			Client:     lockClient.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		}
		var failed error
		for ctx.Err() == nil && failed == nil {
			var wg sync.WaitGroup
			errs := make(chan error, len(comps))
			elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
				Lock:            lock,
				LeaseDuration:   cfg.LeaseDuration,
				RenewDeadline:   cfg.RenewDeadline,
				RetryPeriod:     cfg.RetryPeriod,
				ReleaseOnCancel: true,
				Name:            LeaderLeaseName,
				Callbacks: leaderelection.LeaderCallbacks{
					OnStartedLeading: func(leadCtx context.Context) {
						wg.Add(1)
						defer wg.Done()
						elog.Info("became leader: starting controllers")
						// One informer factory per term, shared by the
						// components that take it, stopped with the term.
						sharers := 0
						for _, c := range comps {
							if c.SharedInformers {
								sharers++
							}
						}
						shared := newTermInformers(clients.informerClient(), sharers, leadCtx.Done())
						termClients := clients
						termClients.Informers = shared
						var term sync.WaitGroup
						for _, c := range comps {
							term.Add(1)
							go func() {
								defer term.Done()
								err := c.Run(leadCtx, termClients, log)
								if leadCtx.Err() == nil {
									if err == nil {
										err = fmt.Errorf("exited")
									}
									errs <- fmt.Errorf("%s: %w", c.Name, err)
								}
							}()
						}
						term.Wait()
						shared.Shutdown() // the term's informers have stopped with leadCtx
					},
					OnStoppedLeading: func() { elog.Info("not leading: controllers stopped") },
					OnNewLeader: func(id string) {
						if id != cfg.Identity {
							elog.Info("another server leads", "leader", id)
						}
					},
				},
			})
			if err != nil {
				return fmt.Errorf("leader election: %w", err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			firstErr := make(chan error, 1)
			go func() {
				select {
				case err := <-errs:
					cancel()
					firstErr <- err
				case <-runCtx.Done():
					firstErr <- nil
				}
			}()
			elector.Run(runCtx) // returns when ctx is done or the lease is lost
			if ctx.Err() != nil {
				once.Do(released) // the lease is released: the controllers may still be stopping
			}
			cancel()
			wg.Wait()
			failed = <-firstErr
		}
		return failed
	}}
}
