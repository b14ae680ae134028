package agent

import "time"

// Backoff is the CrashLoopBackOff policy: how long a container that keeps
// exiting waits before each restart. As the kubelet does it, the first
// restart is immediate, then the delay starts at Base and doubles up to
// Cap; a container that ran for at least Reset before exiting starts over.
type Backoff struct {
	Base  time.Duration
	Cap   time.Duration
	Reset time.Duration
}

// BackoffEntry is what the agent remembers about one container's exits.
// The zero value is a container that has not exited yet.
type BackoffEntry struct {
	// Exit is the finish time of the exit the entry accounts for.
	Exit time.Time
	// Crashes counts consecutive exits that came before a stable run.
	Crashes int
}

// delay is the wait before the restart that follows the n-th consecutive
// exit: 0, Base, 2*Base, ... capped at Cap.
func (b Backoff) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := b.Base
	for i := 2; i < n && d < b.Cap; i++ {
		d *= 2
	}
	return min(d, b.Cap)
}

// RestartAt returns when a container that ran from started to finished may
// be restarted, and the entry to keep. Calling it again for the same exit
// gives the same answer.
func (b Backoff) RestartAt(e BackoffEntry, started, finished time.Time) (time.Time, time.Duration, BackoffEntry) {
	if e.Crashes > 0 && e.Exit.Equal(finished) {
		d := b.delay(e.Crashes)
		return finished.Add(d), d, e
	}
	n := e.Crashes + 1
	if !started.IsZero() && finished.Sub(started) >= b.Reset {
		n = 1
	}
	e = BackoffEntry{Exit: finished, Crashes: n}
	d := b.delay(n)
	return finished.Add(d), d, e
}
