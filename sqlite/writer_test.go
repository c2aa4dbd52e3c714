package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

// TestDB_GroupCommit queues Updates behind one that holds the writer, so
// that they share transactions, and checks that each succeeds or fails
// alone: a failing, a panicking and a canceled Update leave nothing, every
// other one is there, and the queued ones committed in shared groups.
func TestDB_GroupCommit(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	groups := recordGroups(db)
	commits := recordCommits(db)
	scope := fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	cert := func(i int) *fleetcert.Certificate {
		return &fleetcert.Certificate{Scope: scope, ID: fleetcert.CertificateID(fmt.Appendf(nil, "group-%d", i)),
			Status: fleetcert.StatusActive, PEM: "pem", Mode: fleetcert.ModeDefault,
			CreationDate: time.Unix(0, int64(i)).UTC()}
	}
	create := func(i int) func(tx fleetcert.Tx) error {
		return func(tx fleetcert.Tx) error {
			if err := tx.CreateCertificate(ctx, cert(i)); err != nil {
				return err
			}
			return tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated,
				Scope: scope, CertificateID: cert(i).ID, NewStatus: fleetcert.StatusActive, Time: time.Unix(1, 0)})
		}
	}

	// The holder: in the writer until the others queue behind it.
	release := make(chan struct{})
	holding := make(chan struct{})
	holderErr := make(chan error, 1)
	go func() {
		holderErr <- db.Update(ctx, func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return create(0)(tx)
		})
	}()
	<-holding

	const n = 24
	errFailed := errors.New("this one fails")
	type outcome struct {
		err      error
		panicked bool
	}
	results := make([]outcome, n)
	canceledCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		ctx := ctx
		if i == 7 {
			ctx = canceledCtx
		}
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					results[i].panicked = true
				}
			}()
			results[i].err = db.Update(ctx, func(tx fleetcert.Tx) error {
				if err := create(i)(tx); err != nil {
					return err
				}
				switch {
				case i%5 == 0:
					return fmt.Errorf("after creating %d: %w", i, errFailed)
				case i == 11:
					panic("a panicking Update")
				case i == 13:
					// The same certificate again: the store's own error, after
					// this Update's first write.
					return create(i)(tx)
				}
				return nil
			})
		})
		// One at a time, so the queue's order is known.
		testwait.For(t, fmt.Sprintf("Update %d to queue", i), func() bool { return db.WaitingWriters() == i })
	}
	cancel()
	testwait.For(t, "the canceled Update to leave the queue", func() bool { return db.WaitingWriters() == n-2 })
	close(release)
	wg.Wait()
	if err := <-holderErr; err != nil {
		t.Fatalf("holder: %v", err)
	}

	exists := func(i int) bool {
		t.Helper()
		err := db.View(ctx, func(tx fleetcert.Tx) error {
			_, err := tx.Certificate(ctx, scope, cert(i).ID)
			return err
		})
		if err != nil && fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatal(err)
		}
		return err == nil
	}
	if !exists(0) {
		t.Error("holder's certificate missing")
	}
	for i := 1; i < n; i++ {
		r := results[i]
		switch {
		case i == 7:
			if !errors.Is(r.err, context.Canceled) || exists(i) {
				t.Errorf("canceled Update %d: err %v, stored %v; want context.Canceled, nothing stored", i, r.err, exists(i))
			}
		case i%5 == 0:
			if !errors.Is(r.err, errFailed) || exists(i) {
				t.Errorf("failing Update %d: err %v, stored %v; want its error unchanged, nothing stored", i, r.err, exists(i))
			}
		case i == 11:
			if !r.panicked || exists(i) {
				t.Errorf("panicking Update %d: panicked %v, stored %v; want the panic, nothing stored", i, r.panicked, exists(i))
			}
		case i == 13:
			if fleetcert.ErrorCode(r.err) != fleetcert.EResourceAlreadyExists || exists(i) {
				t.Errorf("duplicate Update %d: err %v, stored %v; want ResourceAlreadyExistsException, nothing stored", i, r.err, exists(i))
			}
		default:
			if r.err != nil || r.panicked || !exists(i) {
				t.Errorf("Update %d: err %v, panicked %v, stored %v; want it stored", i, r.err, r.panicked, exists(i))
			}
		}
	}

	// The feed holds exactly the stored certificates' changes, in order.
	chs, err := db.Changes(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range chs {
		got = append(got, ch.CertificateID)
	}
	var want []string
	for i := range n {
		if exists(i) {
			want = append(want, cert(i).ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("change feed:\n got %v\nwant %v", got, want)
	}
	// Each group reported the entries its commit made, those of the
	// members undone left out: together, the feed.
	var reported []fleetcert.Change
	for _, c := range commits() {
		checkCommit(t, db, c)
		reported = append(reported, c.Changes...)
	}
	if !reflect.DeepEqual(reported, chs) {
		t.Errorf("reported commits:\n got %+v\nwant %+v", reported, chs)
	}

	committed := groups()
	shared := 0
	for _, g := range committed {
		if g > 1 {
			shared += g
		}
	}
	if shared < n/2 {
		t.Errorf("groups committed %v: want the queued Updates to share commits", committed)
	}
}

// An Update arriving when the writer is idle commits alone, at once.
func TestDB_GroupCommitAlone(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	var groups []int
	db.OnGroupCommit(func(n int) { groups = append(groups, n) })
	for i := range 3 {
		k := &fleetcert.AccessKey{ID: fmt.Sprintf("AKIAALONE%011d", i), Secret: "s", AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		mustAccessKey(t, db, k.ID)
	}
	if fmt.Sprint(groups) != "[1 1 1]" {
		t.Errorf("groups %v, want [1 1 1]", groups)
	}
}

// TestDB_GroupGathers: after groups of several Updates, a group whose
// member is done while none queues waits for another before committing
// (the writer's gather), and the Update that queues meanwhile joins it; a
// lone writer's Updates do not wait, and stop waiting once the recent
// groups are lone ones again.
func TestDB_GroupGathers(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	groups := recordGroups(db)
	var gathers atomic.Int32
	var waitFor atomic.Pointer[chan struct{}] // set: the gather waits for it
	db.OnGather(func() {
		gathers.Add(1)
		if ch := waitFor.Load(); ch != nil {
			<-*ch
		}
	})
	key := func(i int) *fleetcert.AccessKey {
		return &fleetcert.AccessKey{ID: fmt.Sprintf("AKIAGATHER%010d", i), Secret: "s",
			AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
	}
	create := func(k *fleetcert.AccessKey) error {
		return db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) })
	}
	n := 0
	update := func() error {
		n++
		return create(key(n))
	}
	mustUpdate := func() {
		t.Helper()
		if err := update(); err != nil {
			t.Fatal(err)
		}
	}

	// ok/lone: one writer's Updates commit at once.
	mustUpdate()
	mustUpdate()
	if got := gathers.Load(); got != 0 {
		t.Fatalf("lone Updates waited for members %d times", got)
	}

	// A group of three: two Updates queue behind a holder.
	release := make(chan struct{})
	holding := make(chan struct{})
	errs := make(chan error, 3)
	go func() {
		errs <- db.Update(ctx, func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return tx.CreateAccessKey(ctx, key(0))
		})
	}()
	<-holding
	n += 2
	for i := n - 1; i <= n; i++ {
		go func() { errs <- create(key(i)) }()
	}
	testwait.For(t, "two Updates queued", func() bool { return db.WaitingWriters() == 2 })
	gathers.Store(0)
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// ok/gathered: the next Update's group waits, and one that queues
	// while it does joins it.
	queued := make(chan struct{})
	waitFor.Store(&queued)
	first := make(chan error, 1)
	go func() { first <- update() }()
	testwait.For(t, "the group waiting for members", func() bool { return gathers.Load() == 1 })
	n++
	late := key(n)
	go func() { errs <- create(late) }()
	testwait.For(t, "the late Update queued", func() bool { return db.WaitingWriters() == 1 })
	waitFor.Store(nil)
	close(queued)
	for _, ch := range []chan error{first, errs} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	mustAccessKey(t, db, late.ID)

	// ok/decay: lone Updates wait while a recent group had several
	// members, then no more.
	gathers.Store(0)
	for range 6 {
		mustUpdate()
	}
	// The last four groups before each: [2 3 1 1], [1 2 3 1], [1 1 2 3],
	// [1 1 1 2], then only lone ones.
	if got := gathers.Load(); got != 4 {
		t.Errorf("six lone Updates after groups of 3 and 2 waited %d times, want 4", got)
	}
	want := []int{1, 1, 3, 2, 1, 1, 1, 1, 1, 1}
	if got := groups(); !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
}

// The commit stamp stays while nothing commits, reads included, and moves
// with every commit, this handle's or another process's on the same file.
func TestDB_CommitStamp(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/fleetcert.db"
	db := mustOpenDBAt(t, path, nil)
	other := mustOpenDBAt(t, path, nil)
	stamp := func() uint64 {
		t.Helper()
		s, ok := db.CommitStamp()
		if !ok {
			t.Fatal("no commit stamp")
		}
		return s
	}
	seen := map[uint64]bool{}
	prev := stamp()
	seen[prev] = true
	for i, w := range []*sqlite.DB{db, other, other, db} {
		countAccessKeys(t, db)
		countAccessKeys(t, other)
		if s := stamp(); s != prev {
			t.Fatalf("step %d: stamp moved with reads only", i)
		}
		k := &fleetcert.AccessKey{ID: fmt.Sprintf("AKIASTAMP%011d", i), Secret: "s", AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
		if err := w.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		s := stamp()
		if seen[s] {
			t.Fatalf("step %d: stamp %x after a commit was seen before", i, s)
		}
		seen[s], prev = true, s
	}
}

// UpdateBulk shares its transaction with no other Update: queued behind a
// holder between two Updates, it commits the group the first one joined
// and runs in its own, and the one after it starts another.
func TestDB_UpdateBulkAlone(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	groups := recordGroups(db)
	create := func(i int) func(tx fleetcert.Tx) error {
		return func(tx fleetcert.Tx) error {
			return tx.CreateAccessKey(ctx, &fleetcert.AccessKey{ID: fmt.Sprintf("AKIABULK%012d", i), Secret: "s",
				AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()})
		}
	}
	release := make(chan struct{})
	holding := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	wg.Go(func() {
		errs[0] = db.Update(ctx, func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return create(0)(tx)
		})
	})
	<-holding
	// Queued in this order: Update, UpdateBulk, Update.
	for i, update := range []func(context.Context, func(fleetcert.Tx) error) error{db.Update, db.UpdateBulk, db.Update} {
		wg.Go(func() { errs[i+1] = update(ctx, create(i+1)) })
		testwait.For(t, fmt.Sprintf("%d Updates queued", i+1), func() bool { return db.WaitingWriters() == i+1 })
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
		mustAccessKey(t, db, fmt.Sprintf("AKIABULK%012d", i))
	}
	if got := fmt.Sprint(groups()); got != "[2 1 1]" {
		t.Errorf("groups committed %s, want [2 1 1]: the holder with the first Update, the bulk one alone, the last", got)
	}
}

// TestDB_ReportCommits: a transaction that appends changes, one at a time
// or many at once, reports them as it commits, as Changes reads them back
// (audit fields empty) with their Registration, as the feed's last
// commit, at the stamp after it; one that appends none, or fails, reports
// nothing. Another process's commit in between is not in any report.
func TestDB_ReportCommits(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/fleetcert.db"
	db := mustOpenDBAt(t, path, nil)
	other := mustOpenDBAt(t, path, nil)
	commits := recordCommits(db)
	scope := fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	change := func(i int) *fleetcert.Change {
		return &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: scope,
			CertificateID: fleetcert.CertificateID(fmt.Appendf(nil, "report-%d", i)), OldStatus: fleetcert.StatusActive,
			NewStatus: fleetcert.StatusRevoked, Time: time.Unix(1, 123456789).In(time.FixedZone("x", 3600)),
			Operation: "UpdateCertificate", Actor: "AKIAREPORT", ActorAccount: fleetcert.DefaultAccountID, SourceIP: "127.0.0.1"}
	}
	registered := &fleetcert.Certificate{Scope: scope, ID: change(0).CertificateID, Status: fleetcert.StatusActive}
	steps := []struct {
		name    string
		db      *sqlite.DB
		update  func(context.Context, func(fleetcert.Tx) error) error
		fn      func(tx fleetcert.Tx) error
		reports int // changes reported
	}{
		{"one change with its registration", db, db.Update, func(tx fleetcert.Tx) error {
			ch := change(0)
			ch.Kind, ch.OldStatus, ch.NewStatus, ch.Registration = fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive, registered
			return tx.AppendChange(ctx, ch)
		}, 1},
		{"another process's change", other, other.Update, func(tx fleetcert.Tx) error {
			return tx.AppendChange(ctx, change(1))
		}, 0},
		{"many in one statement, alone", db, db.UpdateBulk, func(tx fleetcert.Tx) error {
			var chs []*fleetcert.Change
			for i := range 300 {
				chs = append(chs, change(2+i))
			}
			return tx.AppendChanges(ctx, chs)
		}, 300},
		{"no change", db, db.Update, func(tx fleetcert.Tx) error {
			return tx.CreateAccessKey(ctx, &fleetcert.AccessKey{ID: "AKIAREPORT0000000001", Secret: "s",
				AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()})
		}, 0},
		{"a failing Update", db, db.Update, func(tx fleetcert.Tx) error {
			if err := tx.AppendChange(ctx, change(400)); err != nil {
				return err
			}
			return errors.New("fails after appending")
		}, 0},
		{"two changes", db, db.Update, func(tx fleetcert.Tx) error {
			if err := tx.AppendChange(ctx, change(401)); err != nil {
				return err
			}
			return tx.AppendChange(ctx, change(402))
		}, 2},
	}
	for _, step := range steps {
		before := len(commits())
		step.update(ctx, step.fn)
		got := commits()[before:]
		if step.reports == 0 {
			if len(got) != 0 {
				t.Errorf("%s: reported %+v, want nothing", step.name, got)
			}
			continue
		}
		if len(got) != 1 || len(got[0].Changes) != step.reports {
			t.Fatalf("%s: reported %+v, want one commit of %d changes", step.name, got, step.reports)
		}
		c := got[0]
		checkCommit(t, db, c)
		if stamp, ok := db.CommitStamp(); !ok || !c.Last || c.Stamp != stamp {
			t.Errorf("%s: Last %v at stamp %x, want the last commit at the stamp now, %x (%v)", step.name, c.Last, c.Stamp, stamp, ok)
		}
	}
	if first := commits()[0].Changes[0]; first.Registration != registered {
		t.Errorf("first change's Registration %+v, want the one appended", first.Registration)
	}
}

// recordCommits has db report its commits (ReportCommits), and returns a
// function that returns those so far.
func recordCommits(db *sqlite.DB) func() []fleetcert.Commit {
	var mu sync.Mutex
	var commits []fleetcert.Commit
	db.ReportCommits(func(c fleetcert.Commit) {
		mu.Lock()
		commits = append(commits, c)
		mu.Unlock()
	})
	return func() []fleetcert.Commit {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(commits)
	}
}

// checkCommit checks that c's changes are what the feed holds after
// c.After, Registration aside: the store keeps none.
func checkCommit(t *testing.T, db *sqlite.DB, c fleetcert.Commit) {
	t.Helper()
	want, err := db.Changes(context.Background(), c.After, len(c.Changes))
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(c.Changes)
	for i := range got {
		got[i].Registration = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commit after %d reported\n %+v\nthe feed holds\n %+v", c.After, got, want)
	}
}

// recordGroups has db report the size of each group that commits, and
// returns a function that reads them so far.
func recordGroups(db *sqlite.DB) func() []int {
	var mu sync.Mutex
	var groups []int
	db.OnGroupCommit(func(n int) {
		mu.Lock()
		groups = append(groups, n)
		mu.Unlock()
	})
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(groups)
	}
}

// The checkpoint tests' sizes, in WAL frames: a pass beside the writer
// every checkpointTestPages, the writer's own from checkpointTestRestart.
const checkpointTestPages, checkpointTestRestart = 40, 400

// checkpointTestDB opens a store with the checkpoint tests' sizes; it
// skips the test where SQLite checkpoints in commits.
func checkpointTestDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db := MustOpenDB(t)
	if _, _, ok := db.Checkpoints(); !ok {
		t.Skip("no WAL index mapping on this platform: SQLite checkpoints in commits")
	}
	db.SetCheckpointPages(checkpointTestPages, checkpointTestRestart)
	return db
}

// largeAccessKey is an access key whose row fills half a page: a write
// that grows the WAL by a frame or two.
func largeAccessKey(id string) *fleetcert.AccessKey {
	return &fleetcert.AccessKey{ID: id, Secret: strings.Repeat("s", 2000),
		AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
}

// TestDB_CheckpointBesideWriter: commits do not checkpoint; a connection
// beside the writer does, once the WAL has grown by the wake size, and
// the writer checkpoints itself once the WAL reaches the restart size
// (when little is left to copy, and at three times that size whatever is
// left), so that the WAL starts over instead of growing without end while
// commits keep coming.
func TestDB_CheckpointBesideWriter(t *testing.T) {
	ctx := context.Background()
	db := checkpointTestDB(t)
	const pages, restart = checkpointTestPages, checkpointTestRestart
	var most uint32
	rewound := 0
	prev := db.WALFrames()
	for i := range 600 {
		k := largeAccessKey(fmt.Sprintf("AKIACKPT%012d", i))
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		n := db.WALFrames()
		most = max(most, n)
		if n < prev {
			rewound++
		}
		prev = n
	}
	beside, writer, _ := db.Checkpoints()
	t.Logf("WAL at most %d frames, rewound %d times; %d checkpoints beside the writer, %d by it", most, rewound, beside, writer)
	if beside == 0 {
		t.Error("no checkpoint ran beside the writer")
	}
	if writer == 0 || rewound == 0 {
		t.Errorf("the writer checkpointed %d times and the WAL started over %d times: want both", writer, rewound)
	}
	if most > 3*restart+pages {
		t.Errorf("the WAL grew to %d frames: want it to start over by %d", most, 3*restart)
	}
	for i := range 600 {
		mustAccessKey(t, db, fmt.Sprintf("AKIACKPT%012d", i))
	}
}

// TestDB_CheckpointDoesNotStallWriter: while a checkpoint runs beside the
// writer (held here), Updates past the restart size commit without waiting
// for it; once it ends, the writer checkpoints what is left and the WAL
// starts over, long before the size at which the writer would wait.
func TestDB_CheckpointDoesNotStallWriter(t *testing.T) {
	ctx := context.Background()
	db := checkpointTestDB(t)
	const restart = checkpointTestRestart
	db.SetCheckpointHard(100 * restart)
	i := 0
	write := func() {
		t.Helper()
		k := largeAccessKey(fmt.Sprintf("AKIASTALL%011d", i))
		i++
		done := make(chan error, 1)
		go func() { done <- db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("an Update at %d WAL frames waited for the checkpoint held beside it", db.WALFrames())
		}
	}
	release := sync.OnceFunc(db.HoldCheckpoints())
	t.Cleanup(release) // before the store closes, should the test fail while it holds
	for db.WALFrames() < 2*restart {
		write()
	}
	release()
	for db.WALFrames() >= restart {
		write()
		if n := db.WALFrames(); n >= 10*restart {
			t.Fatalf("the WAL grew to %d frames after the checkpoint was released: want it to start over", n)
		}
	}
	if _, writer, _ := db.Checkpoints(); writer == 0 {
		t.Error("the WAL started over with no checkpoint by the writer")
	}
}
