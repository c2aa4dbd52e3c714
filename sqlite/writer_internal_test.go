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
// group and succeed: none runs in autocommit.
func TestWriterLostTransaction(t *testing.T) {
	ctx := context.Background()
	db := NewDB(filepath.Join(t.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := func(i int) *fleetcert.AccessKey {
		return &fleetcert.AccessKey{ID: fmt.Sprintf("AKIALOST%012d", i), Secret: "s", AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
	}
	release := make(chan struct{})
	holding := make(chan struct{})
	errs := make([]error, 6)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = db.Update(ctx, func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return tx.CreateAccessKey(ctx, key(0))
		})
	})
	<-holding
	for i := 1; i < len(errs); i++ {
		wg.Go(func() {
			errs[i] = db.Update(ctx, func(tx fleetcert.Tx) error {
				if err := tx.CreateAccessKey(ctx, key(i)); err != nil {
					return err
				}
				if i == 2 {
					// What SQLite does by itself on an interrupted statement.
					_, err := tx.(*Tx).tx.Exec("ROLLBACK")
					return err
				}
				return nil
			})
		})
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
		if lost := i <= 2; lost {
			if err == nil || found {
				t.Errorf("Update %d of the lost group: err %v, stored %v; want an error and nothing stored", i, err, found)
			}
		} else if err != nil || !found {
			t.Errorf("Update %d after the lost group: err %v, stored %v; want it stored", i, err, found)
		}
	}
}
