package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The collector's headroom (--gc-headroom). Go starts a collection when the
// heap has grown by GOGC percent (100) of what the last one found live, and
// at the least by 4 MiB. A gateway with a small fleet keeps about 2 MiB
// live, while each new device connection allocates about 70 KiB, mostly in
// the TLS handshake: the collector then ran every 20 or so connections and
// took about a fifth of the CPU a connection costs (BENCHMARKS.md, "Device
// gateway", issue 15). The headroom lets the heap grow by at least that many
// bytes between collections: GOGC is raised while the live heap is small and
// is Go's own once the live heap exceeds the headroom, so a large registry
// (a million certificates' admission view) pays nothing more. The soft
// memory limit (--memory-limit) still bounds the whole heap.

// defaultGCHeadroom is what a gateway with a small fleet is given: the
// process may hold up to this much more memory than Go's defaults would.
const defaultGCHeadroom = 64 << 20

// maxGCPercent bounds the GOGC the headroom sets, for a heap that found
// almost nothing live.
const maxGCPercent = 100_000

// gcPercentFor is the GOGC that lets a heap with live bytes live grow by
// headroom bytes before the next collection, and never less than base.
func gcPercentFor(live, headroom int64, base int) int {
	if live < 1 {
		live = 1
	}
	p := (headroom*100 + live - 1) / live
	switch {
	case p < int64(base):
		return base
	case p > maxGCPercent:
		return maxGCPercent
	}
	return int(p)
}

// gcTuner sets GOGC after every collection from the live heap it found.
type gcTuner struct {
	headroom int64
	base     int

	mu      sync.Mutex
	stopped bool
	sample  [1]metrics.Sample
}

// gcSentinel is allocated for each collection; its cleanup runs after the
// collection that frees it. It is larger than the runtime's tiny
// allocations, which share blocks and would be freed late.
type gcSentinel struct{ _ [64]byte }

// startGCTuner applies headroom bytes of headroom (0: none) and returns the
// function that stops it and puts Go's GOGC back. GOGC set in the
// environment is the operator's choice and is left alone.
func startGCTuner(headroom int64, logger *slog.Logger) (stop func()) {
	if headroom <= 0 {
		logger.Info("gc headroom", "headroom", "off")
		return func() {}
	}
	if v := os.Getenv("GOGC"); v != "" {
		logger.Info("gc headroom", "headroom", "off", "source", "GOGC="+v)
		return func() {}
	}
	t := &gcTuner{headroom: headroom, base: 100}
	t.sample[0].Name = "/gc/heap/live:bytes"
	t.tune()
	t.arm()
	logger.Info("gc headroom", "headroom", formatSize(headroom))
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.stopped = true
		debug.SetGCPercent(t.base)
	}
}

// arm has tune and arm run again after the next collection.
func (t *gcTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), func(t *gcTuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC for the live heap now; false once the tuner is stopped.
func (t *gcTuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample[:])
	// Before the first collection nothing has been found live: Go's
	// GOGC stays until one has.
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		if live := int64(t.sample[0].Value.Uint64()); live > 0 {
			debug.SetGCPercent(gcPercentFor(live, t.headroom, t.base))
		}
	}
	return true
}

// parseGCHeadroom reads --gc-headroom: a size as --memory-limit takes, or
// off.
func parseGCHeadroom(s string) (int64, error) {
	if s == "off" || s == "0" {
		return 0, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--gc-headroom: %w", err)
	}
	return n, nil
}
