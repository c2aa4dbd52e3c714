package main

import (
	"bytes"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/fleetcert/fleetcert/internal/testwait"
)

func TestGCPercentFor(t *testing.T) {
	tests := []struct {
		name           string
		live, headroom int64
		want           int
	}{
		{"small heap: grow by the headroom", 2 << 20, 64 << 20, 3200},
		{"rounds up", 3 << 20, 64 << 20, 2134},
		{"heap as large as the headroom: Go's own", 64 << 20, 64 << 20, 100},
		{"large heap: Go's own", 1 << 30, 64 << 20, 100},
		{"nothing live: bounded", 0, 64 << 20, maxGCPercent},
		{"a few bytes live: bounded", 10, 64 << 20, maxGCPercent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercentFor(tt.live, tt.headroom, 100); got != tt.want {
				t.Errorf("gcPercentFor(%d, %d) = %d, want %d", tt.live, tt.headroom, got, tt.want)
			}
		})
	}
}

func TestParseGCHeadroom(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"64MiB", 64 << 20, false},
		{"off", 0, false},
		{"0", 0, false},
		{"64MB", 0, true},
		{"-1", 0, true},
		{"lots", 0, true},
	}
	for _, tt := range tests {
		got, err := parseGCHeadroom(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseGCHeadroom(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// gogc reads the GOGC the runtime runs with.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The tuner follows the live heap after every collection, and stopping it
// puts Go's GOGC back.
func TestGCTunerFollowsLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "") // the tuner leaves an operator's GOGC alone
	var logs bytes.Buffer
	stop := startGCTuner(256<<20, slog.New(slog.NewTextHandler(&logs, nil)))
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// A test binary keeps a few MiB live: 256 MiB of headroom is some
	// thousands of percent.
	testwait.For(t, "GOGC raised after a collection", func() bool {
		runtime.GC()
		return gogc() > 1000
	})
	keep := make([][]byte, 0, 128)
	for range 128 {
		keep = append(keep, make([]byte, 1<<20)) // 128 MiB more live
	}
	testwait.For(t, "GOGC lowered as the live heap grew", func() bool {
		runtime.GC()
		return gogc() <= 200
	})
	runtime.KeepAlive(keep)
	stop()
	stopped = true
	if got := gogc(); got != 100 {
		t.Errorf("GOGC after stop = %d, want 100", got)
	}
	if !bytes.Contains(logs.Bytes(), []byte("headroom=256MiB")) {
		t.Errorf("log does not give the headroom: %s", logs.String())
	}
}

func TestGCTunerLeavesGOGC(t *testing.T) {
	t.Setenv("GOGC", "150")
	var logs bytes.Buffer
	stop := startGCTuner(64<<20, slog.New(slog.NewTextHandler(&logs, nil)))
	defer stop()
	before := gogc()
	runtime.GC()
	runtime.GC()
	if got := gogc(); got != before {
		t.Errorf("GOGC = %d after collections, want %d: the tuner ran despite GOGC", got, before)
	}
	if !bytes.Contains(logs.Bytes(), []byte("GOGC=150")) {
		t.Errorf("log does not say why the headroom is off: %s", logs.String())
	}
}
