package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/postgres"
)

var (
	scope    = fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	baseTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	errBoom  = errors.New("boom")
)

// appendChange appends a change of time at in its own Update and returns
// its Seq.
func appendChange(tb testing.TB, db *postgres.DB, at time.Time) int64 {
	tb.Helper()
	ctx := context.Background()
	ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: scope,
		CertificateID: fleetcert.CertificateID([]byte("c")), OldStatus: fleetcert.StatusActive,
		NewStatus: fleetcert.StatusInactive, Time: at}
	if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.AppendChange(ctx, ch) }); err != nil {
		tb.Fatal(err)
	}
	return ch.Seq
}

// head returns ChangesHead.
func head(tb testing.TB, db *postgres.DB) int64 {
	tb.Helper()
	h, err := db.ChangesHead(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// seqs returns the Seqs of chs.
func seqs(chs []fleetcert.Change) []int64 {
	var out []int64
	for _, ch := range chs {
		out = append(out, ch.Seq)
	}
	return out
}

func TestDB_ChangesHead(t *testing.T) {
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	a, b := mustOpenDBAt(t, url), mustOpenDBAt(t, url) // two nodes
	if h := head(t, a); h != 0 {
		t.Fatalf("head of an empty feed %d, want 0", h)
	}
	s1 := appendChange(t, a, baseTime)
	s2 := appendChange(t, b, baseTime)
	if s1 != 1 || s2 != 2 || head(t, a) != 2 || head(t, b) != 2 {
		t.Fatalf("seqs %d, %d, head %d: want 1, 2, 2", s1, s2, head(t, a))
	}

	// A rolled-back append gives its seq back: the feed has no gaps.
	err := a.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated, Scope: scope, Time: baseTime}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if h := head(t, b); h != 2 {
		t.Fatalf("head %d after a rolled-back append, want 2", h)
	}
	if s := appendChange(t, b, baseTime); s != 3 {
		t.Fatalf("seq %d after a rolled-back append, want 3", s)
	}

	// Pruning everything leaves the head, and seqs are not reused.
	if n, err := a.PruneChanges(ctx, baseTime.Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("PruneChanges removed %d (%v), want 3", n, err)
	}
	if h := head(t, a); h != 3 {
		t.Fatalf("head %d after pruning, want 3", h)
	}
	if s := appendChange(t, a, baseTime); s != 4 {
		t.Fatalf("seq %d after pruning, want 4", s)
	}
}

func TestDB_PruneChanges(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	var all []int64
	for i := range 10 {
		all = append(all, appendChange(t, db, baseTime.Add(time.Duration(i)*time.Minute)))
	}
	h := head(t, db)

	n, err := db.PruneChanges(ctx, baseTime.Add(5*time.Minute)) // the first five
	if err != nil || n != 5 {
		t.Fatalf("PruneChanges removed %d (%v), want 5", n, err)
	}
	for _, after := range []int64{0, all[0], all[3]} {
		if chs, err := db.Changes(ctx, after, 100); !errors.Is(err, fleetcert.ErrChangesPruned) {
			t.Fatalf("Changes(%d) after pruning through %d: %v, %v; want ErrChangesPruned", after, all[4], seqs(chs), err)
		}
	}
	chs, err := db.Changes(ctx, all[4], 100)
	if err != nil || fmt.Sprint(seqs(chs)) != fmt.Sprint(all[5:]) {
		t.Fatalf("Changes(%d) = %v, %v; want %v", all[4], seqs(chs), err, all[5:])
	}
	if got := head(t, db); got != h {
		t.Fatalf("head %d after pruning, want %d", got, h)
	}

	// Nothing older: nothing removed, the horizon stays.
	if n, err := db.PruneChanges(ctx, baseTime.Add(5*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second PruneChanges removed %d (%v), want 0", n, err)
	}
	if _, err := db.Changes(ctx, all[4], 100); err != nil {
		t.Fatalf("Changes(%d) after an empty prune: %v", all[4], err)
	}

	// Times need not follow seqs (nodes' clocks): the horizon is the highest
	// seq removed, whatever its time.
	late := appendChange(t, db, baseTime) // older than every change left
	if n, err := db.PruneChanges(ctx, baseTime.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("PruneChanges removed %d (%v), want 1", n, err)
	}
	if _, err := db.Changes(ctx, all[9], 100); !errors.Is(err, fleetcert.ErrChangesPruned) {
		t.Fatalf("Changes(%d) after pruning %d: %v, want ErrChangesPruned", all[9], late, err)
	}
	if chs, err := db.Changes(ctx, late, 100); err != nil || len(chs) != 0 {
		t.Fatalf("Changes(%d) = %v, %v; want none", late, seqs(chs), err)
	}
}

// TestDB_ChangesWatcherSkipsNothing runs Updates on two nodes at once, some
// rolled back, while a watcher loops on Changes(after lastSeen) as the
// device gateway does: it must read every committed change, in order. A feed
// numbered by a sequence fails this: a transaction can take seq 7, a later
// one 8 and commit first, and the watcher moves past 7 before it commits.
func TestDB_ChangesWatcherSkipsNothing(t *testing.T) {
	const nodes, writers, updates = 2, 4, 40
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	var dbs []*postgres.DB
	for range nodes {
		dbs = append(dbs, mustOpenDBAt(t, url))
	}

	var (
		mu        sync.Mutex
		committed = map[int64]bool{}
		wg        sync.WaitGroup
		errs      = make(chan error, nodes*writers)
	)
	for n, db := range dbs {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range updates {
					var chs []*fleetcert.Change
					err := db.Update(ctx, func(tx fleetcert.Tx) error {
						chs = nil
						for range 1 + i%2 { // one or two changes per transaction
							ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: scope,
								CertificateID: fleetcert.CertificateID(fmt.Appendf(nil, "%d/%d", n, w)), Time: baseTime}
							if err := tx.AppendChange(ctx, ch); err != nil {
								return err
							}
							chs = append(chs, ch)
						}
						// Work after the append keeps the transaction open while
						// others want to append.
						if _, err := tx.CountAccessKeys(ctx); err != nil {
							return err
						}
						if i%5 == 4 {
							return errBoom
						}
						return nil
					})
					if errors.Is(err, errBoom) {
						continue
					} else if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, ch := range chs {
						committed[ch.Seq] = true
					}
					mu.Unlock()
				}
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// The watcher, on the first node, until the writers are done and it has
	// read through the head.
	var seen []int64
	last := int64(0)
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		var target int64
		if finished {
			target = head(t, dbs[0])
		}
		chs, err := dbs[0].Changes(ctx, last, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chs {
			if ch.Seq <= last {
				t.Fatalf("Changes(%d) returned seq %d", last, ch.Seq)
			}
			seen = append(seen, ch.Seq)
			last = ch.Seq
		}
		if finished && last >= target && len(chs) == 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	seenSet := map[int64]bool{}
	for _, s := range seen {
		seenSet[s] = true
	}
	for s := range committed {
		if !seenSet[s] {
			t.Fatalf("committed change %d was skipped by the watcher", s)
		}
	}
	if len(seen) != len(committed) {
		t.Fatalf("the watcher read %d changes, %d committed", len(seen), len(committed))
	}
	for i, s := range seen {
		if s != int64(i+1) {
			t.Fatalf("the watcher read seq %d at position %d: the feed has a gap (rolled-back appends give their seq back)", s, i)
		}
	}
}

// TestDB_ChangesKeepRegistrations: a created entry keeps the registration
// it made (migration 0009), appended alone or in a batch, audited or not,
// and every node reads it back; an entry of another kind keeps none, and a
// created entry without one reads back without one.
func TestDB_ChangesKeepRegistrations(t *testing.T) {
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	a, b := mustOpenDBAt(t, url), mustOpenDBAt(t, url)
	reg := func(i int, ca string, mode fleetcert.CertificateMode, notBefore time.Time) *fleetcert.Certificate {
		return &fleetcert.Certificate{Scope: scope, ID: fleetcert.CertificateID(fmt.Appendf(nil, "r%d", i)),
			CACertificateID: ca, Status: fleetcert.StatusPendingActivation, Mode: mode,
			NotBefore: notBefore, NotAfter: baseTime.AddDate(1, 0, 0), Seq: int64(100 + i)}
	}
	created := func(r *fleetcert.Certificate, op string) *fleetcert.Change {
		return &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated, Scope: r.Scope, CertificateID: r.ID,
			NewStatus: r.Status, Time: baseTime, Registration: r, Operation: op, Actor: "AKIAEXAMPLE"}
	}
	caID := fleetcert.CertificateID([]byte("ca"))
	want := []*fleetcert.Certificate{
		reg(0, "", fleetcert.ModeSNIOnly, baseTime),      // alone, not audited
		reg(1, caID, fleetcert.ModeDefault, baseTime),    // alone, audited
		reg(2, caID, fleetcert.ModeDefault, time.Time{}), // in a batch, no NotBefore
		nil, // in a batch: another kind, given one anyway
		nil, // in a batch: created without one
		reg(5, "", fleetcert.ModeSNIOnly, baseTime), // in a batch, audited
	}
	err := a.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.AppendChange(ctx, created(want[0], "")); err != nil {
			return err
		}
		if err := tx.AppendChange(ctx, created(want[1], "RegisterCertificate")); err != nil {
			return err
		}
		other := created(reg(3, "", fleetcert.ModeDefault, baseTime), "")
		other.Kind, other.OldStatus, other.NewStatus = fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusRevoked
		bare := created(reg(4, "", fleetcert.ModeDefault, baseTime), "")
		bare.Registration = nil
		return tx.AppendChanges(ctx, []*fleetcert.Change{created(want[2], ""), other, bare, created(want[5], "RegisterCertificateWithoutCA")})
	})
	if err != nil {
		t.Fatal(err)
	}
	for node, db := range []*postgres.DB{a, b} {
		chs, err := db.Changes(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(chs) != len(want) {
			t.Fatalf("node %d: %d entries, want %d", node, len(chs), len(want))
		}
		for i, ch := range chs {
			got := ch.Registration
			switch w := want[i]; {
			case w == nil && got != nil:
				t.Errorf("node %d: entry %d (%s): Registration = %+v, want none", node, i, ch.Kind, got)
			case w != nil && (got == nil || !reflect.DeepEqual(*got, *w)):
				t.Errorf("node %d: entry %d: Registration =\n %+v\nwant\n %+v", node, i, got, w)
			}
		}
	}
}
