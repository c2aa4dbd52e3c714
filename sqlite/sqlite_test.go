package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
	"github.com/fleetcert/fleetcert/storetest"
)

// MustOpenDB returns an open DB in a new temporary directory, closed when
// the test ends.
func MustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return mustOpenDBAt(tb, filepath.Join(tb.TempDir(), "fleetcert.db"), nil)
}

// mustOpenDBAt opens the DB at path with clock now (time.Now when nil).
func mustOpenDBAt(tb testing.TB, path string, now func() time.Time) *sqlite.DB {
	tb.Helper()
	db := sqlite.NewDB(path)
	if now != nil {
		db.Now = now
	}
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) fleetcert.Store { return MustOpenDB(tb) })
}

func TestDB_Open(t *testing.T) {
	t.Run("ok/reopen-keeps-data-and-migrates-once", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "data", "fleetcert.db") // directory created by Open
		first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		db := sqlite.NewDB(path)
		db.Now = func() time.Time { return first }
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		k, err := fleetcert.NewAccessKey(fleetcert.DefaultAccountID, first)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		db = mustOpenDBAt(t, path, func() time.Time { return first.Add(time.Hour) })
		if got := mustAccessKey(t, db, k.ID); *got != *k {
			t.Fatalf("access key after reopen %+v, want %+v", *got, *k)
		}
		files, err := os.ReadDir("migration")
		if err != nil {
			t.Fatal(err)
		}
		raw := openRaw(t, path)
		rows, err := raw.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var n int
		for rows.Next() {
			var (
				version   int
				name      string
				appliedAt int64
			)
			if err := rows.Scan(&version, &name, &appliedAt); err != nil {
				t.Fatal(err)
			}
			if name != files[n].Name() || appliedAt != first.UnixNano() {
				t.Fatalf("migration %d: %s applied at %v, want %s at the first open %v",
					version, name, time.Unix(0, appliedAt).UTC(), files[n].Name(), first)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != len(files) {
			t.Fatalf("%d migrations recorded, want %d", n, len(files))
		}
	})

	t.Run("ok/file-mode-0600", func(t *testing.T) {
		ctx := context.Background()
		db := MustOpenDB(t)
		// Write something so the WAL exists too.
		k, _ := fleetcert.NewAccessKey(fleetcert.DefaultAccountID, time.Now())
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{db.Path, db.Path + "-wal", db.Path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode != 0o600 {
				t.Fatalf("%s has mode %v, want 0600", filepath.Base(p), mode)
			}
		}
	})

	t.Run("ok/wal", func(t *testing.T) {
		db := MustOpenDB(t)
		var mode string
		if err := openRaw(t, db.Path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(mode, "wal") {
			t.Fatalf("journal_mode %q, want wal", mode)
		}
	})

	t.Run("fail/schema-newer-than-build", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fleetcert.db")
		db := sqlite.NewDB(path)
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := openRaw(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999999, 'future.sql', 0)`); err != nil {
			t.Fatal(err)
		}
		db = sqlite.NewDB(path)
		if err := db.Open(); err == nil || !strings.Contains(err.Error(), "newer") {
			db.Close()
			t.Fatalf("Open of a newer schema: %v, want an error", err)
		}
	})

	t.Run("fail/path", func(t *testing.T) {
		for _, path := range []string{"", ":memory:", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
			if err := sqlite.NewDB(path).Open(); err == nil {
				t.Fatalf("Open(%q) succeeded, want an error", path)
			}
		}
	})
}

// TestDB_SecondHandle covers another process writing to the file while the
// server runs, such as `fleetcert keys create`.
func TestDB_SecondHandle(t *testing.T) {
	t.Run("ok/key-written-by-other-handle", func(t *testing.T) {
		ctx := context.Background()
		server := MustOpenDB(t)
		// The server has read before, so its connections are open.
		if n := countAccessKeys(t, server); n != 0 {
			t.Fatalf("%d access keys, want 0", n)
		}
		cli := mustOpenDBAt(t, server.Path, nil)
		k, err := fleetcert.NewAccessKey(fleetcert.DefaultAccountID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := cli.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatal(err)
		}
		if got := mustAccessKey(t, server, k.ID); *got != *k {
			t.Fatalf("server reads %+v, want %+v", *got, *k)
		}
		if n := countAccessKeys(t, server); n != 1 {
			t.Fatalf("%d access keys, want 1", n)
		}
	})

	t.Run("ok/concurrent-writers-lose-nothing", func(t *testing.T) {
		// Two handles have two write connections: BEGIN IMMEDIATE and the
		// busy timeout must serialize their read-check-write.
		const handles, workers, increments = 2, 4, 25
		ctx := context.Background()
		dbs := []*sqlite.DB{MustOpenDB(t)}
		for len(dbs) < handles {
			dbs = append(dbs, mustOpenDBAt(t, dbs[0].Path, nil))
		}
		scope := fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
		c := &fleetcert.Certificate{Scope: scope, ID: fleetcert.CertificateID([]byte("counter")), Status: fleetcert.StatusActive,
			PEM: "pem", Mode: fleetcert.ModeDefault, CreationDate: time.Now().UTC()}
		if err := dbs[0].Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, c) }); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, handles*workers)
		for _, db := range dbs {
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range increments {
						err := db.Update(ctx, func(tx fleetcert.Tx) error {
							cur, err := tx.Certificate(ctx, scope, c.ID)
							if err != nil {
								return err
							}
							cur.CustomerVersion++
							return tx.UpdateCertificate(ctx, cur)
						})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var got *fleetcert.Certificate
		err := dbs[1].View(ctx, func(tx fleetcert.Tx) error {
			var err error
			got, err = tx.Certificate(ctx, scope, c.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := handles * workers * increments; got.CustomerVersion != want {
			t.Fatalf("CustomerVersion %d, want %d: updates were lost", got.CustomerVersion, want)
		}
	})
}

// TestDB_KillDurability checks that every acknowledged write survives a
// kill -9: a child process writes and acknowledges certificates from
// several goroutines (so that Updates share commits) until it is killed,
// and each acknowledged one must be there after reopening.
func TestDB_KillDurability(t *testing.T) {
	const envPath = "FLEETCERT_SQLITE_KILL_TEST_DB"
	const writers = 8
	ctx := context.Background()
	scope := fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	cert := func(i int) *fleetcert.Certificate {
		return &fleetcert.Certificate{Scope: scope, ID: fleetcert.CertificateID(fmt.Appendf(nil, "kill-%d", i)),
			Status: fleetcert.StatusActive, PEM: "pem", Mode: fleetcert.ModeDefault,
			CreationDate: time.Unix(0, int64(i)).UTC()}
	}
	if path := os.Getenv(envPath); path != "" {
		// The child: write until killed.
		db := sqlite.NewDB(path)
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		for w := range writers {
			go func() {
				for i := w; ; i += writers {
					if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, cert(i)) }); err != nil {
						panic(err)
					}
					mu.Lock()
					fmt.Fprintf(os.Stdout, "ack %d\n", i)
					mu.Unlock()
				}
			}()
		}
		select {}
	}

	path := filepath.Join(t.TempDir(), "fleetcert.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDB_KillDurability$")
	cmd.Env = append(os.Environ(), envPath+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int
	lines := bufio.NewScanner(out)
	for len(acked) < 600 && lines.Scan() {
		var i int
		if _, err := fmt.Sscanf(lines.Text(), "ack %d", &i); err == nil {
			acked = append(acked, i)
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 600 {
		t.Fatalf("child acknowledged %d writes before it stopped", len(acked))
	}

	db := mustOpenDBAt(t, path, nil)
	err = db.View(ctx, func(tx fleetcert.Tx) error {
		for _, i := range acked {
			if _, err := tx.Certificate(ctx, scope, cert(i).ID); err != nil {
				return fmt.Errorf("acknowledged write %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openRaw opens the database file directly, as another tool would.
func openRaw(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	raw, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	return raw
}

// queryStrings returns the first column of query's rows, read on raw.
func queryStrings(tb testing.TB, raw *sql.DB, query string, args ...any) []string {
	tb.Helper()
	rows, err := raw.Query(query, args...)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// mustAccessKey returns the access key id.
func mustAccessKey(tb testing.TB, db *sqlite.DB, id string) *fleetcert.AccessKey {
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

// countAccessKeys returns CountAccessKeys.
func countAccessKeys(tb testing.TB, db *sqlite.DB) int {
	tb.Helper()
	ctx := context.Background()
	var n int
	err := db.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		n, err = tx.CountAccessKeys(ctx)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// The pruned horizon is stored: after a restart, a reader positioned below
// it still learns that it missed changes, and the head has not moved back,
// even when pruning removed every entry.
func TestDB_PrunedHorizonPersists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var last int64
	for i := range 3 {
		ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated, Scope: fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"},
			CertificateID: fmt.Sprintf("%064x", i), NewStatus: fleetcert.StatusActive, Time: at.Add(time.Duration(i) * time.Second)}
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.AppendChange(ctx, ch) }); err != nil {
			t.Fatal(err)
		}
		last = ch.Seq
	}
	if n, err := db.PruneChanges(ctx, at.Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("PruneChanges = %d, %v; want 3", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenDBAt(t, path, nil)
	if _, err := db.Changes(ctx, last-1, 10); !errors.Is(err, fleetcert.ErrChangesPruned) {
		t.Fatalf("Changes(%d) after reopening: %v, want ErrChangesPruned", last-1, err)
	}
	if got, err := db.Changes(ctx, last, 10); err != nil || len(got) != 0 {
		t.Fatalf("Changes(%d) after reopening = %+v, %v; want none", last, got, err)
	}
	if head, err := db.ChangesHead(ctx); err != nil || head != last {
		t.Fatalf("ChangesHead after reopening = %d, %v; want %d", head, err, last)
	}
}
