package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/postgres"
	"github.com/fleetcert/fleetcert/sqlite"
)

// ViewReport is what `fleetcert-bench view` measures: the device gateway's
// admission view loaded from a store, as the gateway loads it at start.
type ViewReport struct {
	Certificates  int     `json:"certificates"` // distinct certificates the view holds
	LoadSeconds   float64 `json:"loadSeconds"`
	RetainedBytes uint64  `json:"retainedBytes"` // live heap after loading, minus before
	BytesPerCert  float64 `json:"bytesPerCert"`
	PeakRSSBytes  uint64  `json:"peakRssBytes"` // the process's VmHWM: the load's transient memory included
	// RSSAnonBytes and RSSFileBytes split the resident memory right after
	// loading (before a collection): the heap, and the pages of the store's
	// file SQLite reads through its memory map (the page cache's, shared,
	// given back under memory pressure), which VmHWM counts too.
	RSSAnonBytes   uint64 `json:"rssAnonBytes"`
	RSSFileBytes   uint64 `json:"rssFileBytes"`
	StartRSSBytes  uint64 `json:"startRssBytes"`
	TotalAllocated uint64 `json:"totalAllocatedBytes"`
}

func runView(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleetcert-bench view", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the embedded store's directory")
	dbURL := fs.String("database-url", "", "a PostgreSQL store; loopback only")
	timeout := fs.Duration("timeout", 10*time.Minute, "time limit of the load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*dataDir == "") == (*dbURL == "") {
		return errors.New("give one of --data-dir and --database-url")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var store fleetcert.Store
	if *dbURL != "" {
		if err := checkLoopbackDatabase(*dbURL); err != nil {
			return err
		}
		db := postgres.NewDB(*dbURL)
		if err := db.Open(ctx); err != nil {
			return err
		}
		store = db
	} else {
		db := sqlite.NewDB(filepath.Join(*dataDir, "fleetcert.db"))
		if err := db.Open(); err != nil {
			return err
		}
		store = db
	}
	defer store.Close()
	reg := fleetcert.NewRegistry(store, nil)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep := ViewReport{StartRSSBytes: procStatus("VmRSS")}
	v := reg.NewAdmissionView()
	start := time.Now()
	if _, err := v.Load(ctx); err != nil {
		return err
	}
	rep.LoadSeconds = time.Since(start).Seconds()
	rep.PeakRSSBytes = procStatus("VmHWM")
	rep.RSSAnonBytes, rep.RSSFileBytes = procStatus("RssAnon"), procStatus("RssFile")
	runtime.GC()
	runtime.ReadMemStats(&after)
	rep.Certificates = v.Len()
	rep.RetainedBytes = after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
	rep.TotalAllocated = after.TotalAlloc - before.TotalAlloc
	if rep.Certificates > 0 {
		rep.BytesPerCert = float64(rep.RetainedBytes) / float64(rep.Certificates)
	}
	runtime.KeepAlive(v)
	fmt.Fprintf(stdout, "admission view: %d certificates loaded in %.2fs; retained heap %.1f MiB (%.0f B/certificate); peak RSS %.1f MiB (%.1f MiB before loading; after loading %.1f MiB anonymous, %.1f MiB of mapped store file); allocated %.1f MiB\n",
		rep.Certificates, rep.LoadSeconds, mib(rep.RetainedBytes), rep.BytesPerCert, mib(rep.PeakRSSBytes), mib(rep.StartRSSBytes), mib(rep.RSSAnonBytes), mib(rep.RSSFileBytes), mib(rep.TotalAllocated))
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// procStatus returns a "kB" line of /proc/self/status in bytes, 0 where
// there is none.
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}
