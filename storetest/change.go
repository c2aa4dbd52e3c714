package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// changes returns Changes(after, limit).
func changes(tb testing.TB, s fleetcert.Store, after int64, limit int) []fleetcert.Change {
	tb.Helper()
	chs, err := s.Changes(context.Background(), after, limit)
	if err != nil {
		tb.Fatalf("changes after %d: %v", after, err)
	}
	return chs
}

// appendChanges appends chs in one Update, setting their Seq.
func appendChanges(tb testing.TB, s fleetcert.Store, chs ...*fleetcert.Change) {
	tb.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		for _, ch := range chs {
			if err := tx.AppendChange(ctx, ch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("append changes: %v", err)
	}
}

// newChange returns a status change of certificate name.
func newChange(scope fleetcert.Scope, name string, kind fleetcert.ChangeKind, from, to fleetcert.Status, at time.Time) *fleetcert.Change {
	return &fleetcert.Change{Kind: kind, Scope: scope, CertificateID: certificateID(name), OldStatus: from, NewStatus: to, Time: at}
}

func testChanges(t *testing.T, s fleetcert.Store) {
	if got := changes(t, s, 0, 10); len(got) != 0 {
		t.Fatalf("empty store has changes %+v", got)
	}
	want := []*fleetcert.Change{
		newChange(scopeA, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive, baseTime),
		newChange(scopeB, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusInactive, baseTime.Add(time.Millisecond)),
		newChange(scopeA, "c", fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusRevoked, baseTime.Add(2*time.Millisecond)),
		newChange(scopeARegion, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusPendingActivation, baseTime.Add(3*time.Millisecond)),
		newChange(scopeA, "c", fleetcert.ChangeCertificateDeleted, fleetcert.StatusRevoked, "", baseTime.Add(4*time.Millisecond)),
		{Kind: fleetcert.ChangeSessionStarted, Scope: scopeB, CertificateID: certificateID("d"), Time: baseTime.Add(5 * time.Millisecond),
			ClientID: "sensor/7 ✓", SessionID: "node-a/3f8e2a3c-1b5d-4e6f-8a9b-0c1d2e3f4a5b"},
	}
	appendChanges(t, s, want[0])
	appendChanges(t, s, want[1], want[2]) // two in one transaction
	appendChanges(t, s, want[3])
	appendChanges(t, s, want[4])
	appendChanges(t, s, want[5])
	for i := 1; i < len(want); i++ {
		if want[i].Seq <= want[i-1].Seq {
			t.Fatalf("change Seq %d after %d, want increasing", want[i].Seq, want[i-1].Seq)
		}
	}
	got := changes(t, s, 0, 100)
	if len(got) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], *want[i]) {
			t.Fatalf("change %d:\n got %+v\nwant %+v", i, got[i], *want[i])
		}
	}
}

func testChangesAfterLimit(t *testing.T, s fleetcert.Store) {
	var all []*fleetcert.Change
	for i := range 10 {
		ch := newChange(scopeA, "c", fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusInactive,
			baseTime.Add(time.Duration(i)*time.Millisecond))
		appendChanges(t, s, ch)
		all = append(all, ch)
	}
	seqs := func(chs []fleetcert.Change) []int64 {
		var out []int64
		for _, ch := range chs {
			out = append(out, ch.Seq)
		}
		return out
	}
	wantSeqs := func(chs []*fleetcert.Change) []int64 {
		var out []int64
		for _, ch := range chs {
			out = append(out, ch.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		after int64
		limit int
		want  []*fleetcert.Change
	}{
		{"from the start", 0, 4, all[:4]},
		{"middle", all[3].Seq, 4, all[4:8]},
		{"past the end", all[7].Seq, 4, all[8:]},
		{"at the end", all[9].Seq, 4, nil},
		{"all", 0, 100, all},
	} {
		got := changes(t, s, tc.after, tc.limit)
		if g, w := seqs(got), wantSeqs(tc.want); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: Changes(%d, %d) = %v, want %v", tc.name, tc.after, tc.limit, g, w)
		}
	}
}

// changesHead returns ChangesHead.
func changesHead(tb testing.TB, s fleetcert.Store) int64 {
	tb.Helper()
	head, err := s.ChangesHead(context.Background())
	if err != nil {
		tb.Fatalf("changes head: %v", err)
	}
	return head
}

// prune returns PruneChanges(before).
func prune(tb testing.TB, s fleetcert.Store, before time.Time) int64 {
	tb.Helper()
	n, err := s.PruneChanges(context.Background(), before)
	if err != nil {
		tb.Fatalf("prune changes before %s: %v", before, err)
	}
	return n
}

// The feed's commit-order promise, under concurrent writers: a watcher
// that only ever asks for the changes after the last Seq it read sees
// every committed change. Some transactions wait a little between their
// append and their commit, so that a later append commits first; some
// roll back, leaving gaps the watcher must not wait for.
//
// This is the case a naive PostgreSQL store fails: a sequence (or
// identity column) hands out Seq at insert, not at commit, so a
// transaction holding Seq 10 may commit after one holding 11; the watcher
// reads 11, moves past 10, and never reads it. Such a store must
// serialise the append with the commit (or expose only Seqs below the
// oldest transaction still in flight).
func testChangesConcurrentUpdates(t *testing.T, s fleetcert.Store) {
	const (
		writers = 4
		updates = 20 // per writer
	)
	ctx := context.Background()
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		committed []int64
		errs      = make(chan error, writers*updates)
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 14))
			for i := range updates {
				var chs []*fleetcert.Change
				for range 1 + rnd.IntN(2) {
					chs = append(chs, newChange(scopeA, fmt.Sprint(w, "-", i), fleetcert.ChangeCertificateUpdated,
						fleetcert.StatusActive, fleetcert.StatusInactive, baseTime.Add(time.Duration(i)*time.Millisecond)))
				}
				delay := time.Duration(0)
				if rnd.IntN(3) == 0 {
					delay = time.Duration(rnd.IntN(2000)) * time.Microsecond
				}
				rollBack := rnd.IntN(8) == 0
				err := s.Update(ctx, func(tx fleetcert.Tx) error {
					for _, ch := range chs {
						if err := tx.AppendChange(ctx, ch); err != nil {
							return err
						}
					}
					// Between the append and the commit: another writer's
					// later Seq may commit first.
					time.Sleep(delay)
					if rollBack {
						return errBoom
					}
					return nil
				})
				if rollBack {
					if !errors.Is(err, errBoom) {
						errs <- fmt.Errorf("rolled-back Update returned %v", err)
					}
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				// Visibility: a change whose Update returned is read at once.
				last := chs[len(chs)-1].Seq
				got, err := s.Changes(ctx, last-1, 1)
				if err != nil {
					errs <- err
					return
				}
				if len(got) != 1 || got[0].Seq != last {
					errs <- fmt.Errorf("Changes(%d, 1) right after its Update returned = %+v, want Seq %d", last-1, got, last)
				}
				mu.Lock()
				for _, ch := range chs {
					committed = append(committed, ch.Seq)
				}
				mu.Unlock()
			}
		}()
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	// The watcher: small pages, so that it asks often and mid-burst.
	seen := map[int64]bool{}
	var lastSeen int64
	done := false
	for {
		chs, err := s.Changes(ctx, lastSeen, 5)
		if err != nil {
			t.Fatalf("watcher: Changes(%d): %v", lastSeen, err)
		}
		for _, ch := range chs {
			if ch.Seq <= lastSeen {
				t.Fatalf("watcher: Changes(%d) returned Seq %d", lastSeen, ch.Seq)
			}
			seen[ch.Seq] = true
			lastSeen = ch.Seq
		}
		if len(chs) > 0 {
			continue
		}
		if done {
			break
		}
		select {
		case <-writing:
			// Every writer returned: one more read to the end.
			done = true
		default:
			runtime.Gosched()
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(committed) == 0 {
		t.Fatal("no Update committed")
	}
	var missed []int64
	for _, seq := range committed {
		if !seen[seq] {
			missed = append(missed, seq)
		}
	}
	if len(missed) > 0 {
		slices.Sort(missed)
		t.Fatalf("the watcher never read %d of %d committed changes (it read up to Seq %d): %v",
			len(missed), len(committed), lastSeen, missed)
	}
	if len(seen) != len(committed) {
		t.Fatalf("the watcher read %d changes, %d committed (rolled-back changes read?)", len(seen), len(committed))
	}
}

func testChangesHead(t *testing.T, s fleetcert.Store) {
	if head := changesHead(t, s); head != 0 {
		t.Fatalf("ChangesHead of an empty feed = %d, want 0", head)
	}
	a := newChange(scopeA, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive, baseTime)
	b := newChange(scopeA, "c", fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusInactive, baseTime.Add(time.Minute))
	appendChanges(t, s, a)
	if head := changesHead(t, s); head != a.Seq {
		t.Fatalf("ChangesHead = %d, want %d (the only change)", head, a.Seq)
	}
	appendChanges(t, s, b)
	if head := changesHead(t, s); head != b.Seq {
		t.Fatalf("ChangesHead = %d, want %d (the last committed change)", head, b.Seq)
	}
	// A rolled-back append does not move it.
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.AppendChange(ctx, newChange(scopeA, "c", fleetcert.ChangeCertificateDeleted, fleetcert.StatusInactive, "", baseTime)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want %v", err, errBoom)
	}
	if head := changesHead(t, s); head != b.Seq {
		t.Fatalf("ChangesHead after a rolled-back append = %d, want %d", head, b.Seq)
	}
	// Pruning everything leaves it where it was, and Seqs are not reused.
	if n := prune(t, s, baseTime.Add(time.Hour)); n != 2 {
		t.Fatalf("PruneChanges removed %d, want 2", n)
	}
	if head := changesHead(t, s); head != b.Seq {
		t.Fatalf("ChangesHead after pruning every change = %d, want %d", head, b.Seq)
	}
	c := newChange(scopeA, "d", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive, baseTime.Add(2*time.Hour))
	appendChanges(t, s, c)
	if c.Seq <= b.Seq {
		t.Fatalf("Seq %d after pruning, want above %d (never reused)", c.Seq, b.Seq)
	}
	if head := changesHead(t, s); head != c.Seq {
		t.Fatalf("ChangesHead = %d, want %d", head, c.Seq)
	}
}

func testPruneChanges(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	var all []*fleetcert.Change
	for i := range 10 {
		ch := newChange(scopeA, fmt.Sprint("c", i), fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive,
			baseTime.Add(time.Duration(i)*time.Minute))
		appendChanges(t, s, ch)
		all = append(all, ch)
	}
	head := changesHead(t, s)
	if n := prune(t, s, baseTime.Add(-time.Minute)); n != 0 {
		t.Fatalf("PruneChanges before the oldest change removed %d, want 0", n)
	}
	if got := changes(t, s, 0, 100); len(got) != 10 {
		t.Fatalf("%d changes after pruning nothing, want 10", len(got))
	}
	// Time before baseTime+5m: the first five, strictly before.
	if n := prune(t, s, baseTime.Add(5*time.Minute)); n != 5 {
		t.Fatalf("PruneChanges removed %d, want 5", n)
	}
	horizon := all[4].Seq
	for _, after := range []int64{0, all[0].Seq, all[3].Seq, horizon - 1} {
		got, err := s.Changes(ctx, after, 100)
		if !errors.Is(err, fleetcert.ErrChangesPruned) {
			t.Fatalf("Changes(%d) below the pruned horizon %d = %+v, %v; want ErrChangesPruned", after, horizon, got, err)
		}
	}
	// At and after the horizon nothing is lost.
	for _, tc := range []struct {
		after int64
		want  []*fleetcert.Change
	}{
		{horizon, all[5:]},
		{all[6].Seq, all[7:]},
		{all[9].Seq, nil},
	} {
		got := changes(t, s, tc.after, 100)
		if len(got) != len(tc.want) {
			t.Fatalf("Changes(%d) returned %d changes, want %d", tc.after, len(got), len(tc.want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], *tc.want[i]) {
				t.Fatalf("Changes(%d)[%d]:\n got %+v\nwant %+v", tc.after, i, got[i], *tc.want[i])
			}
		}
	}
	if h := changesHead(t, s); h != head {
		t.Fatalf("ChangesHead after pruning = %d, want %d (unchanged)", h, head)
	}
	// Pruning again by the same age removes nothing and keeps the horizon.
	if n := prune(t, s, baseTime.Add(5*time.Minute)); n != 0 {
		t.Fatalf("PruneChanges again removed %d, want 0", n)
	}
	if _, err := s.Changes(ctx, horizon-1, 1); !errors.Is(err, fleetcert.ErrChangesPruned) {
		t.Fatalf("Changes(%d) after a second prune: %v, want ErrChangesPruned", horizon-1, err)
	}
	if got := changes(t, s, horizon, 100); len(got) != 5 {
		t.Fatalf("Changes(%d) after a second prune returned %d changes, want 5", horizon, len(got))
	}
}

// Visibility: once Update returns, Changes and ChangesHead reflect its
// changes, with no wait.
func testChangesVisibleAfterUpdate(t *testing.T, s fleetcert.Store) {
	var last int64
	for i := range 20 {
		ch := newChange(scopeA, fmt.Sprint("c", i), fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive,
			baseTime.Add(time.Duration(i)*time.Millisecond))
		appendChanges(t, s, ch)
		got := changes(t, s, last, 10)
		if len(got) != 1 || got[0].Seq != ch.Seq {
			t.Fatalf("Changes(%d) right after Update returned = %+v, want only Seq %d", last, got, ch.Seq)
		}
		if head := changesHead(t, s); head != ch.Seq {
			t.Fatalf("ChangesHead right after Update returned = %d, want %d", head, ch.Seq)
		}
		last = ch.Seq
	}
}
