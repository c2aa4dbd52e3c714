package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errLocked is a lock another process holds the other way.
var errLocked = errors.New("locked")

// LockPath is the lock file beside the store at dbPath. Every process that
// opens the store holds a shared lock on it; Restore takes it exclusively.
func LockPath(dbPath string) string { return dbPath + ".lock" }

// PreRestoreSuffix is appended to the name of a store Restore replaces: it
// is kept, with its write-ahead log, as dbPath+PreRestoreSuffix (and
// "-wal"), until the next Restore.
const PreRestoreSuffix = ".pre-restore"

// BackupInfo describes a backup file.
type BackupInfo struct {
	SchemaVersion int   // the newest migration applied to it
	Certificates  int   // client certificate registrations
	Size          int64 // bytes
}

// Backup writes a consistent copy of the store at dbPath to the file to,
// while other processes (a running fleetcert serve) read and write the
// store: the copy holds exactly the transactions committed before it began,
// so every write acknowledged before Backup was called is in it.
//
// It is SQLite's VACUUM INTO, which reads the store in one read transaction: in WAL mode it never blocks the server's writer, and the
// writer never blocks it. The online backup API (sqlite3_backup_step) would
// do as well in one step, but VACUUM INTO writes a compact file, needs no
// driver-specific API, and is a statement any sqlite3 shell can repeat.
//
// The copy is written to a temporary file beside to, switched from the
// write-ahead log to a rollback journal so that it is one self-contained
// file, checked (PRAGMA integrity_check, fleetcert's schema), synced to disk
// and only then renamed to to, replacing any file there: a failed or
// interrupted Backup never leaves a partial file under that name. The file
// has mode 0600: it holds access-key secrets and CA keys.
func Backup(ctx context.Context, dbPath, to string) (info BackupInfo, err error) {
	if _, err := os.Stat(dbPath); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	for _, f := range []string{dbPath, dbPath + "-wal", dbPath + "-shm", LockPath(dbPath)} {
		if fst, err := os.Stat(f); err == nil {
			if tst, err := os.Stat(to); err == nil && os.SameFile(fst, tst) {
				return info, fmt.Errorf("backup: %s is the store's own file %s: write the backup to another file", to, f)
			}
		}
	}
	// A shared lock, as a server holds: Restore does not replace the store
	// while it is read.
	lock, err := lockFile(LockPath(dbPath), false)
	if errors.Is(err, errLocked) {
		return info, fmt.Errorf("backup: %s is being restored", dbPath)
	} else if err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	defer lock.Close()

	// Not query_only, which refuses VACUUM INTO; it writes only the copy.
	src, err := sql.Open("sqlite", dbPath+"?_busy_timeout="+strconv.FormatInt(BusyTimeout.Milliseconds(), 10))
	if err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	defer src.Close()
	if _, err := schemaVersion(ctx, src); err != nil {
		return info, fmt.Errorf("backup: %s: %w", dbPath, err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(to), "."+filepath.Base(to)+".*.tmp") // mode 0600
	if err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	tmpPath := tmp.Name()
	defer func() {
		if err != nil {
			os.Remove(tmpPath)
		}
	}()
	if err := tmp.Close(); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	// VACUUM INTO writes into a file that is empty, as this one is; an
	// existing file keeps its mode.
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, tmpPath); err != nil {
		return info, fmt.Errorf("backup: copy %s: %w", dbPath, err)
	}
	if info, err = verifyCopy(ctx, tmpPath); err != nil {
		return info, fmt.Errorf("backup: the copy fails its check: %w", err)
	}
	if err := syncAndRename(tmpPath, to); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	return info, nil
}

// Restore replaces the store at dbPath with the backup file from, after
// checking it: an SQLite database that passes PRAGMA integrity_check, with
// fleetcert's schema at a version this build knows (an older one is
// migrated when the store is next opened). It refuses while any process
// has the store open (a server, fleetcert keys, a backup), and makes sure
// none opens it until it is done.
//
// The backup is copied beside the store and checked there, so what is
// swapped in is exactly what was checked. The store it replaces is kept as
// dbPath+PreRestoreSuffix, with its write-ahead log; the old -shm file is
// removed, since a write-ahead log or index left beside the new file would
// be read as its own.
func Restore(ctx context.Context, from, dbPath string) (info BackupInfo, err error) {
	if _, err := os.Stat(from); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(from + "-wal"); err == nil {
		return info, fmt.Errorf("restore: %s has a write-ahead log beside it (%s-wal): it is a live store, not a backup; make one with fleetcert backup", from, from)
	}
	dir := filepath.Dir(dbPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	lock, err := lockFile(LockPath(dbPath), true)
	if errors.Is(err, errLocked) {
		return info, fmt.Errorf("restore: a fleetcert process has %s open (a server, or fleetcert keys or backup): stop it first", dbPath)
	} else if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	defer lock.Close()

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dbPath)+".*.restore") // mode 0600
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	tmpPath := tmp.Name()
	defer func() {
		if err != nil {
			os.Remove(tmpPath)
		}
	}()
	in, err := os.Open(from)
	if err != nil {
		tmp.Close()
		return info, fmt.Errorf("restore: %w", err)
	}
	_, err = io.Copy(tmp, in)
	in.Close()
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return info, fmt.Errorf("restore: copy %s: %w", from, err)
	}
	if info, err = verifyCopy(ctx, tmpPath); err != nil {
		return info, fmt.Errorf("restore: %s is not a fleetcert backup this fleetcert can restore: %w", from, err)
	}

	// Move the replaced store aside, log first: the -wal belongs to the
	// old file and must never sit beside the new one.
	for _, suffix := range []string{"-wal", ""} {
		err := os.Rename(dbPath+suffix, dbPath+PreRestoreSuffix+suffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return info, fmt.Errorf("restore: keep the replaced store: %w", err)
		}
	}
	if err := os.Remove(dbPath + "-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("restore: %w", err)
	}
	if err := syncAndRename(tmpPath, dbPath); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	return info, nil
}

// verifyCopy checks the copy of a store at path, which this process alone
// uses, and returns what it holds. It makes the copy one self-contained
// file (journal_mode DELETE).
func verifyCopy(ctx context.Context, path string) (info BackupInfo, err error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return info, err
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	db.SetMaxOpenConns(1)
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		return info, notDatabase(err)
	}
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return info, notDatabase(err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return info, err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return info, notDatabase(err)
	}
	if len(problems) > 0 {
		return info, fmt.Errorf("PRAGMA integrity_check: %q", problems)
	}
	if info.SchemaVersion, err = schemaVersion(ctx, db); err != nil {
		return info, err
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM certificates`).Scan(&info.Certificates); err != nil {
		return info, fmt.Errorf("count certificates: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return info, err
	}
	info.Size = st.Size()
	return info, nil
}

// schemaVersion returns the schema version of a fleetcert store: it fails
// for an SQLite database that is not one (no schema_migrations, or not
// fleetcert's first migration) and for one newer than this build knows.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return 0, notDatabase(err)
	}
	var first string
	if n == 1 {
		err = db.QueryRowContext(ctx, `SELECT name FROM schema_migrations WHERE version = 1`).Scan(&first)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	if first != filepath.Base(ms[0].name) {
		return 0, errors.New("an SQLite database, but not a fleetcert store (no fleetcert schema migrations)")
	}
	var version int
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
		return 0, err
	}
	if latest := ms[len(ms)-1].version; version > latest {
		return 0, fmt.Errorf("its schema version %d is newer than this fleetcert knows (%d): use the fleetcert that made it, or a newer one", version, latest)
	}
	return version, nil
}

// notDatabase words SQLite's "file is not a database" for an operator.
func notDatabase(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_NOTADB {
		return errors.New("not an SQLite database")
	}
	return err
}

// syncAndRename flushes the file at tmp to disk, renames it to path and
// syncs the directory, so that after a crash path is either the old file
// or all of the new one.
func syncAndRename(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
