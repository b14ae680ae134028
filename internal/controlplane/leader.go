package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderLeaseName is the Lease in kube-system that decides which server's
// controllers and scheduler act when several servers share one etcd.
const LeaderLeaseName = "drover-controllers"

// leaderElectionName names the component that runs the leader-only ones.
const leaderElectionName = "leader-election"

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
		le.LeaseDuration = 8 * time.Second
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = 6 * time.Second
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = time.Second
	}
	if le.Identity == "" {
		host, _ := os.Hostname()
		le.Identity = host + "_" + string(uuid.NewUUID())
	}
	return le
}

// leaderComponent runs comps only while this server holds the leader
// lease. Losing the lease stops them; the server then campaigns again
// once they have all returned, so two leaders' controllers never overlap
// in one process. It returns nil when ctx is done, or the first error a
// component returns while leading.
func leaderComponent(cfg LeaderElection, comps []Component) Component {
	cfg = cfg.withDefaults()
	return Component{Name: leaderElectionName, Run: func(ctx context.Context, clients Clients, log *slog.Logger) error {
		elog := log.With("component", leaderElectionName, "identity", cfg.Identity)
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: LeaderLeaseName},
			Client:     clients.Kube.CoordinationV1(),
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
						shared := newTermInformers(clients.Kube, sharers, leadCtx.Done())
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
			cancel()
			wg.Wait()
			failed = <-firstErr
		}
		return failed
	}}
}
