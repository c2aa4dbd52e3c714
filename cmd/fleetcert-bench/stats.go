package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/aws/smithy-go"
)

// recorder collects the outcome of one worker's calls; workers never share
// one, and merge combines them when the phase is over.
type recorder struct {
	latencies  []time.Duration // successful calls only
	errors     map[string]int64
	firstError map[string]string
	cpu        time.Duration // CPU time of the whole process during the phase
}

func newRecorder(capacity int) *recorder {
	return &recorder{
		latencies:  make([]time.Duration, 0, capacity),
		errors:     map[string]int64{},
		firstError: map[string]string{},
	}
}

func (r *recorder) record(d time.Duration, err error) {
	if err == nil {
		r.latencies = append(r.latencies, d)
		return
	}
	code := errorCode(err)
	r.errors[code]++
	if _, ok := r.firstError[code]; !ok {
		r.firstError[code] = err.Error()
	}
}

func merge(recs []*recorder) *recorder {
	n := 0
	for _, r := range recs {
		n += len(r.latencies)
	}
	out := newRecorder(n)
	for _, r := range recs {
		out.cpu += r.cpu
		out.latencies = append(out.latencies, r.latencies...)
		for code, c := range r.errors {
			out.errors[code] += c
		}
		for code, msg := range r.firstError {
			if _, ok := out.firstError[code]; !ok {
				out.firstError[code] = msg
			}
		}
	}
	return out
}

// errorCode names an error the way the results count it: the AWS error code
// when the endpoint sent one, otherwise the kind of client-side failure.
func errorCode(err error) string {
	var apiErr smithy.APIError
	var netErr net.Error
	var check *checkError
	switch {
	case errors.As(err, &check):
		return check.code
	case errors.As(err, &apiErr):
		if code := apiErr.ErrorCode(); code != "" {
			return code
		}
		return "UnknownAPIError"
	case errors.Is(err, context.DeadlineExceeded):
		return "ClientTimeout"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.As(err, &netErr):
		return "NetworkError"
	}
	return "ClientError"
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// OpResult is the outcome of one phase of one operation.
type OpResult struct {
	Op          string           `json:"op"`
	Phase       string           `json:"phase"` // "timed" or "seed"
	Concurrency int              `json:"concurrency"`
	Ops         int64            `json:"ops"` // calls made, successful or not
	Errors      int64            `json:"errors"`
	ErrorCodes  map[string]int64 `json:"errorCodes,omitempty"`
	Seconds     float64          `json:"seconds"`
	OpsPerSec   float64          `json:"opsPerSec"` // successful calls per second
	P50ms       float64          `json:"p50ms"`
	P90ms       float64          `json:"p90ms"`
	P99ms       float64          `json:"p99ms"`
	MaxMs       float64          `json:"maxMs"`
	Stopped     string           `json:"stoppedBy"`      // "duration", "max-ops", "pool", "seed-timeout" or "done"
	ClientCPU   float64          `json:"clientCpuCores"` // CPU cores the load tool used
	Notes       []string         `json:"notes,omitempty"`

	firstError map[string]string
}

func newOpResult(op, phase string, conc int, rec *recorder, elapsed time.Duration, stopped string) OpResult {
	slices.Sort(rec.latencies)
	var nerr int64
	for _, c := range rec.errors {
		nerr += c
	}
	ok := int64(len(rec.latencies))
	r := OpResult{
		Op:          op,
		Phase:       phase,
		Concurrency: conc,
		Ops:         ok + nerr,
		Errors:      nerr,
		Seconds:     elapsed.Seconds(),
		P50ms:       ms(percentile(rec.latencies, 50)),
		P90ms:       ms(percentile(rec.latencies, 90)),
		P99ms:       ms(percentile(rec.latencies, 99)),
		MaxMs:       ms(percentile(rec.latencies, 100)),
		Stopped:     stopped,
		firstError:  rec.firstError,
	}
	if len(rec.errors) > 0 {
		r.ErrorCodes = rec.errors
	}
	if elapsed > 0 {
		r.OpsPerSec = float64(ok) / elapsed.Seconds()
		r.ClientCPU = rec.cpu.Seconds() / elapsed.Seconds()
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

func (r OpResult) print(w io.Writer) {
	name := r.Op
	if r.Phase != "timed" {
		name += "(" + r.Phase + ")"
	}
	fmt.Fprintf(w, "op=%-36s conc=%-3d ops=%-8d ops/s=%-8.0f p50=%-8s p90=%-8s p99=%-8s max=%-8s errors=%d time=%.2fs stop=%s client_cpu=%.2fcores\n",
		name, r.Concurrency, r.Ops, r.OpsPerSec, fmtMs(r.P50ms), fmtMs(r.P90ms), fmtMs(r.P99ms), fmtMs(r.MaxMs),
		r.Errors, r.Seconds, r.Stopped, r.ClientCPU)
	for _, code := range slices.Sorted(maps.Keys(r.ErrorCodes)) {
		fmt.Fprintf(w, "    error %s x%d, first: %s\n", code, r.ErrorCodes[code], oneLine(r.firstError[code], 200))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "    note: %s\n", n)
	}
}

// ScanRun is one full ListCertificates scan.
type ScanRun struct {
	Seconds     float64 `json:"seconds"`
	Items       int     `json:"items"`
	Pages       int     `json:"pages"`
	Duplicates  int     `json:"duplicates"`
	ItemsPerSec float64 `json:"itemsPerSec"`
	PageP50ms   float64 `json:"pageP50ms"`
	PageMaxMs   float64 `json:"pageMaxMs"`
	ClientCPU   float64 `json:"clientCpuCores"`
	Error       string  `json:"error,omitempty"`
}

// ScanResult is the outcome of the list-scan operation.
type ScanResult struct {
	Op          string    `json:"op"`
	PageSize    int       `json:"pageSize"`
	ListCount   int       `json:"listCount"` // certificates required to exist
	Existing    int       `json:"existing"`  // counted before seeding
	Scans       []ScanRun `json:"scans"`
	BestSeconds float64   `json:"bestSeconds"`
	BestItems   int       `json:"bestItems"`
	Notes       []string  `json:"notes,omitempty"`
}

func (s *ScanResult) print(w io.Writer) {
	for i, sc := range s.Scans {
		fmt.Fprintf(w, "op=%-36s scan=%d items=%-7d pages=%-5d time=%.3fs items/s=%-8.0f page p50=%s max=%s dup=%d client_cpu=%.2fcores",
			s.Op+"(full scan)", i+1, sc.Items, sc.Pages, sc.Seconds, sc.ItemsPerSec, fmtMs(sc.PageP50ms), fmtMs(sc.PageMaxMs), sc.Duplicates, sc.ClientCPU)
		if sc.Error != "" {
			fmt.Fprintf(w, " error=%s", oneLine(sc.Error, 200))
		}
		fmt.Fprintln(w)
	}
	if s.BestSeconds > 0 {
		fmt.Fprintf(w, "op=%-36s best=%.3fs items=%d pageSize=%d (required >= %d, found %d before seeding)\n",
			s.Op+"(full scan)", s.BestSeconds, s.BestItems, s.PageSize, s.ListCount, s.Existing)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "    note: %s\n", n)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
