package awsapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
)

// newBenchEnv is a test env logging like the server does (text, every
// request), to io.Discard.
func newBenchEnv(b *testing.B) *testEnv {
	e := newEnv(b)
	e.Handler.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return e
}

// BenchmarkVerifySigV4 measures SigV4 verification alone: canonical
// request, string to sign, cached signing key, HMAC; the access key from
// the cache.
func BenchmarkVerifySigV4(b *testing.B) {
	e := newBenchEnv(b)
	pemText, _, _ := selfSignedPEM(b, "bench")
	body, _ := json.Marshal(map[string]string{"certificatePem": pemText})
	for _, bb := range []struct {
		name, method, target string
		body                 []byte
	}{
		{"GET", "GET", "/certificates/" + string(bytes.Repeat([]byte("ab"), 32)), nil},
		{"query", "GET", "/certificates?pageSize=10&isAscendingOrder=true&marker=ARjq2UsXKoDAAAAAAAAAAAI%3D", nil},
		{"body", "POST", "/certificate/register-no-ca", body},
	} {
		b.Run(bb.name, func(b *testing.B) {
			r := e.Request(e.KeyA, testRegion, bb.method, bb.target, bb.body, time.Now())
			b.ReportAllocs()
			for b.Loop() {
				if bb.body != nil {
					r.Body = io.NopCloser(bytes.NewReader(bb.body))
				}
				if _, err := e.Handler.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardResponse is a ResponseWriter that keeps only the status.
type discardResponse struct {
	header http.Header
	status int
}

func (d *discardResponse) Header() http.Header         { return d.header }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(s int)           { d.status = s }

// BenchmarkDescribeCertificate serves DescribeCertificate through
// ServeHTTP on the real SQLite store, one request at a time, reading the
// store each time or from the describe cache (serve's default).
func BenchmarkDescribeCertificate(b *testing.B) {
	for _, bb := range []struct {
		name  string
		cache int
	}{{"store", 0}, {"cache", fleetcert.DefaultDescribeCacheSize}} {
		b.Run(bb.name, func(b *testing.B) {
			e := newBenchEnv(b)
			e.Registry.DescribeCacheSize = bb.cache
			id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())
			w := &discardResponse{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				w.status = 0
				e.Handler.ServeHTTP(w, r)
				if w.status != 200 {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// BenchmarkDescribeCertificateParallel serves DescribeCertificate from 8
// goroutines per CPU (16 on 2 cores, the lead's target load) through
// ServeHTTP, and reports the 99th percentile latency.
func BenchmarkDescribeCertificateParallel(b *testing.B) {
	e := newBenchEnv(b)
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	signed := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := signed.Clone(signed.Context())
		w := &discardResponse{header: http.Header{}}
		var lat []time.Duration
		for pb.Next() {
			clear(w.header)
			w.status = 0
			start := time.Now()
			e.Handler.ServeHTTP(w, r)
			lat = append(lat, time.Since(start))
			if w.status != 200 {
				b.Errorf("status %d", w.status)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	reportP99(b, all)
}

// BenchmarkDescribeCertificateThrottle measures throttling's cost on
// a busy machine: every goroutine alternates requests between a handler
// without throttling and one with it (rates far above the load), on the
// same store, and times each, so that whatever else the machine does falls
// on both alike. It reports each handler's mean time per request, leaving
// out the slowest 1% of each (a goroutine descheduled by other work), and
// the throttled handler's overhead in percent: how much less throughput.
func BenchmarkDescribeCertificateThrottle(b *testing.B) {
	for _, bb := range []struct {
		name        string
		parallelism int // goroutines per CPU; 0: one goroutine
	}{
		{"serial", 0},
		{"parallel", 8},
	} {
		b.Run(bb.name, func(b *testing.B) {
			e := newBenchEnv(b)
			off := e.Handler
			on := awsapi.NewHandler(e.Registry, off.Logger)
			on.Throttle = mustParseThrottle(b, "aws,DescribeCertificate=1e9")
			id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
			signed := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())
			var mu sync.Mutex
			var times [2][]time.Duration // off, on
			run := func(pb interface{ Next() bool }) {
				r := signed.Clone(signed.Context())
				w := &discardResponse{header: http.Header{}}
				handlers := [2]*awsapi.Handler{off, on}
				var local [2][]time.Duration
				for i := 0; pb.Next(); i++ {
					// off, on, on, off, …: neither always goes first.
					k := i & 1
					if i&2 != 0 {
						k ^= 1
					}
					clear(w.header)
					w.status = 0
					start := time.Now()
					handlers[k].ServeHTTP(w, r)
					local[k] = append(local[k], time.Since(start))
					if w.status != 200 {
						b.Errorf("status %d", w.status)
						return
					}
				}
				mu.Lock()
				for k := range times {
					times[k] = append(times[k], local[k]...)
				}
				mu.Unlock()
			}
			b.ReportAllocs()
			b.ResetTimer()
			if bb.parallelism == 0 {
				run(nextFunc(b.Loop))
			} else {
				b.SetParallelism(bb.parallelism)
				b.RunParallel(func(pb *testing.PB) { run(pb) })
			}
			if len(times[0]) < 100 || len(times[1]) < 100 {
				return
			}
			meanOff, meanOn := trimmedMean(times[0]), trimmedMean(times[1])
			b.ReportMetric(meanOff, "off-ns/req")
			b.ReportMetric(meanOn, "on-ns/req")
			b.ReportMetric(100*(meanOn-meanOff)/meanOff, "overhead-%")
		})
	}
}

// trimmedMean is the mean of the fastest 99% of d, in nanoseconds.
func trimmedMean(d []time.Duration) float64 {
	slices.Sort(d)
	d = d[:len(d)*99/100]
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return float64(sum) / float64(len(d))
}

// nextFunc makes testing.B's Loop look like testing.PB's Next.
type nextFunc func() bool

func (f nextFunc) Next() bool { return f() }

// BenchmarkThrottleAllow is the throttle check alone, from 16 goroutines
// over 1000 accounts.
func BenchmarkThrottleAllow(b *testing.B) {
	th := mustParseThrottle(b, "aws,DescribeCertificate=1e9")
	scopes := make([]fleetcert.Scope, 1000)
	for i := range scopes {
		scopes[i] = fleetcert.Scope{AccountID: fmt.Sprintf("%012d", i), Region: testRegion}
	}
	b.SetParallelism(8)
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			i++
			if !th.Allow(scopes[i%len(scopes)], "DescribeCertificate", time.Now()) {
				b.Error("throttled")
				return
			}
		}
	})
}

// BenchmarkDescribeCertificateHTTP is the whole HTTP path: 16 concurrent
// keep-alive clients in this process against an httptest server, each
// sending a pre-signed DescribeCertificate.
func BenchmarkDescribeCertificateHTTP(b *testing.B) {
	e := newBenchEnv(b)
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	url := e.URL()
	signed := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())
	client := e.server.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var lat []time.Duration
		for pb.Next() {
			req, _ := http.NewRequest("GET", url+"/certificates/"+id, nil)
			req.Header = signed.Header.Clone()
			req.Host = testHost
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	reportP99(b, all)
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}
