package fleetcert_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/sqlite"
)

var scope = fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}

// clock is a settable time source for Registry.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newClock starts at the real time: certificates made by testpki (and the
// tests' own, around time.Now) are checked against it. A fixed date made
// those checks pass only on the days around it.
func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

// mustOpenRegistry returns a Registry on a real SQLite store in a temp dir.
func mustOpenRegistry(tb testing.TB) (*fleetcert.Registry, *clock) {
	tb.Helper()
	return mustOpenRegistryOn(tb, func(db *sqlite.DB) fleetcert.Store { return db })
}

// mustOpenRegistryOn is mustOpenRegistry on the store wrap makes of the
// SQLite store.
func mustOpenRegistryOn(tb testing.TB, wrap func(*sqlite.DB) fleetcert.Store) (*fleetcert.Registry, *clock) {
	tb.Helper()
	db := sqlite.NewDB(filepath.Join(tb.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	iss, err := fleetcert.NewIssuer(time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	reg := fleetcert.NewRegistry(wrap(db), iss)
	c := newClock()
	reg.Now = c.now
	return reg, c
}

func changes(t *testing.T, reg *fleetcert.Registry) []fleetcert.Change {
	t.Helper()
	ch, err := reg.Store.Changes(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestRegistryUpdateMovesVersionAndFeed(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	leaf := testpki.Leaf(t)
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != fleetcert.StatusInactive || c.CustomerVersion != 1 || !c.CreationDate.Equal(clk.t) || c.Mode != fleetcert.ModeSNIOnly {
		t.Fatalf("registered: %+v", c)
	}

	clk.advance(time.Minute)
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	got, err := reg.DescribeCertificate(ctx, scope, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CustomerVersion != 2 || !got.LastModifiedDate.Equal(clk.t) || !got.CreationDate.Equal(c.CreationDate) || got.GenerationID == c.GenerationID {
		t.Fatalf("after update: %+v", got)
	}

	// Idempotent: no version move, no feed entry.
	clk.advance(time.Minute)
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	again, _ := reg.DescribeCertificate(ctx, scope, c.ID)
	if again.CustomerVersion != 2 || !again.LastModifiedDate.Equal(got.LastModifiedDate) {
		t.Fatalf("no-op update moved the version: %+v", again)
	}

	// Refused: no feed entry, nothing changed.
	if err := reg.DeleteCertificate(ctx, scope, c.ID, false); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("delete ACTIVE: %v", err)
	}
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusActive); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("activate REVOKED: %v", err)
	}
	if err := reg.DeleteCertificate(ctx, scope, c.ID, true); err != nil {
		t.Fatal(err)
	}

	want := []struct {
		kind     fleetcert.ChangeKind
		old, new fleetcert.Status
	}{
		{fleetcert.ChangeCertificateCreated, "", fleetcert.StatusInactive},
		{fleetcert.ChangeCertificateUpdated, fleetcert.StatusInactive, fleetcert.StatusActive},
		{fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusRevoked},
		{fleetcert.ChangeCertificateDeleted, fleetcert.StatusRevoked, ""},
	}
	feed := changes(t, reg)
	if len(feed) != len(want) {
		t.Fatalf("feed has %d entries, want %d: %+v", len(feed), len(want), feed)
	}
	for i, w := range want {
		f := feed[i]
		if f.Kind != w.kind || f.OldStatus != w.old || f.NewStatus != w.new || f.CertificateID != c.ID || f.Scope != scope {
			t.Errorf("feed[%d] = %+v, want %+v", i, f, w)
		}
		if i > 0 && f.Seq <= feed[i-1].Seq {
			t.Errorf("feed not ordered: %d after %d", f.Seq, feed[i-1].Seq)
		}
	}
}

func TestRegistryDuplicateNamesExisting(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	leaf := testpki.Leaf(t)
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusRevoked)
	var e *fleetcert.Error
	if fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists || !errors.As(err, &e) || e.ResourceID != c.ID || e.ResourceARN != c.ARN() {
		t.Fatalf("duplicate: %#v", err)
	}
	// AWS's message, quoted in getmoto/moto#3320.
	if msg := fleetcert.ErrorMessage(err); msg != "The certificate is already provisioned or registered" {
		t.Errorf("duplicate message %q, want AWS's", msg)
	}
	if got, _ := reg.DescribeCertificate(ctx, scope, c.ID); got.Status != fleetcert.StatusActive {
		t.Fatal("duplicate changed the stored record")
	}
	if n := len(changes(t, reg)); n != 1 {
		t.Fatalf("a refused duplicate wrote %d feed entries", n-1)
	}
	// Another account, another region: separate registrations.
	for _, s := range []fleetcert.Scope{{AccountID: "210987654321", Region: "us-east-1"}, {AccountID: scope.AccountID, Region: "eu-west-1"}} {
		if _, err := reg.RegisterCertificateWithoutCA(ctx, s, leaf.PEM, ""); err != nil {
			t.Fatalf("register in %v: %v", s, err)
		}
	}
}

func TestRegistryListPaging(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	var ids []string
	for i := 0; i < 10; i++ {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
		if i%3 == 0 {
			clk.advance(time.Millisecond) // some share a creationDate
		}
	}
	for _, asc := range []bool{true, false} {
		var got []string
		opts := fleetcert.ListOptions{PageSize: ptr(3), Ascending: asc}
		for {
			page, err := reg.ListCertificates(ctx, scope, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page.Certificates {
				got = append(got, c.ID)
			}
			if page.NextMarker == "" {
				break
			}
			opts.Marker = page.NextMarker
		}
		for i := range ids {
			want := ids[i]
			if !asc {
				want = ids[len(ids)-1-i]
			}
			if got[i] != want {
				t.Fatalf("asc=%v: order %v, registered %v", asc, got, ids)
			}
		}
	}
	// An exact multiple of the page size ends without an empty page.
	page, err := reg.ListCertificates(ctx, scope, fleetcert.ListOptions{PageSize: ptr(10)})
	if err != nil || len(page.Certificates) != 10 || page.NextMarker != "" {
		t.Fatalf("full page: %v %d %q", err, len(page.Certificates), page.NextMarker)
	}
	for _, n := range []int{0, -5, 251} {
		if _, err := reg.ListCertificates(ctx, scope, fleetcert.ListOptions{PageSize: ptr(n)}); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
			t.Errorf("pageSize %d: %v", n, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestRegistryCreateFromCSRAndKeys(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	csr, _ := testpki.CSR(t, "thing-7")
	c, err := reg.CreateCertificateFromCSR(ctx, scope, csr, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != fleetcert.StatusActive || c.Mode != fleetcert.ModeDefault || c.CACertificateID != "" {
		t.Fatalf("from CSR: %+v", c)
	}
	c2, kp, err := reg.CreateKeysAndCertificate(ctx, scope, false)
	if err != nil || c2.Status != fleetcert.StatusInactive || kp.PrivateKey == "" {
		t.Fatalf("keys and certificate: %+v %v", c2, err)
	}
	// Without an issuing CA, issuing fails as an internal error, not a
	// caller's mistake.
	reg.Issuer = nil
	if _, _, err := reg.CreateKeysAndCertificate(ctx, scope, false); fleetcert.ErrorCode(err) != fleetcert.EInternalFailure {
		t.Fatalf("no issuer: %v", err)
	}
}

// writeCountingStore counts the certificate writes of the Registry's
// transactions: whole rows and status columns.
type writeCountingStore struct {
	fleetcert.Store
	rows, statuses int
}

type writeCountingTx struct {
	fleetcert.Tx
	s *writeCountingStore
}

func (s *writeCountingStore) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error { return fn(writeCountingTx{tx, s}) })
}

func (tx writeCountingTx) UpdateCertificate(ctx context.Context, c *fleetcert.Certificate) error {
	tx.s.rows++
	return tx.Tx.UpdateCertificate(ctx, c)
}

func (tx writeCountingTx) UpdateCertificateStatus(ctx context.Context, c *fleetcert.Certificate, from int) (bool, error) {
	tx.s.statuses++
	return tx.Tx.UpdateCertificateStatus(ctx, c, from)
}

// TestRegistryUpdateWritesStatusOnly: UpdateCertificate writes the columns
// a status change moves, not the whole row (which made SQLite rewrite every
// index of the row, each at a random place in a large store), and what it
// leaves alone is as it was.
func TestRegistryUpdateWritesStatusOnly(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	counts := &writeCountingStore{Store: reg.Store}
	reg.Store = counts
	before, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	for i, to := range []fleetcert.Status{fleetcert.StatusInactive, fleetcert.StatusActive, fleetcert.StatusRevoked} {
		clk.advance(time.Minute)
		if err := reg.UpdateCertificate(ctx, scope, before.ID, to); err != nil {
			t.Fatal(err)
		}
		got, err := reg.DescribeCertificate(ctx, scope, before.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != to || got.CustomerVersion != before.CustomerVersion+i+1 || !got.LastModifiedDate.Equal(clk.t) {
			t.Fatalf("after update %d to %s: %+v", i+1, to, got)
		}
		// What a status change leaves alone.
		want := *before
		want.Status, want.CustomerVersion, want.LastModifiedDate, want.GenerationID = got.Status, got.CustomerVersion, got.LastModifiedDate, got.GenerationID
		if got.PEM != want.PEM || got.CACertificateID != want.CACertificateID || !got.CreationDate.Equal(want.CreationDate) ||
			got.Mode != want.Mode || got.OwnedBy != want.OwnedBy || !got.NotAfter.Equal(want.NotAfter) || got.Seq != want.Seq {
			t.Fatalf("after update %d: %+v, want %+v", i+1, got, want)
		}
	}
	if counts.rows != 0 || counts.statuses != 3 {
		t.Fatalf("3 status changes wrote %d whole rows and %d statuses, want 0 and 3", counts.rows, counts.statuses)
	}
}
