package logwriter

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fleetcert/fleetcert/internal/testwait"
)

// gate is an underlying writer whose calls wait for release while held,
// and which records each call.
type gate struct {
	mu      sync.Mutex
	calls   []string
	held    bool
	entered chan struct{} // told each time a call starts
	release chan struct{}
	err     error
}

func newGate(held bool) *gate {
	return &gate{held: held, entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held {
		<-g.release
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, string(p))
	if g.err != nil {
		return 0, g.err
	}
	return len(p), nil
}

func (g *gate) open() {
	g.mu.Lock()
	g.held = false
	g.mu.Unlock()
	close(g.release)
}

func (g *gate) written() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

// Lines written while a call runs share the next call, in order.
func TestWriterBatches(t *testing.T) {
	g := newGate(true)
	lw := New(g)
	fmt.Fprintf(lw, "line 0\n")
	<-g.entered // the first line's call runs, and waits
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(lw, "line %d\n", i)
	}
	g.open()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	calls := g.written()
	if len(calls) != 2 || calls[0] != "line 0\n" {
		t.Fatalf("calls %q, want line 0 alone, then the other 50 in one", calls)
	}
	var want strings.Builder
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if calls[1] != want.String() {
		t.Errorf("second call %q, want lines 1 to 50 in order", calls[1])
	}
}

// Concurrent writers' lines all arrive, whole, each writer's in its order.
func TestWriterConcurrentLines(t *testing.T) {
	var out testwait.Buffer
	lw := New(&out)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(lw, "writer=%d line=%d %s\n", w, i, strings.Repeat("x", i%40+1))
			}
		})
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var w, i int
		var pad string
		if _, err := fmt.Sscanf(l, "writer=%d line=%d %s", &w, &i, &pad); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if i != next[w] || len(pad) != i%40+1 {
			t.Fatalf("line %q: want writer %d's line %d, whole", l, w, next[w])
		}
		next[w]++
	}
}

// A Writer holds at most about maxBuffered bytes: beyond, Write waits for
// the underlying writer.
func TestWriterBounded(t *testing.T) {
	g := newGate(true)
	lw := New(g)
	lw.maxBuffered = 100
	fmt.Fprintf(lw, "first\n")
	<-g.entered
	line := strings.Repeat("y", 29) + "\n" // 30 bytes
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range 20 {
			lw.Write([]byte(line))
		}
	}()
	// Four lines fit (120 bytes ≥ 100 after the fourth); the fifth waits.
	testwait.For(t, "the writer to wait for room", func() bool {
		lw.mu.Lock()
		defer lw.mu.Unlock()
		return len(lw.buf) == 4*len(line)
	})
	g.open()
	<-wrote
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, c := range g.written() {
		if i > 0 && len(c) > 4*len(line) {
			t.Errorf("call %d wrote %d bytes, want at most %d", i, len(c), 4*len(line))
		}
		total += len(c)
	}
	if want := len("first\n") + 20*len(line); total != want {
		t.Errorf("%d bytes written, want %d", total, want)
	}
}

// Close returns the underlying writer's first error, and Writes after it
// go straight through, after the lines buffered before.
func TestWriterClose(t *testing.T) {
	g := newGate(false)
	g.err = errors.New("disk full")
	lw := New(g)
	fmt.Fprintf(lw, "a\n")
	if err := lw.Close(); err == nil || err.Error() != "disk full" {
		t.Errorf("Close: %v, want the underlying error", err)
	}
	g.mu.Lock()
	g.err = nil
	g.mu.Unlock()
	if n, err := lw.Write([]byte("b\n")); n != 2 || err != nil {
		t.Errorf("Write after Close: %d, %v", n, err)
	}
	if got := strings.Join(g.written(), ""); got != "a\nb\n" {
		t.Errorf("written %q, want a then b", got)
	}
	if err := lw.Close(); err == nil {
		t.Error("second Close: nil, want the first error again")
	}
}
