package agent_test

import (
	"fmt"
	"time"

	"github.com/drover/drover/internal/agent"
)

// A container that crashes one second after each start waits longer and
// longer before each restart, up to the cap.
func ExampleBackoff() {
	b := agent.Backoff{Base: 10 * time.Second, Cap: time.Minute, Reset: 10 * time.Minute}
	var e agent.BackoffEntry
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 6 {
		at, delay, next := b.RestartAt(e, start, start.Add(time.Second))
		fmt.Print(delay, " ")
		e, start = next, at
	}
	fmt.Println()
	// Output: 0s 10s 20s 40s 1m0s 1m0s
}
