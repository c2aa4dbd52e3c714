package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

// mustCreateAccessKey writes a new access key and returns its id.
func mustCreateAccessKey(tb testing.TB, db *sqlite.DB) string {
	tb.Helper()
	id, err := createAccessKey(db)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func createAccessKey(db *sqlite.DB) (string, error) {
	ctx := context.Background()
	k, err := fleetcert.NewAccessKey(fleetcert.DefaultAccountID, time.Now())
	if err != nil {
		return "", err
	}
	return k.ID, db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) })
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()

	t.Run("ok/round-trip", func(t *testing.T) {
		db := MustOpenDB(t)
		id := mustCreateAccessKey(t, db)
		to := filepath.Join(t.TempDir(), "backup.db")
		info, err := sqlite.Backup(ctx, db.Path, to)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(to)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("backup mode %v, want 0600: it holds access-key secrets", st.Mode().Perm())
		}
		if info.SchemaVersion < 10 || info.Size != st.Size() {
			t.Errorf("info %+v, size on disk %d", info, st.Size())
		}
		if files, _ := filepath.Glob(filepath.Join(filepath.Dir(to), "*")); len(files) != 1 {
			t.Errorf("files beside the backup %q, want the backup alone (no temporary, -wal or -journal)", files)
		}

		dbPath := filepath.Join(t.TempDir(), "new", "fleetcert.db") // directory made by Restore
		if _, err := sqlite.Restore(ctx, to, dbPath); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(dbPath); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("restored store: %v %v, want mode 0600", st, err)
		}
		restored := mustOpenDBAt(t, dbPath, nil)
		mustAccessKey(t, restored, id)
	})

	t.Run("ok/online-backup-holds-every-acknowledged-write", func(t *testing.T) {
		db := MustOpenDB(t)
		writer := mustOpenDBAt(t, db.Path, nil) // as a server would, in another handle
		var (
			mu      sync.Mutex
			acked   []string
			stop    = make(chan struct{})
			done    = make(chan error, 1)
			written = make(chan struct{}, 1)
		)
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				id, err := createAccessKey(writer)
				if err != nil {
					done <- err
					return
				}
				mu.Lock()
				acked = append(acked, id)
				n := len(acked)
				mu.Unlock()
				if n == 20 {
					written <- struct{}{}
				}
			}
		}()
		<-written
		mu.Lock()
		before := append([]string(nil), acked...)
		mu.Unlock()
		to := filepath.Join(t.TempDir(), "backup.db")
		_, err := sqlite.Backup(ctx, db.Path, to)
		close(stop)
		if werr := <-done; werr != nil {
			t.Fatal(werr)
		}
		if err != nil {
			t.Fatal(err)
		}
		restored := mustOpenDBAt(t, filepath.Join(t.TempDir(), "fleetcert.db"), nil)
		restored.Close()
		if _, err := sqlite.Restore(ctx, to, restored.Path); err != nil {
			t.Fatal(err)
		}
		restored = mustOpenDBAt(t, restored.Path, nil)
		for _, id := range before {
			mustAccessKey(t, restored, id)
		}
		if n := countAccessKeys(t, restored); n < len(before) {
			t.Fatalf("%d keys restored, want at least %d", n, len(before))
		}
	})

	t.Run("ok/replaced-store-kept", func(t *testing.T) {
		src := MustOpenDB(t)
		id := mustCreateAccessKey(t, src)
		to := filepath.Join(t.TempDir(), "backup.db")
		if _, err := sqlite.Backup(ctx, src.Path, to); err != nil {
			t.Fatal(err)
		}
		old := MustOpenDB(t)
		oldID := mustCreateAccessKey(t, old)
		old.Close()
		if _, err := sqlite.Restore(ctx, to, old.Path); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"-wal", "-shm"} {
			if _, err := os.Stat(old.Path + f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s beside the restored store: %v", f, err)
			}
		}
		mustAccessKey(t, mustOpenDBAt(t, old.Path, nil), id)
		mustAccessKey(t, mustOpenDBAt(t, old.Path+sqlite.PreRestoreSuffix, nil), oldID)
	})

	backup := func(t *testing.T) string {
		db := MustOpenDB(t)
		mustCreateAccessKey(t, db)
		to := filepath.Join(t.TempDir(), "backup.db")
		if _, err := sqlite.Backup(ctx, db.Path, to); err != nil {
			t.Fatal(err)
		}
		return to
	}
	// refused restores the file at from into a store that exists, and
	// checks that the error says want and that the store is untouched.
	refused := func(t *testing.T, from string, open bool, want string) {
		t.Helper()
		db := MustOpenDB(t)
		id := mustCreateAccessKey(t, db)
		if !open {
			db.Close()
		}
		_, err := sqlite.Restore(ctx, from, db.Path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Restore: %v, want an error saying %q", err, want)
		}
		if !open {
			db = mustOpenDBAt(t, db.Path, nil)
		}
		mustAccessKey(t, db, id)
		if files, _ := filepath.Glob(filepath.Join(filepath.Dir(db.Path), ".*")); len(files) > 0 {
			t.Errorf("left behind: %q", files)
		}
	}

	t.Run("fail/store-open", func(t *testing.T) {
		refused(t, backup(t), true, "stop it first")
	})
	t.Run("fail/not-sqlite", func(t *testing.T) {
		from := filepath.Join(t.TempDir(), "notes.txt")
		os.WriteFile(from, []byte(strings.Repeat("not a database\n", 500)), 0o600)
		refused(t, from, false, "not an SQLite database")
	})
	t.Run("fail/not-fleetcert", func(t *testing.T) {
		from := filepath.Join(t.TempDir(), "other.db")
		raw := openRaw(t, from)
		if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER, name TEXT); INSERT INTO schema_migrations VALUES (1, 'init.sql')`); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		refused(t, from, false, "not a fleetcert store")
	})
	t.Run("fail/newer-schema", func(t *testing.T) {
		from := backup(t)
		raw := openRaw(t, from)
		if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		refused(t, from, false, "schema version 9999 is newer")
	})
	t.Run("fail/corrupt", func(t *testing.T) {
		from := backup(t)
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		for i := 4096; i < len(b); i++ { // every page after the first
			b[i] ^= 0x5a
		}
		os.WriteFile(from, b, 0o600)
		refused(t, from, false, "not a fleetcert backup")
	})
	t.Run("fail/live-store", func(t *testing.T) {
		live := MustOpenDB(t)
		mustCreateAccessKey(t, live) // leaves a -wal beside it while open
		refused(t, live.Path, false, "write-ahead log")
	})
	t.Run("fail/backup-over-the-store", func(t *testing.T) {
		db := MustOpenDB(t)
		id := mustCreateAccessKey(t, db)
		for _, to := range []string{db.Path, db.Path + "-wal", sqlite.LockPath(db.Path)} {
			if _, err := sqlite.Backup(ctx, db.Path, to); err == nil || !strings.Contains(err.Error(), "the store's own file") {
				t.Fatalf("Backup to %s: %v, want refused", to, err)
			}
		}
		mustAccessKey(t, db, id)
	})
	t.Run("fail/backup-of-nothing", func(t *testing.T) {
		dir := t.TempDir()
		_, err := sqlite.Backup(ctx, filepath.Join(dir, "fleetcert.db"), filepath.Join(dir, "b.db"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Backup of a missing store: %v, want not exist", err)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) > 0 {
			t.Fatalf("Backup of a missing store made %q", files)
		}
	})
}

// Open refuses a store that Restore is replacing.
func TestDB_OpenWhileRestoring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	hold := holdExclusiveLock(t, sqlite.LockPath(path))
	defer hold()
	err := sqlite.NewDB(path).Open()
	if err == nil || !strings.Contains(err.Error(), "being restored") {
		t.Fatalf("Open during a restore: %v, want refused", err)
	}
}
