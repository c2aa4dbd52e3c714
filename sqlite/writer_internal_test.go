package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"modernc.org/sqlite"
)

// When SQLite rolls a shared transaction back under the group (as it does
// for an interrupted write or a full disk), every Update of the group
// fails, none of their writes exists, and the Updates after it form a new
// group and succeed: none runs in autocommit. Whichever member it happens
// under: the first (which runs without a savepoint), a later one, or an
// Update alone.
func TestWriterLostTransaction(t *testing.T) {
	for _, tt := range []struct {
		name    string
		updates int
		lostAt  int // the Update under which the transaction ends
		lost    int // Updates 0..lost-1 fail
	}{
		{"under a later member", 6, 2, 3},
		{"under the first member", 4, 0, 1},
		{"alone", 1, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testWriterLost(t, tt.updates, tt.lostAt, tt.lost)
		})
	}
}

func testWriterLost(t *testing.T, updates, lostAt, lost int) {
	ctx := context.Background()
	db := NewDB(filepath.Join(t.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := func(i int) *fleetcert.AccessKey {
		return &fleetcert.AccessKey{ID: fmt.Sprintf("AKIALOST%012d", i), Secret: "s", AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
	}
	create := func(i int) func(tx fleetcert.Tx) error {
		return func(tx fleetcert.Tx) error {
			if err := tx.CreateAccessKey(ctx, key(i)); err != nil {
				return err
			}
			if i == lostAt {
				// What SQLite does by itself on an interrupted statement.
				_, err := tx.(*Tx).tx.Exec("ROLLBACK")
				return err
			}
			return nil
		}
	}
	members := make([]func() error, updates-1)
	for j := range members {
		members[j] = func() error { return db.Update(ctx, create(j+1)) }
	}
	errs := inOneGroup(t, db, create(0), members...)
	for i, err := range errs {
		found := keyStored(t, db, key(i).ID)
		if i < lost {
			if err == nil || found {
				t.Errorf("Update %d of the lost group: err %v, stored %v; want an error and nothing stored", i, err, found)
			}
		} else if err != nil || !found {
			t.Errorf("Update %d after the lost group: err %v, stored %v; want it stored", i, err, found)
		}
	}
}

// endContext, when set, is called by the SQL function
// fleetcert_test_end_context(i) at its first row (i = 1) and cleared: it
// ends a context while the statement calling it runs.
var endContext atomic.Pointer[context.CancelFunc]

func init() {
	sqlite.MustRegisterScalarFunction("fleetcert_test_end_context", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		if args[0] == int64(1) {
			if cancel := endContext.Swap(nil); cancel != nil {
				(*cancel)()
			}
		}
		return args[0], nil
	})
}

// A member of a group whose context ends while one of its statements runs
// (its client went away) does not fail the others: the statement runs to
// its end, where the driver would have interrupted it and SQLite would
// have rolled the group's transaction back. A member whose context has
// ended before its next statement fails with the context's error and is
// undone alone, leaving nothing behind for the members after it.
func TestWriterMemberContextEnds(t *testing.T) {
	ctx := context.Background()
	db := NewDB(filepath.Join(t.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// 200,000 rows of a recursive count, the context ended at the first:
	// long enough for the driver's watcher to interrupt it.
	long, err := db.write.PrepareContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
		INSERT INTO settings (name, value, created_at) SELECT 'test-long', x'00', 0 FROM n WHERE fleetcert_test_end_context(i) = 200000`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { long.Close() })
	key := func(i int) *fleetcert.AccessKey {
		return &fleetcert.AccessKey{ID: fmt.Sprintf("AKIAENDS%012d", i), Secret: "s", AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
	}

	// 1: its context ends during its long statement.
	ctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	// 2: its context ends between two statements.
	ctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	errs := inOneGroup(t, db, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, key(0)) },
		func() error {
			return db.Update(ctx1, func(tx fleetcert.Tx) error {
				if err := tx.CreateAccessKey(ctx1, key(1)); err != nil {
					return err
				}
				endContext.Store(&cancel1)
				_, err := tx.(*Tx).stmt(ctx1, long).ExecContext(ctx1)
				return err
			})
		},
		func() error {
			return db.Update(ctx2, func(tx fleetcert.Tx) error {
				if err := tx.CreateAccessKey(ctx2, key(2)); err != nil {
					return err
				}
				cancel2()
				_, err := tx.AccessKey(ctx2, key(0).ID)
				return err
			})
		},
		// 3: runs the statement 2 ran first in the transaction, when 2's
		// context had ended.
		func() error {
			return db.Update(ctx, func(tx fleetcert.Tx) error {
				if _, err := tx.AccessKey(ctx, key(0).ID); err != nil {
					return err
				}
				return tx.CreateAccessKey(ctx, key(3))
			})
		})

	stored := func(i int) bool { return keyStored(t, db, key(i).ID) }
	for _, i := range []int{0, 1, 3} {
		if errs[i] != nil || !stored(i) {
			t.Errorf("Update %d: err %v, stored %v; want it stored", i, errs[i], stored(i))
		}
	}
	if !errors.Is(errs[2], context.Canceled) || stored(2) {
		t.Errorf("Update 2, whose context ended before its second statement: err %v, stored %v; want context.Canceled, nothing stored", errs[2], stored(2))
	}
}

// An Update without a savepoint (UpdateFailFirst) that fails before
// changing a row fails alone; one that fails after changing rows, or under
// which SQLite ended the transaction, fails its whole group, and the
// Updates after it form a new group.
func TestWriterFailFirst(t *testing.T) {
	ctx := context.Background()
	scope := fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	cert := &fleetcert.Certificate{Scope: scope, ID: fleetcert.CertificateID([]byte("fail-first")),
		Status: fleetcert.StatusActive, PEM: "pem", Mode: fleetcert.ModeDefault, CreationDate: time.Unix(1, 0).UTC()}
	key := func(i int) *fleetcert.AccessKey {
		return &fleetcert.AccessKey{ID: fmt.Sprintf("AKIAFIRST%011d", i), Secret: "s", AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
	}
	errFailed := errors.New("fails")
	storeKey := func(tx fleetcert.Tx, i int) error { return tx.CreateAccessKey(ctx, key(i)) }
	storeCert := func(tx fleetcert.Tx, i int) error { c := *cert; return tx.CreateCertificate(ctx, &c) }
	type update struct {
		failFirst bool
		cert      bool // it stores the certificate, else its key
		fn        func(tx fleetcert.Tx, i int) error
	}
	// Each case's Updates queue in order behind the holder's (Update 0,
	// which stores key 0) and run in its group.
	for _, tt := range []struct {
		name    string
		updates []update
		ok      []bool // per Update, the holder first: whether it succeeds
		groups  []int  // the groups committed
	}{
		{
			name: "refused before changing a row",
			updates: []update{
				{true, true, storeCert},
				{true, true, storeCert}, // the same certificate: refused, alone
				{true, false, storeKey},
				{false, false, storeKey},
			},
			ok:     []bool{true, true, false, true, true},
			groups: []int{5},
		},
		{
			name: "failed after changing a row",
			updates: []update{
				{true, false, storeKey},
				{true, false, func(tx fleetcert.Tx, i int) error {
					if err := storeKey(tx, i); err != nil {
						return err
					}
					return errFailed
				}},
				{true, false, storeKey},
			},
			ok:     []bool{false, false, false, true},
			groups: []int{1},
		},
		{
			name: "transaction ended under it",
			updates: []update{
				{true, false, storeKey},
				{true, false, func(tx fleetcert.Tx, i int) error {
					// What SQLite does by itself on a full disk.
					if _, err := tx.(*Tx).tx.Exec("ROLLBACK"); err != nil {
						return err
					}
					return errFailed
				}},
				{false, false, storeKey},
			},
			ok:     []bool{false, false, false, true},
			groups: []int{1},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := NewDB(filepath.Join(t.TempDir(), "fleetcert.db"))
			if err := db.Open(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			var groups []int
			db.writer.stats = func(members int) { groups = append(groups, members) }

			members := make([]func() error, len(tt.updates))
			for j, u := range tt.updates {
				update := db.Update
				if u.failFirst {
					update = db.UpdateFailFirst
				}
				members[j] = func() error { return update(ctx, func(tx fleetcert.Tx) error { return u.fn(tx, j+1) }) }
			}
			errs := inOneGroup(t, db, func(tx fleetcert.Tx) error { return storeKey(tx, 0) }, members...)

			wantCerts := 0
			for i, ok := range tt.ok {
				if ok != (errs[i] == nil) {
					t.Errorf("Update %d: err %v, want success %v", i, errs[i], ok)
				}
				if i == 0 || !tt.updates[i-1].cert {
					if stored := keyStored(t, db, key(i).ID); stored != ok {
						t.Errorf("Update %d: key stored %v, want %v", i, stored, ok)
					}
				} else if ok {
					wantCerts++
				} else if fleetcert.ErrorCode(errs[i]) != fleetcert.EResourceAlreadyExists {
					t.Errorf("Update %d: err %v, want ResourceAlreadyExistsException", i, errs[i])
				}
			}
			var certs []*fleetcert.Certificate
			if err := db.View(ctx, func(tx fleetcert.Tx) error {
				var err error
				certs, err = tx.ListCertificates(ctx, fleetcert.CertificateQuery{Scope: scope, Limit: 10})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if len(certs) != wantCerts {
				t.Errorf("%d certificates stored, want %d", len(certs), wantCerts)
			}
			if !slices.Equal(groups, tt.groups) {
				t.Errorf("groups committed %v, want %v", groups, tt.groups)
			}
		})
	}
}

// inOneGroup runs hold as an Update (Update 0) and each of members (an
// Update each) queued in order behind it while it holds the writer, so
// that they take their turns in its group; it returns their errors, the
// holder's first.
func inOneGroup(t *testing.T, db *DB, hold func(fleetcert.Tx) error, members ...func() error) []error {
	t.Helper()
	release := make(chan struct{})
	holding := make(chan struct{})
	errs := make([]error, len(members)+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = db.Update(context.Background(), func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return hold(tx)
		})
	})
	<-holding
	for j, m := range members {
		wg.Go(func() { errs[j+1] = m() })
		testwait.For(t, fmt.Sprintf("Update %d to queue", j+1), func() bool { return db.WaitingWriters() == j+1 })
	}
	close(release)
	wg.Wait()
	return errs
}

// keyStored reports whether db holds the access key id.
func keyStored(t *testing.T, db *DB, id string) bool {
	t.Helper()
	var found bool
	if err := db.View(context.Background(), func(tx fleetcert.Tx) error {
		_, err := tx.AccessKey(context.Background(), id)
		found = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}
