package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/fleetcert/fleetcert"
)

// runMigrate is "fleetcert migrate": it copies an embedded store into
// PostgreSQL.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "fleetcert migrate --from-sqlite DIR --database-url URL [--merge]", `
Copies every record of the embedded store in DIR (certificates, CA
certificates, registration codes, transfers, access keys, the issuing CA and
the gateway CA) into the PostgreSQL database at URL, then reads the copy back
and checks it record by record. It prints the counts and a SHA-256 checksum
of what was copied. Stop the fleetcert server that uses DIR first. A target
that already holds records is refused unless --merge, which keeps what the
target holds and copies the rest. The change feed and the audit log are not
copied: the cluster starts its own.`)
	from := fs.String("from-sqlite", "", "data dir of the embedded store to copy (required)")
	url := fs.String("database-url", "", "postgres:// URL of the target database (required)")
	merge := fs.Bool("merge", false, "copy into a database that already holds records, keeping them")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *from == "" || *url == "" {
		fs.writeUsage(stderr)
		return usagef("migrate: --from-sqlite and --database-url are required")
	}
	src, err := openExistingStore(ctx, *from)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer src.Close()
	exp, ok := src.(fleetcert.Exporter)
	if !ok {
		return fmt.Errorf("migrate: the store in %s cannot list its records", *from)
	}
	dst, err := openStore(ctx, Config{DatabaseURL: *url}, slog.Default())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	stats, err := fleetcert.CopyStore(ctx, exp, dst, fleetcert.CopyOptions{Merge: *merge})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	kinds := make([]string, 0, len(stats.Counts))
	for k := range stats.Counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(stdout, "%-18s %d\n", k, stats.Counts[k])
	}
	if *merge {
		fmt.Fprintf(stdout, "%-18s %d\n", "already held", stats.Skipped)
	}
	fmt.Fprintf(stdout, "checksum           sha256:%s (verified against the target)\n", stats.Checksum)
	return nil
}
