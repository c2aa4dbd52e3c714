package fleetcert_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/sqlite"
)

// rowCountingStore counts the change-feed entries read from the store.
type rowCountingStore struct {
	fleetcert.Store
	rows atomic.Int64
}

func (s *rowCountingStore) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	chs, err := s.Store.Changes(ctx, after, limit)
	s.rows.Add(int64(len(chs)))
	return chs, err
}

// appendFeed appends n certificate changes at t, in one Update.
func appendFeed(t *testing.T, s fleetcert.Store, n int, at time.Time) {
	t.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		for i := range n {
			ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: scope,
				CertificateID: fleetcert.CertificateID([]byte{byte(i), byte(i >> 8), byte(rand.IntN(256))}),
				OldStatus:     fleetcert.StatusActive, NewStatus: fleetcert.StatusRevoked, Time: at}
			if err := tx.AppendChange(ctx, ch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRegistryChangesAsStore: Registry.Changes, which answers from the
// entries it read last where it can (feedMemo), returns what the store's
// Changes returns, for any position and page size, as the feed grows.
func TestRegistryChangesAsStore(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	rng := rand.New(rand.NewPCG(1, 2))
	head := int64(0)
	for round := range 300 {
		if round%3 == 0 {
			n := 1 + rng.IntN(40)
			appendFeed(t, reg.Store, n, clk.now())
			head += int64(n)
		}
		for range 3 {
			// Mostly near the head, as watchers read; sometimes far back.
			after := max(0, head-int64(rng.IntN(60)))
			if rng.IntN(5) == 0 {
				after = rng.Int64N(head + 2)
			}
			limit := 1 + rng.IntN(50)
			got, err := reg.Changes(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := reg.Store.Changes(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: Changes(%d, %d):\n got %d entries %+v\nwant %d entries %+v", round, after, limit, len(got), got, len(want), want)
			}
		}
	}
}

// readAll reads the feed after after to its end through reg, checking
// that no entry is skipped, and returns the last Seq.
func readAll(t *testing.T, reg *fleetcert.Registry, after int64) int64 {
	for {
		chs, err := reg.Changes(context.Background(), after, 1000)
		if err != nil {
			t.Error(err)
			return after
		}
		for i := range chs {
			if chs[i].Seq != after+1 {
				t.Errorf("entry %d after %d", chs[i].Seq, after)
				return after
			}
			after = chs[i].Seq
		}
		if len(chs) < 1000 {
			return after
		}
	}
}

// TestRegistryChangesReadOnce: watchers of one process reading the same
// stretch of the feed read each entry from the store once, not once each
// (racing watchers may each read a page, and every entry is still there);
// a change committed after a read is seen by the next; and a watcher
// behind the pruned horizon, past what the Registry holds, still learns
// that it fell behind.
func TestRegistryChangesReadOnce(t *testing.T) {
	ctx := context.Background()
	base, clk := mustOpenRegistry(t)
	counting := &rowCountingStore{Store: base.Store}
	newReg := func() *fleetcert.Registry {
		reg := fleetcert.NewRegistry(counting, nil)
		reg.Now = clk.now
		return reg
	}
	reg := newReg()
	const total, watchers = 5000, 4
	appendFeed(t, counting, total, clk.now())
	for w := range watchers {
		if last := readAll(t, reg, 0); last != total {
			t.Fatalf("watcher %d read up to %d of %d", w, last, total)
		}
	}
	if rows := counting.rows.Load(); rows != total {
		t.Errorf("%d watchers read %d entries from the store for %d entries, want %d", watchers, rows, total, total)
	}
	racing := newReg()
	var wg sync.WaitGroup
	for range watchers {
		wg.Go(func() {
			if last := readAll(t, racing, 0); last != total {
				t.Errorf("a racing watcher read up to %d of %d", last, total)
			}
		})
	}
	wg.Wait()

	// Committed after the reads: the next read sees it.
	appendFeed(t, counting, 1, clk.now())
	chs, err := reg.Changes(ctx, total-10, 1000)
	if err != nil || len(chs) != 11 || chs[10].Seq != total+1 {
		t.Fatalf("after a commit, Changes(%d) = %d entries, %v; want 11 up to %d", total-10, len(chs), err, total+1)
	}

	// Entries the Registry holds are the feed's even once pruned; past
	// them, the store says the watcher fell behind.
	appendFeed(t, counting, 100, clk.now()) // not read through reg
	clk.advance(time.Hour)
	appendFeed(t, counting, 1, clk.now())
	if _, err := reg.PruneChanges(ctx, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Changes(ctx, total-10, 1000); !errors.Is(err, fleetcert.ErrChangesPruned) {
		t.Fatalf("Changes(%d) past what the Registry holds, after pruning: %v, want ErrChangesPruned", total-10, err)
	}
}

// readCountingDB is a SQLite store that counts its reads of the change
// feed; it reports its commits and stamps them (*sqlite.DB's methods).
type readCountingDB struct {
	*sqlite.DB
	reads atomic.Int64
}

func (s *readCountingDB) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	s.reads.Add(1)
	return s.DB.Changes(ctx, after, limit)
}

// TestRegistryChangesOwnCommits: on a store that reports its commits
// (CommitReporter), the Registry's watchers read none of this process's
// changes back from the store: they get them, and learn that there are
// no more, without a read. A commit by another process is read from the
// store, once; and what they get is always what the store holds.
func TestRegistryChangesOwnCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	open := func() *sqlite.DB {
		db := sqlite.NewDB(path)
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	store := &readCountingDB{DB: open()}
	other := open() // another process's handle on the same file
	reg := fleetcert.NewRegistry(store, nil)
	clk := newClock()
	reg.Now = clk.now

	at := int64(0)
	read := func(step string, wantN int, wantReads int64) {
		t.Helper()
		for watcher := range 3 {
			got, err := reg.Changes(ctx, at, 100)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.DB.Changes(ctx, at, 100)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].Registration = nil
			}
			if len(got) != wantN || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: watcher %d: Changes(%d) =\n %+v\nwant %d entries, the store's\n %+v", step, watcher, at, got, wantN, want)
			}
		}
		if n := store.reads.Swap(0); n != wantReads {
			t.Errorf("%s: %d reads of the store, want %d", step, n, wantReads)
		}
		if more, err := reg.Changes(ctx, at+int64(wantN), 100); err != nil || len(more) != 0 {
			t.Fatalf("%s: Changes at the head = %+v, %v; want none", step, more, err)
		}
		if n := store.reads.Swap(0); n != 0 {
			t.Errorf("%s: %d reads of the store at the head, want none", step, n)
		}
		at += int64(wantN)
	}
	for i := range 5 {
		if _, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive); err != nil {
			t.Fatal(err)
		}
		read(fmt.Sprintf("registration %d", i), 1, 0)
	}
	appendFeed(t, store, 3, clk.now())
	read("three changes in one transaction", 3, 0)
	appendFeed(t, other, 2, clk.now())
	read("another process's commit", 2, 1)
	appendFeed(t, other, 1, clk.now())
	appendFeed(t, store, 1, clk.now()) // reported, but after the other's
	read("this process's commit after another's", 2, 1)
}
