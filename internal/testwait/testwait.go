// Package testwait is how tests wait for something that happens by itself:
// a server's readiness, a device's disconnection, a watcher catching up.
// Tests poll a condition; the deadline only bounds a hang, since a busy
// machine (CI under the race detector beside other work) can be ten times
// slower than a quiet one, and a test must not fail for being slow.
package testwait

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Hang is how long a test waits for what should happen at once before it
// calls it a hang.
const Hang = 2 * time.Minute

// Poll is how often For checks its condition.
const Poll = 5 * time.Millisecond

// Deadline returns the time after which a wait that starts now is a hang.
func Deadline() time.Time { return time.Now().Add(Hang) }

// For polls cond until it holds; after Hang it fails tb, naming what it
// waited for.
func For(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := Deadline(); !cond(); time.Sleep(Poll) {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %s for %s", Hang, what)
		}
	}
}

// Buffer collects what a process or a logger writes while a test waits on
// it (testwait.For a log line): a bytes.Buffer safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
