package postgres_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/postgres"
	"github.com/fleetcert/fleetcert/storetest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }

// MustOpenDB returns an open DB on a new database of the shared test
// server, closed when the test ends.
func MustOpenDB(tb testing.TB) *postgres.DB {
	tb.Helper()
	return mustOpenDBAt(tb, testpg.NewDatabase(tb))
}

// mustOpenDBAt opens a DB on the database at url, as another node would.
func mustOpenDBAt(tb testing.TB, url string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// raw connects to the database at url directly, as another tool would.
func raw(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) fleetcert.Store { return MustOpenDB(tb) })
}

func TestDB_Open(t *testing.T) {
	t.Run("ok/reopen-keeps-data-and-migrates-once", func(t *testing.T) {
		ctx := context.Background()
		url := testpg.NewDatabase(t)
		first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		db := postgres.NewDB(url)
		db.Now = func() time.Time { return first }
		if err := db.Open(ctx); err != nil {
			t.Fatal(err)
		}
		k, err := fleetcert.NewAccessKey(fleetcert.DefaultAccountID, first)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		db.Close()

		db = postgres.NewDB(url)
		db.Now = func() time.Time { return first.Add(time.Hour) }
		if err := db.Open(ctx); err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := mustAccessKey(t, db, k.ID); *got != *k {
			t.Fatalf("access key after reopen %+v, want %+v", *got, *k)
		}
		wantMigratedOnce(t, url, first)
	})

	t.Run("ok/concurrent-opens-migrate-once", func(t *testing.T) {
		// Four nodes start at the same moment on an empty database.
		const nodes = 4
		url := testpg.NewDatabase(t)
		first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make(chan error, nodes)
		)
		for i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db := postgres.NewDB(url)
				db.Now = func() time.Time { return first.Add(time.Duration(i) * time.Hour) }
				<-start
				if err := db.Open(context.Background()); err != nil {
					errs <- err
					return
				}
				t.Cleanup(func() { db.Close() })
				errs <- countAccessKeysErr(db)
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		// One node applied everything; which one does not matter.
		var applied []time.Time
		rows, err := raw(t, url).Query(context.Background(), `SELECT DISTINCT applied_at FROM schema_migrations`)
		if err != nil {
			t.Fatal(err)
		}
		applied, err = pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil || len(applied) != 1 {
			t.Fatalf("migrations applied at %v (%v), want by one node", applied, err)
		}
		wantMigratedOnce(t, url, applied[0].UTC())
	})

	t.Run("fail/schema-newer-than-build", func(t *testing.T) {
		url := testpg.NewDatabase(t)
		mustOpenDBAt(t, url)
		if _, err := raw(t, url).Exec(context.Background(),
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999999, 'future.sql', now())`); err != nil {
			t.Fatal(err)
		}
		db, err := postgres.Open(context.Background(), url)
		if err == nil {
			db.Close()
			t.Fatal("Open of a newer schema succeeded")
		}
	})

	t.Run("fail/url", func(t *testing.T) {
		for _, url := range []string{"", "postgres://127.0.0.1:notaport/x"} {
			if db, err := postgres.Open(context.Background(), url); err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded, want an error", url)
			}
		}
	})
}

// wantMigratedOnce checks schema_migrations lists every embedded migration
// once, applied at `at`.
func wantMigratedOnce(tb testing.TB, url string, at time.Time) {
	tb.Helper()
	files, err := os.ReadDir("migration")
	if err != nil {
		tb.Fatal(err)
	}
	rows, err := raw(tb, url).Query(context.Background(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		tb.Fatal(err)
	}
	type applied struct {
		Version   int
		Name      string
		AppliedAt time.Time
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[applied])
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) != len(files) {
		tb.Fatalf("%d migrations recorded, want %d: %+v", len(got), len(files), got)
	}
	for i, m := range got {
		if m.Name != files[i].Name() || !m.AppliedAt.Equal(at) {
			tb.Fatalf("migration %d: %s applied at %v, want %s at %v", m.Version, m.Name, m.AppliedAt, files[i].Name(), at)
		}
	}
}

// mustAccessKey returns the access key id.
func mustAccessKey(tb testing.TB, db *postgres.DB, id string) *fleetcert.AccessKey {
	tb.Helper()
	ctx := context.Background()
	var k *fleetcert.AccessKey
	err := db.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		k, err = tx.AccessKey(ctx, id)
		return err
	})
	if err != nil {
		tb.Fatalf("access key %s: %v", id, err)
	}
	return k
}

// countAccessKeysErr reads CountAccessKeys, to prove the store usable.
func countAccessKeysErr(db *postgres.DB) error {
	ctx := context.Background()
	return db.View(ctx, func(tx fleetcert.Tx) error {
		_, err := tx.CountAccessKeys(ctx)
		return err
	})
}
