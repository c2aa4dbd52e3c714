package fleetcert_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/sqlite"
)

// jobFixture is a CA with certificates under it, certificates it signed
// registered without it, and certificates it did not sign.
type jobFixture struct {
	reg     *fleetcert.Registry
	clock   *clock
	ca      *fleetcert.CACertificate
	caCert  *testpki.Cert
	under   []string // registered under the CA
	signed  []string // registered without it, signed by its key
	strange []string // not the CA's: an impostor's of the same name, another CA's
}

func newJobFixture(t *testing.T, nUnder, nSigned int) *jobFixture {
	t.Helper()
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	f := &jobFixture{reg: reg, clock: clk}
	f.caCert = testpki.New(t, testpki.Options{IsCA: true, CommonName: "Job CA"})
	impostor := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Job CA"})
	other := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Other CA"})
	var err error
	f.ca, err = reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: f.caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	must(t, err)
	_, err = reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: other.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	must(t, err)
	for range nUnder {
		c, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{
			CertificatePEM: testpki.New(t, testpki.Options{Parent: f.caCert, CommonName: "under"}).PEM, Status: fleetcert.StatusActive})
		must(t, err)
		f.under = append(f.under, c.ID)
	}
	for range nSigned {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{Parent: f.caCert, CommonName: "signed"}).PEM, fleetcert.StatusActive)
		must(t, err)
		f.signed = append(f.signed, c.ID)
	}
	for _, p := range []*testpki.Cert{impostor, other} {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{Parent: p, CommonName: "strange"}).PEM, fleetcert.StatusActive)
		must(t, err)
		f.strange = append(f.strange, c.ID)
	}
	c, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{
		CertificatePEM: testpki.New(t, testpki.Options{Parent: other, CommonName: "other"}).PEM, Status: fleetcert.StatusActive})
	must(t, err)
	f.strange = append(f.strange, c.ID)
	return f
}

func (f *jobFixture) status(t *testing.T, id string) fleetcert.Status {
	t.Helper()
	c, err := f.reg.DescribeCertificate(context.Background(), scope, id)
	must(t, err)
	return c.Status
}

func quietRunner(reg *fleetcert.Registry, batch int) *fleetcert.JobRunner {
	jr := fleetcert.NewJobRunner(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	jr.BatchSize = batch
	return jr
}

// TestJobRules: a job moves each certificate of its CA by UpdateCertificate's
// rule (REVOKED is terminal, PENDING_TRANSFER waits for its transfer, the
// current status again changes nothing), finds those registered without the
// CA by their signature (not the impostor's of the same issuer name), leaves
// every other certificate alone, and appends one change per certificate it
// changed.
func TestJobRules(t *testing.T) {
	for _, tt := range []struct {
		name   string
		action fleetcert.Status
		from   fleetcert.Status
		want   fleetcert.Status
		count  string // changed, unchanged or skipped
	}{
		{"ok/revoke-active", fleetcert.StatusRevoked, fleetcert.StatusActive, fleetcert.StatusRevoked, "changed"},
		{"ok/revoke-inactive", fleetcert.StatusRevoked, fleetcert.StatusInactive, fleetcert.StatusRevoked, "changed"},
		{"ok/revoke-revoked", fleetcert.StatusRevoked, fleetcert.StatusRevoked, fleetcert.StatusRevoked, "unchanged"},
		{"ok/revoke-pending-transfer", fleetcert.StatusRevoked, fleetcert.StatusPendingTransfer, fleetcert.StatusPendingTransfer, "skipped"},
		{"ok/deactivate-active", fleetcert.StatusInactive, fleetcert.StatusActive, fleetcert.StatusInactive, "changed"},
		{"ok/deactivate-inactive", fleetcert.StatusInactive, fleetcert.StatusInactive, fleetcert.StatusInactive, "unchanged"},
		{"fail/deactivate-revoked", fleetcert.StatusInactive, fleetcert.StatusRevoked, fleetcert.StatusRevoked, "skipped"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newJobFixture(t, 3, 2)
			all := append(append([]string(nil), f.under...), f.signed...)
			for _, id := range all {
				switch tt.from {
				case fleetcert.StatusActive:
				case fleetcert.StatusPendingTransfer:
					// Only those registered without a CA can be transferred.
					if slices.Contains(f.signed, id) {
						must(t, f.reg.UpdateCertificate(ctx, scope, id, fleetcert.StatusInactive))
						_, err := f.reg.TransferCertificate(ctx, scope, id, "210987654321", "")
						must(t, err)
					}
				default:
					must(t, f.reg.UpdateCertificate(ctx, scope, id, tt.from))
				}
			}
			head, err := f.reg.ChangesHead(ctx)
			must(t, err)

			j, err := f.reg.StartJob(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: tt.action, StartedBy: "test"})
			must(t, err)
			if j.Status != fleetcert.JobInProgress || j.Phase != fleetcert.JobPhaseRegistered {
				t.Fatalf("started job = %+v", j)
			}
			// Batches of 2: several per phase, and a phase change in one.
			j, err = quietRunner(f.reg, 2).RunJob(ctx, scope, j.ID)
			must(t, err)
			if j.Status != fleetcert.JobCompleted || j.CompletedAt.IsZero() || j.Owner != "" {
				t.Fatalf("job after running = %+v, want COMPLETED and free", j)
			}
			if tt.from == fleetcert.StatusPendingTransfer {
				// Those under the CA stayed ACTIVE: revoked.
				for _, id := range f.under {
					if got := f.status(t, id); got != fleetcert.StatusRevoked {
						t.Errorf("certificate %s: %s, want REVOKED", id[:8], got)
					}
				}
				all = f.signed
			}
			for _, id := range all {
				if got := f.status(t, id); got != tt.want {
					t.Errorf("certificate %s: %s, want %s", id[:8], got, tt.want)
				}
			}
			for _, id := range f.strange {
				if got := f.status(t, id); got != fleetcert.StatusActive {
					t.Errorf("not the CA's certificate %s: %s, want ACTIVE", id[:8], got)
				}
			}
			want := fleetcert.JobProgress{Signed: int64(len(f.signed))}
			switch tt.count {
			case "changed":
				want.Changed = int64(len(all))
			case "unchanged":
				want.Unchanged = int64(len(all))
			case "skipped":
				want.Skipped = int64(len(all))
			}
			if tt.from == fleetcert.StatusPendingTransfer {
				want.Changed = int64(len(f.under))
			}
			if j.Progress != want {
				t.Errorf("progress = %+v, want %+v", j.Progress, want)
			}
			chs, err := f.reg.Changes(ctx, head, 1000)
			must(t, err)
			if len(chs) != int(want.Changed) {
				t.Errorf("%d changes, want one per certificate changed (%d)", len(chs), want.Changed)
			}
			for _, ch := range chs {
				if tt.from == fleetcert.StatusPendingTransfer {
					break
				}
				if ch.Kind != fleetcert.ChangeCertificateUpdated || ch.NewStatus != tt.want || ch.OldStatus != tt.from {
					t.Errorf("change %+v, want certificate.updated %s → %s", ch, tt.from, tt.want)
				}
			}
			if tt.count == "changed" {
				// As UpdateCertificate: the version moves.
				c, err := f.reg.DescribeCertificate(ctx, scope, f.under[0])
				must(t, err)
				if c.CustomerVersion < 2 {
					t.Errorf("customerVersion %d after a change, want it moved", c.CustomerVersion)
				}
			}
		})
	}
}

// TestJobOnePerCA: a second job on a CA is refused while one is in
// progress, naming it; another account does not see the job; a canceled
// job frees the CA and cannot be canceled again.
func TestJobOnePerCA(t *testing.T) {
	ctx := context.Background()
	f := newJobFixture(t, 1, 0)
	in := fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusRevoked, StartedBy: "test"}
	j, err := f.reg.StartJob(ctx, scope, in)
	must(t, err)
	_, err = f.reg.StartJob(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusInactive})
	wantCode(t, err, fleetcert.EResourceAlreadyExists)
	var e *fleetcert.Error
	if !errors.As(err, &e) || e.ResourceID != j.ID {
		t.Errorf("conflict %v does not name job %s", err, j.ID)
	}

	_, err = f.reg.Job(ctx, otherScope, j.ID)
	wantCode(t, err, fleetcert.EResourceNotFound)
	_, err = f.reg.StartJob(ctx, otherScope, in)
	wantCode(t, err, fleetcert.EResourceNotFound) // the CA is not the other account's
	_, err = f.reg.CancelJob(ctx, otherScope, j.ID, "x")
	wantCode(t, err, fleetcert.EResourceNotFound)
	if jobs, _, err := f.reg.ListJobs(ctx, otherScope, "", 10); err != nil || len(jobs) != 0 {
		t.Errorf("other account's ListJobs = %v, %v; want none", jobs, err)
	}
	_, err = f.reg.StartJob(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusActive})
	wantCode(t, err, fleetcert.EInvalidRequest)
	_, err = f.reg.Job(ctx, scope, "../../x")
	wantCode(t, err, fleetcert.EInvalidRequest)

	c, err := f.reg.CancelJob(ctx, scope, j.ID, "tester")
	must(t, err)
	if c.Status != fleetcert.JobCanceled {
		t.Fatalf("canceled job = %+v", c)
	}
	_, err = f.reg.CancelJob(ctx, scope, j.ID, "tester")
	wantCode(t, err, fleetcert.EInvalidRequest)
	// A canceled job is not run.
	got, err := quietRunner(f.reg, 10).RunJob(ctx, scope, j.ID)
	must(t, err)
	if got.Status != fleetcert.JobCanceled || f.status(t, f.under[0]) != fleetcert.StatusActive {
		t.Errorf("ran a canceled job: %+v", got)
	}

	f.clock.advance(time.Millisecond) // ids follow the start time
	j2, err := f.reg.StartJob(ctx, scope, in)
	must(t, err)
	latest, err := f.reg.LatestJob(ctx, scope, f.ca.ID)
	if err != nil || latest == nil || latest.ID != j2.ID {
		t.Errorf("LatestJob = %v, %v; want %s", latest, err, j2.ID)
	}
	jobs, next, err := f.reg.ListJobs(ctx, scope, "", 1)
	must(t, err)
	if len(jobs) != 1 || jobs[0].ID != j.ID || next != j.ID {
		t.Fatalf("ListJobs page 1 = %v, %q", jobs, next)
	}
	jobs, next, err = f.reg.ListJobs(ctx, scope, next, 1)
	must(t, err)
	if len(jobs) != 1 || jobs[0].ID != j2.ID || next != "" {
		t.Fatalf("ListJobs page 2 = %v, %q", jobs, next)
	}
}

// TestJobResumesAfterLeaseLapses: a runner stops between two batches
// without giving its lease back (a crash); another runner leaves the job
// alone while the lease runs, then takes it over and goes on from the
// cursor. The first runner, woken again, finds the job no longer its own
// and writes nothing: every certificate is changed once.
func TestJobResumesAfterLeaseLapses(t *testing.T) {
	ctx := context.Background()
	f := newJobFixture(t, 6, 2)
	a := quietRunner(f.reg, 2)
	j, err := a.Start(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusRevoked})
	must(t, err)

	stalled, resume := make(chan *fleetcert.Job), make(chan struct{})
	a.OnBatch = func(j *fleetcert.Job) {
		if j.Progress.Processed() == 2 {
			stalled <- j
			<-resume
		}
	}
	aDone := make(chan error, 1)
	go func() {
		_, err := a.RunJob(ctx, scope, j.ID)
		aDone <- err
	}()
	at := <-stalled
	if at.Cursor == nil || at.Owner != a.Node {
		t.Fatalf("after one batch: %+v", at)
	}

	b := quietRunner(f.reg, 2)
	if _, err := b.RunJob(ctx, scope, j.ID); !errors.Is(err, fleetcert.ErrJobHeld) {
		t.Fatalf("RunJob during a's lease = %v, want ErrJobHeld", err)
	}
	f.clock.advance(a.Lease + time.Second)
	done, err := b.RunJob(ctx, scope, j.ID)
	must(t, err)
	if done.Status != fleetcert.JobCompleted || done.Progress.Changed != 8 || done.Progress.Signed != 2 {
		t.Fatalf("job taken over = %+v, want COMPLETED with 8 changed", done)
	}

	close(resume)
	if err := <-aDone; !errors.Is(err, fleetcert.ErrJobHeld) && err != nil {
		t.Fatalf("stalled runner's RunJob = %v", err)
	}
	chs, err := f.reg.Changes(ctx, 0, 1000)
	must(t, err)
	revoked := map[string]int{}
	for _, ch := range chs {
		if ch.NewStatus == fleetcert.StatusRevoked {
			revoked[ch.CertificateID]++
		}
	}
	for _, id := range append(append([]string(nil), f.under...), f.signed...) {
		if revoked[id] != 1 {
			t.Errorf("certificate %s revoked %d times in the feed, want 1", id[:8], revoked[id])
		}
	}
}

// TestJobRunnerTakesUpJobs: Run takes up a job started in this process at
// once, and a job whose runner stopped gracefully (lease given back).
func TestJobRunnerTakesUpJobs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newJobFixture(t, 3, 1)
	jr := quietRunner(f.reg, 1)
	jr.PollInterval = time.Hour // only the wake-up
	ended := make(chan *fleetcert.Job, 10)
	jr.OnBatch = func(j *fleetcert.Job) {
		if j.Finished() {
			ended <- j
		}
	}
	go jr.Run(ctx)
	j, err := f.reg.StartJob(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusInactive})
	must(t, err)
	select {
	case done := <-ended:
		if done.ID != j.ID || done.Status != fleetcert.JobCompleted || done.Progress.Changed != 4 {
			t.Fatalf("ended %+v", done)
		}
	case <-time.After(time.Minute): // hang limit, not a synchronisation
		t.Fatal("the runner did not take the job up")
	}
}

// TestJobAudited: each certificate a job changes has an audit entry
// naming whoever started the job, though a runner ran it later.
func TestJobAudited(t *testing.T) {
	f := newJobFixture(t, 2, 1)
	starter := fleetcert.Actor{ID: "AKIAJOBSTARTER000001", AccountID: scope.AccountID, SourceIP: "192.0.2.7"}
	j, err := f.reg.StartJob(fleetcert.WithActor(context.Background(), starter), scope,
		fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusRevoked})
	must(t, err)
	_, err = quietRunner(f.reg, 2).RunJob(context.Background(), scope, j.ID)
	must(t, err)
	for _, id := range append(append([]string(nil), f.under...), f.signed...) {
		entries, _, err := f.reg.Audit(context.Background(), fleetcert.AuditQuery{CertificateID: id, Newest: true, Limit: 1})
		must(t, err)
		if len(entries) != 1 || entries[0].NewStatus != fleetcert.StatusRevoked || entries[0].Operation != "UpdateCertificate" ||
			entries[0].Actor != starter.ID || entries[0].SourceIP != starter.SourceIP {
			t.Errorf("audit of %s: %+v, want the revocation by %+v", id[:8], entries, starter)
		}
	}
}

// changingStore is a Store whose transactions change one certificate just
// before a bulk job's batch write, as another transaction may on a store
// that lets two writers run at once (PostgreSQL's READ COMMITTED).
type changingStore struct {
	fleetcert.Store
	scope  fleetcert.Scope
	id     string
	to     fleetcert.Status
	done   bool
	writes int // UpdateCertificateStatuses calls
}

func (s *changingStore) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error { return fn(changingTx{tx, s}) })
}

type changingTx struct {
	fleetcert.Tx
	s *changingStore
}

func (tx changingTx) UpdateCertificateStatuses(ctx context.Context, us []fleetcert.StatusUpdate) ([]bool, error) {
	tx.s.writes++
	if !tx.s.done {
		tx.s.done = true
		c, err := tx.Certificate(ctx, tx.s.scope, tx.s.id)
		if err != nil {
			return nil, err
		}
		c.Status, c.CustomerVersion = tx.s.to, c.CustomerVersion+1
		if err := tx.UpdateCertificate(ctx, c); err != nil {
			return nil, err
		}
	}
	return tx.Tx.UpdateCertificateStatuses(ctx, us)
}

// TestJobCertificateChangedSinceRead: a certificate changed between the
// batch's listing and its write is read again and moved by the rule on
// what it now is, with one change, and the rest of the batch goes on.
func TestJobCertificateChangedSinceRead(t *testing.T) {
	for _, tt := range []struct {
		name  string
		to    fleetcert.Status // what the other writer made it
		count fleetcert.JobProgress
	}{
		{"ok/deactivated-then-revoked", fleetcert.StatusInactive, fleetcert.JobProgress{Changed: 4}},
		{"ok/revoked-meanwhile", fleetcert.StatusRevoked, fleetcert.JobProgress{Changed: 3, Unchanged: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newJobFixture(t, 4, 0)
			cs := &changingStore{Store: f.reg.Store, scope: scope, id: f.under[1], to: tt.to}
			reg := fleetcert.NewRegistry(cs, nil)
			head, err := f.reg.ChangesHead(ctx)
			must(t, err)
			jr := quietRunner(reg, 10)
			j, err := jr.Start(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusRevoked, StartedBy: "test"})
			must(t, err)
			j, err = jr.RunJob(ctx, scope, j.ID)
			must(t, err)
			if j.Status != fleetcert.JobCompleted || j.Progress != tt.count {
				t.Fatalf("job = %+v %+v, want COMPLETED with %+v", j.Status, j.Progress, tt.count)
			}
			if cs.writes == 0 {
				t.Fatal("the job never wrote a batch")
			}
			for _, id := range f.under {
				if got := f.status(t, id); got != fleetcert.StatusRevoked {
					t.Errorf("certificate %s: %s, want REVOKED", id[:8], got)
				}
			}
			chs, err := f.reg.Changes(ctx, head, 1000)
			must(t, err)
			perCert := map[string]int{}
			for _, ch := range chs {
				if ch.Kind == fleetcert.ChangeCertificateUpdated && ch.NewStatus == fleetcert.StatusRevoked {
					perCert[ch.CertificateID]++
				}
			}
			for _, id := range f.under {
				want := 1
				if id == cs.id && tt.to == fleetcert.StatusRevoked {
					want = 0 // the job found it revoked: nothing to change
				}
				if perCert[id] != want {
					t.Errorf("certificate %s has %d changes to REVOKED from the job, want %d", id[:8], perCert[id], want)
				}
			}
		})
	}
}

// bulkStore counts the Updates that reach the store as UpdateBulk.
type bulkStore struct {
	*sqlite.DB
	bulk atomic.Int64
}

func (s *bulkStore) UpdateBulk(ctx context.Context, fn func(fleetcert.Tx) error) error {
	s.bulk.Add(1)
	return s.DB.UpdateBulk(ctx, fn)
}

// An import and each batch of a job reach a store that offers it as
// UpdateBulk (SQLite: a transaction of their own, without the savepoint
// that would copy every page they change); the one-row writes do not.
func TestBulkWritesUpdateBulk(t *testing.T) {
	ctx := context.Background()
	f := newJobFixture(t, 4, 0)
	bs := &bulkStore{DB: f.reg.Store.(*sqlite.DB)}
	reg := fleetcert.NewRegistry(bs, nil)
	leaves := []*x509.Certificate{testpki.New(t, testpki.Options{Parent: f.caCert}).Cert, testpki.New(t, testpki.Options{Parent: f.caCert}).Cert}
	_, err := reg.ImportCertificates(ctx, scope, fleetcert.ImportCertificatesInput{Certificates: leaves, CACertificateID: f.ca.ID, Status: fleetcert.StatusActive})
	must(t, err)
	if n := bs.bulk.Load(); n != 1 {
		t.Fatalf("ImportCertificates: %d bulk Updates, want 1", n)
	}
	_, err = reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	must(t, err)
	if n := bs.bulk.Load(); n != 1 {
		t.Fatalf("RegisterCertificateWithoutCA made a bulk Update (%d)", n)
	}
	jr := quietRunner(reg, 2)
	j, err := jr.Start(ctx, scope, fleetcert.JobInput{CACertificateID: f.ca.ID, Action: fleetcert.StatusRevoked, StartedBy: "test"})
	must(t, err)
	j, err = jr.RunJob(ctx, scope, j.ID)
	must(t, err)
	if j.Status != fleetcert.JobCompleted || j.Progress.Changed != 6 {
		t.Fatalf("job = %s %+v, want COMPLETED with 6 changed", j.Status, j.Progress)
	}
	// 6 certificates in batches of 2.
	if n := bs.bulk.Load() - 1; n < 3 {
		t.Errorf("the job wrote its batches in %d bulk Updates, want at least 3", n)
	}
}
