package fleetcert_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

// gatedStore is a SQLite store whose UpdateFailFirst calls are counted and
// wait until gate is closed, having said so on entered.
// The call numbered panicAt (from 1), when set, panics inside its fn.
type gatedStore struct {
	*sqlite.DB
	entered chan struct{}
	gate    chan struct{}
	calls   atomic.Int32
	panicAt int32
}

func (s *gatedStore) UpdateFailFirst(ctx context.Context, fn func(fleetcert.Tx) error) error {
	n := s.calls.Add(1)
	s.entered <- struct{}{}
	<-s.gate
	return s.DB.UpdateFailFirst(ctx, func(tx fleetcert.Tx) error {
		if n == s.panicAt {
			panic("the store's fn panics")
		}
		return fn(tx)
	})
}

func openGatedRegistry(t *testing.T) (*fleetcert.Registry, *gatedStore) {
	t.Helper()
	var s *gatedStore
	reg, _ := mustOpenRegistryOn(t, func(db *sqlite.DB) fleetcert.Store {
		s = &gatedStore{DB: db, entered: make(chan struct{}, 100), gate: make(chan struct{})}
		return s
	})
	return reg, s
}

// TestRegistrarBatchesWhatQueues: registrations that queue while one is
// being stored are stored together, in one Update, each with its own
// caller in the audit log; one whose caller's ctx ends while it is queued
// leaves the queue and is not stored; the caller that led hands the lead
// on, so every queued registration is stored.
func TestRegistrarBatchesWhatQueues(t *testing.T) {
	reg, store := openGatedRegistry(t)
	type result struct {
		c   *fleetcert.Certificate
		err error
	}
	register := func(ctx context.Context, who string) <-chan result {
		ch := make(chan result, 1)
		leaf := testpki.Leaf(t)
		go func() {
			ctx := fleetcert.WithActor(ctx, fleetcert.Actor{ID: who, AccountID: scope.AccountID, SourceIP: "192.0.2.1"})
			c, err := reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusActive)
			ch <- result{c, err}
		}()
		return ch
	}
	first := register(context.Background(), "AKIAFIRST")
	<-store.entered // its batch, alone, waits at the gate
	var queued []<-chan result
	for i := range 3 {
		queued = append(queued, register(context.Background(), fmt.Sprintf("AKIAQUEUED%d", i)))
		testwait.For(t, "the registration queued", func() bool { return fleetcert.RegistrationsQueued(reg) == i+1 })
	}
	ctx, cancel := context.WithCancel(context.Background())
	gone := register(ctx, "AKIAGONE")
	testwait.For(t, "the fourth registration queued", func() bool { return fleetcert.RegistrationsQueued(reg) == 4 })
	cancel()
	if r := <-gone; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("a registration whose ctx ended while queued: %v, want context.Canceled", r.err)
	}
	close(store.gate)

	results := []result{<-first}
	for _, ch := range queued {
		results = append(results, <-ch)
	}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("registration %d: %v", i, r.err)
		}
	}
	if n := store.calls.Load(); n != 2 {
		t.Fatalf("%d Updates, want 2: the first alone, the three queued together", n)
	}
	ctx = context.Background()
	for i, r := range results {
		got, err := reg.DescribeCertificate(ctx, scope, r.c.ID)
		if err != nil || got.Seq != r.c.Seq || got.Status != fleetcert.StatusActive {
			t.Fatalf("registration %d stored as %+v, %v; want Seq %d", i, got, err, r.c.Seq)
		}
		entries, _, err := reg.Audit(ctx, fleetcert.AuditQuery{AccountID: scope.AccountID, Region: scope.Region, CertificateID: r.c.ID})
		want := "AKIAFIRST"
		if i > 0 {
			want = fmt.Sprintf("AKIAQUEUED%d", i-1)
		}
		if err != nil || len(entries) != 1 || entries[0].Actor != want || entries[0].Operation != "RegisterCertificateWithoutCA" ||
			entries[0].NewStatus != fleetcert.StatusActive || entries[0].SourceIP != "192.0.2.1" {
			t.Fatalf("registration %d's audit entries %+v, %v; want one by %s", i, entries, err, want)
		}
	}
	if n := len(changes(t, reg)); n != 4 {
		t.Fatalf("%d feed entries, want 4 (the cancelled registration wrote none)", n)
	}
	if got := fleetcert.RegistrationsQueued(reg); got != 0 {
		t.Fatalf("%d registrations left queued", got)
	}
}

// TestRegistrarConcurrentDuplicates: the same certificate registered by
// many callers at once, in one batch or several, is stored once; every
// other caller gets AWS's ResourceAlreadyExistsException naming it.
func TestRegistrarConcurrentDuplicates(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	leaf := testpki.Leaf(t)
	const callers = 16
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, errs[i] = reg.RegisterCertificateWithoutCA(context.Background(), scope, leaf.PEM, fleetcert.StatusActive)
		})
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		var e *fleetcert.Error
		switch {
		case err == nil:
			stored++
		case !errors.As(err, &e) || e.Code != fleetcert.EResourceAlreadyExists || e.ResourceID != fleetcert.CertificateID(leaf.Cert.Raw):
			t.Fatalf("a duplicate registration: %#v", err)
		}
	}
	if stored != 1 {
		t.Fatalf("%d of %d callers stored the certificate, want 1", stored, callers)
	}
	if n := len(changes(t, reg)); n != 1 {
		t.Fatalf("%d feed entries, want 1", n)
	}
}

// TestRegistrarPanicHandsOn: when storing a batch panics, the leader's
// caller panics, the batch's other callers get an error, and the lead
// passes on: a registration queued behind is stored, and later ones too.
func TestRegistrarPanicHandsOn(t *testing.T) {
	reg, store := openGatedRegistry(t)
	store.panicAt = 1
	register := func() <-chan error {
		ch := make(chan error, 1)
		leaf := testpki.Leaf(t)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					ch <- fmt.Errorf("panicked: %v", p)
				}
			}()
			_, err := reg.RegisterCertificateWithoutCA(context.Background(), scope, leaf.PEM, fleetcert.StatusActive)
			ch <- err
		}()
		return ch
	}
	leader := register()
	<-store.entered
	behind := register()
	testwait.For(t, "a registration queued", func() bool { return fleetcert.RegistrationsQueued(reg) == 1 })
	close(store.gate)
	if err := within(t, leader); err == nil || err.Error() != "panicked: the store's fn panics" {
		t.Fatalf("the leader: %v, want its panic", err)
	}
	if err := within(t, behind); err != nil {
		t.Fatalf("the registration queued behind: %v", err)
	}
	if err := within(t, register()); err != nil {
		t.Fatalf("a later registration: %v", err)
	}
}

// within receives from ch, failing t if nothing comes for testwait.Hang.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testwait.Hang):
		t.Fatalf("waited %s for a registration's outcome", testwait.Hang)
		panic("unreachable")
	}
}

// TestRegistrarUnderCAs: registrations under a CA queue and are stored
// together with the others. The issuer is found before a registration
// queues and found again in its batch's transaction, so one whose CA was
// deactivated while it queued fails alone (CertificateStateException),
// and the others of its batch are stored, each with its CA and mode.
func TestRegistrarUnderCAs(t *testing.T) {
	ctx := context.Background()
	reg, store := openGatedRegistry(t)
	goneCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Deactivated while queued"})
	gone := registerCA(t, reg, scope, goneCert, fleetcert.RegisterCAInput{SetAsActive: true})
	keptCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Kept"})
	kept := registerCA(t, reg, scope, keptCert, fleetcert.RegisterCAInput{SetAsActive: true, Mode: fleetcert.ModeSNIOnly})

	type result struct {
		c   *fleetcert.Certificate
		err error
	}
	register := func(f func() (*fleetcert.Certificate, error)) <-chan result {
		ch := make(chan result, 1)
		go func() {
			c, err := f()
			ch <- result{c, err}
		}()
		return ch
	}
	under := func(ca *testpki.Cert, caPEM string) <-chan result {
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		return register(func() (*fleetcert.Certificate, error) {
			return reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: leaf.PEM, CACertificatePEM: caPEM, SetAsActive: true})
		})
	}
	first := under(keptCert, "")
	<-store.entered // its batch, alone, waits at the gate
	underGone := under(goneCert, "")
	testwait.For(t, "the registration under the CA to deactivate queued", func() bool { return fleetcert.RegistrationsQueued(reg) == 1 })
	underKept := under(keptCert, keptCert.PEM)
	testwait.For(t, "the registration under the kept CA queued", func() bool { return fleetcert.RegistrationsQueued(reg) == 2 })
	leaf := testpki.Leaf(t)
	withoutCA := register(func() (*fleetcert.Certificate, error) {
		return reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusActive)
	})
	testwait.For(t, "the registration without a CA queued", func() bool { return fleetcert.RegistrationsQueued(reg) == 3 })
	if err := reg.UpdateCACertificate(ctx, scope, gone.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	close(store.gate)

	r := <-underGone
	if fleetcert.ErrorCode(r.err) != fleetcert.ECertificateState {
		t.Fatalf("registration under a CA deactivated while it queued: %+v, %v; want CertificateStateException", r.c, r.err)
	}
	for name, ch := range map[string]<-chan result{"first": first, "under the kept CA": underKept} {
		r := <-ch
		if r.err != nil || r.c.CACertificateID != kept.ID || r.c.Mode != fleetcert.ModeSNIOnly || r.c.Status != fleetcert.StatusActive {
			t.Fatalf("registration %s: %+v, %v; want ACTIVE under CA %s in SNI_ONLY mode", name, r.c, r.err, kept.ID)
		}
		got, err := reg.DescribeCertificate(ctx, scope, r.c.ID)
		if err != nil || got.CACertificateID != kept.ID || got.Mode != fleetcert.ModeSNIOnly {
			t.Fatalf("registration %s stored as %+v, %v", name, got, err)
		}
	}
	if r := <-withoutCA; r.err != nil {
		t.Fatalf("registration without a CA: %v", r.err)
	}
	if n := store.calls.Load(); n != 2 {
		t.Fatalf("%d Updates, want 2: the first alone, the three queued together", n)
	}
	created := 0
	for _, ch := range changes(t, reg) {
		if ch.Kind == fleetcert.ChangeCertificateCreated {
			created++
		}
	}
	if created != 3 {
		t.Fatalf("%d certificates created in the feed, want 3", created)
	}
}
