package storetest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// testBulkJob runs a bulk revocation through a Registry on the store while
// other Updates revoke some of its certificates and a second runner tries
// to run the same job: each certificate ends REVOKED with exactly one
// change to REVOKED in the feed, the job counts each once, and the second
// runner is told the job is held.
func testBulkJob(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	reg := fleetcert.NewRegistry(s, nil)
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Bulk CA"})
	ca, err := reg.RegisterCACertificate(ctx, scopeA, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 8 {
		c, err := reg.RegisterCertificate(ctx, scopeA, fleetcert.RegisterCertificateInput{
			CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert, CommonName: "under"}).PEM, Status: fleetcert.StatusActive})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	for range 3 {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scopeA, testpki.New(t, testpki.Options{Parent: caCert, CommonName: "loose"}).PEM, fleetcert.StatusActive)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	j, err := reg.StartJob(ctx, scopeA, fleetcert.JobInput{CACertificateID: ca.ID, Action: fleetcert.StatusRevoked})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]*fleetcert.Job, 2)
	errs := make([]error, 2)
	for i := range 2 {
		r := fleetcert.NewJobRunner(reg, quiet)
		r.BatchSize = 2
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.RunJob(ctx, scopeA, j.ID)
		}()
	}
	// Revoked meanwhile by hand: the job finds them revoked, or revokes
	// them first and the hand finds nothing to do.
	for _, id := range ids[:4] {
		if err := reg.UpdateCertificate(ctx, scopeA, id, fleetcert.StatusRevoked); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	var done *fleetcert.Job
	for i := range 2 {
		switch {
		case errs[i] == nil:
			done = results[i]
		case !errors.Is(errs[i], fleetcert.ErrJobHeld):
			t.Fatalf("runner %d: %v", i, errs[i])
		}
	}
	if done == nil {
		t.Fatal("no runner ran the job")
	}
	if done.Status != fleetcert.JobCompleted || done.Progress.Processed() != int64(len(ids)) || done.Progress.Signed != 3 {
		t.Fatalf("job = %+v, want COMPLETED with each of %d certificates once", done, len(ids))
	}
	chs, err := s.Changes(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]int{}
	for _, ch := range chs {
		if ch.Kind == fleetcert.ChangeCertificateUpdated && ch.NewStatus == fleetcert.StatusRevoked {
			revoked[ch.CertificateID]++
		}
	}
	for _, id := range ids {
		c := mustGet(t, s, scopeA, id)
		if c.Status != fleetcert.StatusRevoked || revoked[id] != 1 {
			t.Errorf("certificate %s: %s, revoked %d times in the feed; want REVOKED once", id[:8], c.Status, revoked[id])
		}
	}
	if int(done.Progress.Changed)+4 < len(ids) {
		t.Errorf("job changed %d, want at least %d", done.Progress.Changed, len(ids)-4)
	}
}
