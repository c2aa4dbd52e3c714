//go:build unix

package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// holdExclusiveLock takes the lock Restore takes, and returns its release.
func holdExclusiveLock(tb testing.TB, path string) func() {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		tb.Fatal(err)
	}
	return func() { f.Close() }
}

// shmInUse reports whether another process holds a lock on the DMS byte of
// the WAL index at path, as every process with the database open does.
func shmInUse(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()          // this process holds no lock on it
	const dms = (22+8)*4 + 8 // UNIX_SHM_DMS in SQLite's os_unix.c
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: dms, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != syscall.F_UNLCK, nil
}

// Another process opening the database (the backup command, a second
// tool) must find this one's locks on the WAL index: were they dropped, it
// would take itself for the first process, reset the index, and this
// process's next transactions would fail with disk I/O errors.
func TestDB_SecondProcessKeepsWALIndex(t *testing.T) {
	const envPath = "FLEETCERT_SQLITE_SECOND_PROCESS_DB"
	ctx := context.Background()
	if path := os.Getenv(envPath); path != "" {
		// The child: the parent must hold its lock on the WAL index
		// (SQLite's "DMS" byte, at offset 128 of the -shm file, which the
		// first process to open a database takes exclusively to reset the
		// index)...
		if locked, err := shmInUse(path + "-shm"); err != nil || !locked {
			t.Fatalf("the WAL index of %s is locked by no other process (%v): a new process would reset it", path, err)
		}
		// ... and then open, read, close, as `fleetcert backup` does.
		raw := openRaw(t, path)
		var n int
		if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM access_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := raw.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	db := mustOpenDBAt(t, path, nil)
	for i := range 5 {
		k := &fleetcert.AccessKey{ID: fmt.Sprintf("AKIASECONDPROC%06d", i), Secret: "s",
			AccountID: fleetcert.DefaultAccountID, CreatedAt: time.Unix(1, 0).UTC()}
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) }); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestDB_SecondProcessKeepsWALIndex$")
		cmd.Env = append(os.Environ(), envPath+"="+path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("second process: %v\n%s", err, out)
		}
		if _, ok := db.CommitStamp(); !ok {
			t.Fatalf("after the second process %d: no commit stamp (the WAL index was reset)", i)
		}
		if err := db.View(ctx, func(tx fleetcert.Tx) error {
			_, err := tx.AccessKey(ctx, k.ID)
			return err
		}); err != nil {
			t.Fatalf("read after the second process %d: %v", i, err)
		}
	}
}
