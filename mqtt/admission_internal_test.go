package mqtt

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert/internal/testwait"
)

// A handshake's head read began after the handshake did: one that arrives
// while a read runs waits for the next, which it shares with every
// handshake that arrived meanwhile.
func TestHeadReadsCoalesceAfterArrival(t *testing.T) {
	var (
		h       headReads
		calls   atomic.Int64
		release = make(chan struct{})
	)
	read := func(context.Context) (int64, error) {
		n := calls.Add(1)
		if n == 1 {
			<-release
		}
		return n, nil // the head "read" by the n-th call
	}
	ctx := context.Background()
	first := make(chan int64)
	go func() {
		head, _ := h.read(ctx, time.Now(), read)
		first <- head
	}()
	testwait.For(t, "the first read to run", func() bool { return calls.Load() == 1 })

	const waiters = 20
	var wg sync.WaitGroup
	heads := make(chan int64, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			head, err := h.read(ctx, time.Now(), read)
			if err != nil {
				t.Error(err)
			}
			heads <- head
		}()
	}
	// Every handshake must have arrived while the first read runs; one
	// that arrives after it ended rightly needs a read of its own.
	testwait.For(t, "every handshake to wait for the next read", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.next != nil && h.next.waits == waiters
	})
	close(release)
	if head := <-first; head != 1 {
		t.Fatalf("first handshake got head %d, want 1", head)
	}
	wg.Wait()
	close(heads)
	for head := range heads {
		if head < 2 {
			t.Fatalf("a handshake got head %d, from a read that began before it", head)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d head reads for %d handshakes, want 2: the first and one shared by the rest", n, waiters+1)
	}
}

// A handshake that began before the latest read began takes that read's
// head without a read of its own; one that began after it needs a new one.
func TestHeadReadsServeEarlierHandshakes(t *testing.T) {
	var (
		h     headReads
		calls atomic.Int64
	)
	read := func(context.Context) (int64, error) { return calls.Add(1), nil }
	ctx := context.Background()
	early := time.Now()
	if head, err := h.read(ctx, time.Now(), read); head != 1 || err != nil {
		t.Fatalf("first read: %d %v", head, err)
	}
	for range 5 {
		if head, _ := h.read(ctx, early, read); head != 1 {
			t.Fatalf("a handshake begun before the read got head %d, want 1", head)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d reads, want 1", n)
	}
	later := time.Now()
	if head, _ := h.read(ctx, later, read); head != 2 {
		t.Fatalf("a handshake begun after the read got head %d, want a new read's 2", head)
	}
	// A failed read serves nobody later.
	fail := func(context.Context) (int64, error) { return 0, context.DeadlineExceeded }
	if _, err := h.read(ctx, time.Now(), fail); err == nil {
		t.Fatal("want the read's error")
	}
	if head, _ := h.read(ctx, later, read); head != 2 {
		t.Fatalf("after a failed read: head %d, want the last good read's 2", head)
	}
}
