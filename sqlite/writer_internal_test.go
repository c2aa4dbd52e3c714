package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testwait"
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
	release := make(chan struct{})
	holding := make(chan struct{})
	errs := make([]error, updates)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = db.Update(ctx, func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return create(0)(tx)
		})
	})
	<-holding
	for i := 1; i < updates; i++ {
		wg.Go(func() { errs[i] = db.Update(ctx, create(i)) })
		testwait.For(t, fmt.Sprintf("Update %d to queue", i), func() bool { return db.WaitingWriters() == i })
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		var found bool
		err2 := db.View(ctx, func(tx fleetcert.Tx) error {
			_, err := tx.AccessKey(ctx, key(i).ID)
			found = err == nil
			return nil
		})
		if err2 != nil {
			t.Fatal(err2)
		}
		if i < lost {
			if err == nil || found {
				t.Errorf("Update %d of the lost group: err %v, stored %v; want an error and nothing stored", i, err, found)
			}
		} else if err != nil || !found {
			t.Errorf("Update %d after the lost group: err %v, stored %v; want it stored", i, err, found)
		}
	}
}
