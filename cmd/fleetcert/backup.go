package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fleetcert/fleetcert/sqlite"
)

// errPostgresBackup answers backup and restore of a cluster's store.
var errPostgresBackup = errors.New("a cluster's store is PostgreSQL's: back it up with pg_dump and restore it with pg_restore (or your provider's snapshots); fleetcert backup and restore cover the embedded store of --data-dir")

// runBackup is "fleetcert backup": a consistent copy of the embedded store,
// taken while the server runs.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "fleetcert backup --to FILE [--data-dir D]", `
Writes a consistent copy of the embedded store in --data-dir to FILE while
the server runs: it holds every write the server acknowledged before the
backup began. The copy is checked (PRAGMA integrity_check, fleetcert's
schema) and only then renamed to FILE, replacing any file there, with mode
0600: it holds access-key secrets and the CAs' keys, so keep it as you keep
the store. fleetcert restore puts it back. A cluster on PostgreSQL is backed
up with pg_dump instead.`)
	dataDir := fs.String("data-dir", "./fleetcert-data", "data directory of the fleetcert server (as given to fleetcert serve)")
	to := fs.String("to", "", "file to write the backup to (required)")
	databaseURL := fs.String("database-url", "", "the server's --database-url, if any: then use pg_dump, not this command")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *databaseURL != "" {
		return fmt.Errorf("backup: %w", errPostgresBackup)
	}
	if *to == "" {
		fs.writeUsage(stderr)
		return usagef("backup: --to is required")
	}
	path := filepath.Join(*dataDir, storeFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup: %s holds no fleetcert store (no %s): pass the --data-dir of your fleetcert server", *dataDir, storeFile)
	}
	info, err := sqlite.Backup(ctx, path, *to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %d certificates, schema version %d, %d bytes\n",
		path, *to, info.Certificates, info.SchemaVersion, info.Size)
	return nil
}

// runRestore is "fleetcert restore": it replaces the embedded store with a
// backup.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "fleetcert restore --from FILE [--data-dir D]", `
Replaces the embedded store in --data-dir (created if missing) with the
backup FILE made by fleetcert backup. It refuses while a fleetcert process
has the store open (stop the server first), and refuses a file that is not
a fleetcert store, fails PRAGMA integrity_check, or has a schema newer than
this fleetcert knows; an older schema is migrated at the next start. The
store it replaces is kept beside it as fleetcert.db.pre-restore until the
next restore. A cluster on PostgreSQL is restored with pg_restore instead.`)
	dataDir := fs.String("data-dir", "./fleetcert-data", "data directory to restore into (as given to fleetcert serve)")
	from := fs.String("from", "", "backup file made by fleetcert backup (required)")
	databaseURL := fs.String("database-url", "", "the server's --database-url, if any: then use pg_restore, not this command")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *databaseURL != "" {
		return fmt.Errorf("restore: %w", errPostgresBackup)
	}
	if *from == "" {
		fs.writeUsage(stderr)
		return usagef("restore: --from is required")
	}
	path := filepath.Join(*dataDir, storeFile)
	_, statErr := os.Stat(path)
	info, err := sqlite.Restore(ctx, *from, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s from %s: %d certificates, schema version %d\n",
		path, *from, info.Certificates, info.SchemaVersion)
	if statErr == nil {
		fmt.Fprintf(stdout, "the store it replaced is kept as %s\n", path+sqlite.PreRestoreSuffix)
	}
	return nil
}
