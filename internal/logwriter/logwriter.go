// Package logwriter hands log lines written concurrently to an io.Writer in
// batches: the server's one line per request became one write system call
// per request, 7 % of the server's CPU under 16 clients describing
// certificates (BENCHMARKS.md, "Log lines written in batches").
package logwriter

import (
	"io"
	"sync"
	"time"
)

// DefaultMaxBuffered is how many bytes of lines a Writer holds before
// Write waits for them to be written.
const DefaultMaxBuffered = 256 << 10

// Interval is the least time between two calls to the underlying writer.
// Woken at once for each line, the goroutine wrote nearly every line
// alone (0.83 calls per request under load): on two cores there was
// always one free to run it. So a line that comes within Interval of the
// last call waits for the rest of it, with the lines after it.
const Interval = time.Millisecond

// Writer is an io.Writer for log lines (each Write one or more whole
// lines, as log/slog's handlers write them) that writes them to the
// underlying writer from a goroutine of its own, one call with every line
// written since its last, at most one call per Interval. A lone line is
// written at once; lines written less than Interval after a call share the
// next one. Lines keep the order of their Writes and are never split.
//
// When MaxBuffered bytes wait (the underlying writer is slow or blocked),
// Write waits too, as a Write straight to it would. Close writes what is
// left; Writes after Close go straight to the underlying writer.
type Writer struct {
	w           io.Writer
	maxBuffered int

	mu      sync.Mutex
	drained *sync.Cond // signalled after each call to w
	buf     []byte     // lines not yet handed to w
	closed  bool
	err     error         // the first error of w
	wake    chan struct{} // buffered: lines wait, or Close was called
	done    chan struct{} // closed when the goroutine has ended
}

// New returns a Writer over w, with its goroutine started.
func New(w io.Writer) *Writer {
	lw := &Writer{w: w, maxBuffered: DefaultMaxBuffered,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	lw.drained = sync.NewCond(&lw.mu)
	go lw.run()
	return lw
}

// Write queues p for the underlying writer. It returns len(p) and nil,
// or the underlying writer's error once it has failed.
func (lw *Writer) Write(p []byte) (int, error) {
	lw.mu.Lock()
	for len(lw.buf) >= lw.maxBuffered && !lw.closed {
		lw.drained.Wait()
	}
	if lw.closed {
		lw.mu.Unlock()
		<-lw.done // after the lines buffered before Close
		return lw.w.Write(p)
	}
	lw.buf = append(lw.buf, p...)
	err := lw.err
	lw.mu.Unlock()
	select {
	case lw.wake <- struct{}{}:
	default: // already woken: the lines go with the next call
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// run writes what is buffered, one call at a time, until Close.
func (lw *Writer) run() {
	defer close(lw.done)
	var spare []byte
	var last time.Time // of the last call to w
	for range lw.wake {
		if d := Interval - time.Since(last); d > 0 {
			time.Sleep(d)
		}
		lw.mu.Lock()
		for len(lw.buf) > 0 {
			batch := lw.buf
			lw.buf = spare[:0]
			lw.mu.Unlock()
			_, err := lw.w.Write(batch)
			last = time.Now()
			lw.mu.Lock()
			if err != nil && lw.err == nil {
				lw.err = err
			}
			spare = batch
			lw.drained.Broadcast()
		}
		closed := lw.closed
		lw.mu.Unlock()
		if closed {
			return
		}
	}
}

// Close writes the lines still buffered and ends the goroutine. It returns
// the first error of the underlying writer.
func (lw *Writer) Close() error {
	lw.mu.Lock()
	if lw.closed {
		err := lw.err
		lw.mu.Unlock()
		return err
	}
	lw.closed = true
	lw.drained.Broadcast() // Writes waiting for room go straight to w, after the rest
	lw.mu.Unlock()
	select {
	case lw.wake <- struct{}{}:
	default:
	}
	<-lw.done
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.err
}
