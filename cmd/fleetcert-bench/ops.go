package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
)

// pageSize is the largest page ListCertificates allows (AWS model: 1–250).
const pageSize = 250

// seedBatch bounds the certificates held in memory while seeding.
const seedBatch = 20000

type bench struct {
	cfg     Config
	clients []*iot.Client // one per endpoint
	certs   *certFactory
	log     io.Writer
}

// client returns the client of call i: calls go round-robin to the
// endpoints (the nodes of a cluster).
func (b *bench) client(i int) *iot.Client { return b.clients[i%len(b.clients)] }

// checkError is a wrong answer to a call that succeeded on the wire.
type checkError struct{ code, msg string }

func (e *checkError) Error() string { return e.msg }

// Stop reasons of a load phase.
const (
	stopDuration = "duration"
	stopMaxOps   = "max-ops"
	stopDone     = "done"
)

// load calls call from conc workers until n calls were made or d has passed,
// whichever comes first; i is the index of the call, 0 ≤ i < n. It returns
// the merged outcome, the elapsed time and why it stopped.
func (b *bench) load(ctx context.Context, conc, n int, d time.Duration, call func(ctx context.Context, i int) error) (*recorder, time.Duration, string) {
	var (
		next     atomic.Int64
		hitCount atomic.Bool
		wg       sync.WaitGroup
	)
	recs := make([]*recorder, conc)
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for w := range conc {
		recs[w] = newRecorder(min(n/conc+1, 1<<20))
		wg.Go(func() {
			rec := recs[w]
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					hitCount.Store(true)
					return
				}
				t0 := time.Now()
				if t0.After(deadline) {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
				err := call(cctx, int(i))
				cancel()
				rec.record(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopped := stopDuration
	if hitCount.Load() {
		stopped = stopMaxOps
	}
	rec := merge(recs)
	rec.cpu = processCPU() - cpu0
	return rec, elapsed, stopped
}

func (b *bench) registerCall(pems []string, ids []string) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		out, err := b.client(i).RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
			CertificatePem: aws.String(pems[i]),
			Status:         types.CertificateStatusActive,
		})
		if err != nil {
			return err
		}
		if aws.ToString(out.CertificateId) == "" {
			return &checkError{"NoCertificateId", "RegisterCertificateWithoutCA returned no certificateId"}
		}
		if ids != nil {
			ids[i] = *out.CertificateId
		}
		return nil
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// describe registers a pool of certificates (untimed), then calls
// DescribeCertificate on random ones of them.
func (b *bench) describe(ctx context.Context) (OpResult, error) {
	c := b.cfg
	if c.IDsFile != "" {
		pool, err := readIDs(c.IDsFile)
		if err != nil {
			return OpResult{}, err
		}
		return b.describePool(ctx, pool, nil, nil)
	}
	pems, err := b.certs.generate(c.DescribePool)
	if err != nil {
		return OpResult{}, err
	}
	b.logf("describe: registering a pool of %d certificates (untimed)", len(pems))
	ids := make([]string, len(pems))
	poolRec, _, _ := b.load(ctx, c.Concurrency, len(pems), c.SeedTimeout, b.registerCall(pems, ids))
	pool := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	if len(pool) == 0 {
		return OpResult{}, fmt.Errorf("could not register any certificate for the pool: %s", describeErrors(poolRec))
	}
	return b.describePool(ctx, pool, ids, poolRec)
}

// describePool calls DescribeCertificate on random ids of pool; ids and
// poolRec are the pool's registration, when it was registered.
func (b *bench) describePool(ctx context.Context, pool, ids []string, poolRec *recorder) (OpResult, error) {
	c := b.cfg
	b.logf("describe: pool of %d certificates; timed phase %s at concurrency %d", len(pool), c.Duration, c.Concurrency)
	rec, elapsed, stopped := b.load(ctx, c.Concurrency, c.MaxOps, c.Duration, func(ctx context.Context, i int) error {
		id := pool[rand.IntN(len(pool))]
		out, err := b.client(i).DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil {
			return err
		}
		if out.CertificateDescription == nil || aws.ToString(out.CertificateDescription.CertificateId) != id {
			return &checkError{"WrongCertificate", "DescribeCertificate returned another certificate than " + id}
		}
		return nil
	})
	r := newOpResult("DescribeCertificate", "timed", c.Concurrency, rec, elapsed, stopped)
	if n := len(ids) - len(pool); ids != nil && n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d pool registrations failed: %s", n, len(ids), describeErrors(poolRec)))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("random ids from a pool of %d", len(pool)))
	return r, nil
}

func describeErrors(rec *recorder) string {
	if len(rec.errors) == 0 {
		return "no errors"
	}
	var s string
	for _, code := range slices.Sorted(maps.Keys(rec.errors)) {
		s += fmt.Sprintf("%s x%d (%s) ", code, rec.errors[code], oneLine(rec.firstError[code], 160))
	}
	return s
}

// register measures RegisterCertificateWithoutCA of new certificates. The
// certificates are made before the timed phase, as many as a short untimed
// warm-up says the endpoint can take in --duration (bounded by --max-ops), so
// that certificate generation never competes with the calls being timed.
func (b *bench) register(ctx context.Context) (OpResult, error) {
	c := b.cfg
	const warmN, warmD = 4000, time.Second
	warm, err := b.certs.generate(min(warmN, c.MaxOps))
	if err != nil {
		return OpResult{}, err
	}
	wrec, welapsed, _ := b.load(ctx, c.Concurrency, len(warm), warmD, b.registerCall(warm, nil))
	rate := float64(len(wrec.latencies)) / welapsed.Seconds()
	need := c.MaxOps
	// Twice the warm-up's rate: a fast server (the ceiling) runs its
	// one-second warm-up mostly cold, and ran out of certificates with 1.3.
	if est := rate*c.Duration.Seconds()*2 + float64(4*c.Concurrency) + 1000; est < float64(need) {
		need = int(est)
	}
	b.logf("register: warm-up %d calls, %d ok in %s (%.0f/s); generating %d certificates", len(wrec.latencies)+int(sumErrors(wrec)), len(wrec.latencies), welapsed.Round(time.Millisecond), rate, need)
	genStart := time.Now()
	pems, err := b.certs.generate(need)
	if err != nil {
		return OpResult{}, err
	}
	b.logf("register: generated %d certificates in %s; timed phase %s at concurrency %d", need, time.Since(genStart).Round(time.Millisecond), c.Duration, c.Concurrency)
	rec, elapsed, stopped := b.load(ctx, c.Concurrency, len(pems), c.Duration, b.registerCall(pems, nil))
	r := newOpResult("RegisterCertificateWithoutCA", "timed", c.Concurrency, rec, elapsed, stopped)
	if stopped == stopMaxOps && need < c.MaxOps {
		r.Stopped = "pool"
		r.Notes = append(r.Notes, fmt.Sprintf("used up the %d pre-generated certificates before --duration (warm-up estimate %.0f/s was low)", need, rate))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("status ACTIVE; %d certificates pre-generated after a %d-call warm-up at %.0f/s", need, len(wrec.latencies)+int(sumErrors(wrec)), rate))
	return r, nil
}

func sumErrors(rec *recorder) int64 {
	var n int64
	for _, c := range rec.errors {
		n += c
	}
	return n
}

// listScan makes sure at least --list-count certificates exist, then times
// full ListCertificates scans.
func (b *bench) listScan(ctx context.Context) (*OpResult, *ScanResult, error) {
	c := b.cfg
	res := &ScanResult{Op: "ListCertificates", PageSize: pageSize, ListCount: c.ListCount}
	b.logf("list-scan: counting certificates (ListCertificates, pageSize %d)", pageSize)
	count, _ := b.fullScan(ctx)
	if count.Error != "" {
		return nil, res, fmt.Errorf("count: %s", count.Error)
	}
	res.Existing = count.Items
	b.logf("list-scan: %d certificates exist (counted in %.2fs, %d pages)", count.Items, count.Seconds, count.Pages)

	var seed *OpResult
	if missing := c.ListCount - count.Items; missing > 0 {
		r, err := b.seed(ctx, missing)
		seed = &r
		if err != nil {
			return seed, res, err
		}
	}
	var pageNote string
	for i := range c.Scans {
		if ctx.Err() != nil {
			break
		}
		b.logf("list-scan: full scan %d of %d", i+1, c.Scans)
		sc, maxPage := b.fullScan(ctx)
		res.Scans = append(res.Scans, sc)
		if maxPage > pageSize {
			pageNote = fmt.Sprintf("endpoint ignores pageSize: a page held %d items (no pagination)", maxPage)
		}
		if sc.Error == "" && (res.BestSeconds == 0 || sc.Seconds < res.BestSeconds) {
			res.BestSeconds, res.BestItems = sc.Seconds, sc.Items
		}
	}
	if pageNote != "" {
		res.Notes = append(res.Notes, pageNote)
	}
	for _, sc := range res.Scans {
		if sc.Error != "" {
			return seed, res, errors.New(sc.Error)
		}
		if sc.Duplicates > 0 {
			return seed, res, fmt.Errorf("a scan saw %d repeated certificate ids", sc.Duplicates)
		}
		if sc.Items < c.ListCount {
			return seed, res, fmt.Errorf("a scan saw %d certificates, want at least %d", sc.Items, c.ListCount)
		}
	}
	return seed, res, nil
}

// seed registers n new certificates in batches; only the calls are timed.
func (b *bench) seed(ctx context.Context, n int) (OpResult, error) {
	c := b.cfg
	b.logf("list-scan: registering %d certificates at concurrency %d", n, c.Concurrency)
	var (
		recs    []*recorder
		elapsed time.Duration
		stopped = stopDone
	)
	for done := 0; done < n && ctx.Err() == nil; {
		left := c.SeedTimeout - elapsed
		if left <= 0 {
			stopped = "seed-timeout"
			break
		}
		pems, err := b.certs.generate(min(seedBatch, n-done))
		if err != nil {
			return OpResult{}, err
		}
		rec, e, s := b.load(ctx, c.Concurrency, len(pems), left, b.registerCall(pems, nil))
		recs = append(recs, rec)
		elapsed += e
		done += len(pems)
		ok := 0
		for _, r := range recs {
			ok += len(r.latencies)
		}
		b.logf("list-scan: seeded %d/%d (%d ok) in %s", done, n, ok, elapsed.Round(time.Millisecond))
		if s == stopDuration {
			stopped = "seed-timeout"
			break
		}
	}
	r := newOpResult("RegisterCertificateWithoutCA", "seed", c.Concurrency, merge(recs), elapsed, stopped)
	r.Notes = append(r.Notes, fmt.Sprintf("seeding %d certificates for list-scan", n))
	if r.Errors > 0 || stopped != stopDone {
		return r, fmt.Errorf("seeding: %d errors, stopped by %s", r.Errors, stopped)
	}
	return r, nil
}

// fullScan lists every certificate, following nextMarker until there is
// none. It returns the scan and the largest page seen.
func (b *bench) fullScan(ctx context.Context) (ScanRun, int) {
	c := b.cfg
	var (
		run      ScanRun
		ids      = make([]string, 0, max(c.ListCount, 1024))
		pageLat  []time.Duration
		marker   *string
		maxPage  int
		maxPages = 20000 // 5 million items: a scan that does not end is a bug
	)
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(c.ScanTimeout)
	for {
		if ctx.Err() != nil {
			run.Error = ctx.Err().Error()
			break
		}
		if time.Now().After(deadline) {
			run.Error = fmt.Sprintf("scan not finished after %s (--scan-timeout)", c.ScanTimeout)
			break
		}
		cctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
		t0 := time.Now()
		out, err := b.client(0).ListCertificates(cctx, &iot.ListCertificatesInput{PageSize: aws.Int32(pageSize), Marker: marker})
		d := time.Since(t0)
		cancel()
		if err != nil {
			run.Error = fmt.Sprintf("page %d: %s: %v", run.Pages+1, errorCode(err), err)
			break
		}
		pageLat = append(pageLat, d)
		run.Pages++
		maxPage = max(maxPage, len(out.Certificates))
		for _, cert := range out.Certificates {
			ids = append(ids, aws.ToString(cert.CertificateId))
		}
		next := aws.ToString(out.NextMarker)
		if next == "" {
			break
		}
		if marker != nil && next == *marker {
			run.Error = fmt.Sprintf("page %d: nextMarker did not change", run.Pages)
			break
		}
		if run.Pages >= maxPages {
			run.Error = fmt.Sprintf("more than %d pages", maxPages)
			break
		}
		marker = &next
	}
	elapsed := time.Since(start)
	run.Seconds = elapsed.Seconds()
	run.Items = len(ids)
	if elapsed > 0 {
		run.ItemsPerSec = float64(run.Items) / elapsed.Seconds()
		run.ClientCPU = (processCPU() - cpu0).Seconds() / elapsed.Seconds()
	}
	slices.Sort(pageLat)
	run.PageP50ms = ms(percentile(pageLat, 50))
	run.PageMaxMs = ms(percentile(pageLat, 100))
	run.Duplicates = countDuplicates(ids)
	return run, maxPage
}

// countDuplicates returns how many entries of ids repeat an earlier one.
func countDuplicates(ids []string) int {
	slices.Sort(ids)
	n := 0
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			n++
		}
	}
	return n
}

// readIDs reads certificate ids, one a line, skipping empty lines.
func readIDs(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ids []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" {
			ids = append(ids, line)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no certificate ids", path)
	}
	return ids, nil
}

// update calls UpdateCertificate on random ids of --ids-file, each call
// moving its certificate between ACTIVE and INACTIVE (call i sets INACTIVE
// when i is even), so that most calls change a status: a write, a change
// in the feed, a wake-up of the gateway's watcher.
func (b *bench) update(ctx context.Context) (OpResult, error) {
	c := b.cfg
	pool, err := readIDs(c.IDsFile)
	if err != nil {
		return OpResult{}, err
	}
	b.logf("update: pool of %d certificates; timed phase %s at concurrency %d", len(pool), c.Duration, c.Concurrency)
	rec, elapsed, stopped := b.load(ctx, c.Concurrency, c.MaxOps, c.Duration, func(ctx context.Context, i int) error {
		status := types.CertificateStatusInactive
		if i%2 == 1 {
			status = types.CertificateStatusActive
		}
		_, err := b.client(i).UpdateCertificate(ctx, &iot.UpdateCertificateInput{
			CertificateId: aws.String(pool[rand.IntN(len(pool))]), NewStatus: status})
		return err
	})
	r := newOpResult("UpdateCertificate", "timed", c.Concurrency, rec, elapsed, stopped)
	r.Notes = append(r.Notes, fmt.Sprintf("random ids from a pool of %d, ACTIVE and INACTIVE in turn", len(pool)))
	return r, nil
}

// listByCA pages through ListCertificatesByCA from the start, one page of
// 250 after the other, timing each page, for at most --pages pages or
// --duration.
func (b *bench) listByCA(ctx context.Context) (OpResult, error) {
	c := b.cfg
	rec := newRecorder(c.Pages)
	var marker *string
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(c.Duration)
	stopped := stopDone
	items := 0
	for page := 0; page < c.Pages; page++ {
		if ctx.Err() != nil || time.Now().After(deadline) {
			stopped = stopDuration
			break
		}
		cctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
		t0 := time.Now()
		out, err := b.client(page).ListCertificatesByCA(cctx, &iot.ListCertificatesByCAInput{
			CaCertificateId: aws.String(c.CACertificateID), PageSize: aws.Int32(pageSize), Marker: marker})
		d := time.Since(t0)
		cancel()
		if err == nil && len(out.Certificates) == 0 && page == 0 {
			err = &checkError{"EmptyPage", "the CA's first page is empty"}
		}
		rec.record(d, err)
		if err != nil {
			break
		}
		items += len(out.Certificates)
		next := aws.ToString(out.NextMarker)
		if next == "" {
			break
		}
		marker = &next
	}
	elapsed := time.Since(start)
	if len(rec.latencies) >= c.Pages {
		stopped = stopMaxOps
	}
	rec.cpu = processCPU() - cpu0
	r := newOpResult("ListCertificatesByCA", "timed", 1, rec, elapsed, stopped)
	r.Notes = append(r.Notes, fmt.Sprintf("%d pages of up to %d, %d certificates, one caller; latencies are per page", len(rec.latencies), pageSize, items))
	return r, nil
}
