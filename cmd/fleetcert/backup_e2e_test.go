package main_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to check the restored store

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// A backup taken from the running server while clients register
// certificates holds every registration acknowledged before the backup
// began; restored into a new data dir, it serves them, and the store passes
// SQLite's integrity check.
func TestBackupRestoreUnderLoad(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()

	// The load is bounded: it registers at most maxCerts, and stops once the
	// backup is done and afterBackup more were acknowledged, so that it runs
	// on across the whole backup.
	const maxCerts, workers, backupAt, afterBackup = 600, 2, 60, 30
	certs := make([]*testpki.Cert, maxCerts)
	for i := range certs {
		certs[i] = testpki.New(t, testpki.Options{CommonName: "backup-load"})
	}
	var (
		mu         sync.Mutex
		acked      []string // in the order the API acknowledged them
		ackedAfter int      // acknowledged after the backup finished
		loadErr    error
		next       atomic.Int64
		backedUp   atomic.Bool
		reached    = make(chan struct{})
		reachOnce  sync.Once
		wg         sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= maxCerts {
					return
				}
				after := backedUp.Load()
				out, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
					CertificatePem: aws.String(certs[i].PEM), Status: types.CertificateStatusActive,
				})
				mu.Lock()
				if err != nil {
					loadErr = err
					mu.Unlock()
					reachOnce.Do(func() { close(reached) })
					return
				}
				acked = append(acked, aws.ToString(out.CertificateId))
				if after {
					ackedAfter++
				}
				n, done := len(acked), after && ackedAfter >= afterBackup
				mu.Unlock()
				if n >= backupAt {
					reachOnce.Do(func() { close(reached) })
				}
				if done {
					return
				}
			}
		}()
	}
	<-reached
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	backup := filepath.Join(t.TempDir(), "fleetcert-backup.db")
	code, stdout, stderr := runFleetcert(t, nil, "backup", "--data-dir", s.dataDir, "--to", backup)
	backedUp.Store(true)
	wg.Wait()
	if loadErr != nil {
		t.Fatalf("load: %v\nserver log:\n%s", loadErr, s.stderr.String())
	}
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("%s; %d registrations acknowledged before it began, %d in all", strings.TrimSpace(stdout), len(before), len(acked))
	if st, err := os.Stat(backup); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", st, err)
	}
	s.stop()

	restored := &server{t: t, dataDir: filepath.Join(t.TempDir(), "restored"), env: s.env}
	code, stdout, stderr = runFleetcert(t, nil, "restore", "--from", backup, "--data-dir", restored.dataDir)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	restored.start()
	t.Cleanup(restored.stop)

	have := map[string]bool{}
	p := iot.NewListCertificatesPaginator(restored.defaultClient(), &iot.ListCertificatesInput{PageSize: aws.Int32(250)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cd := range page.Certificates {
			have[aws.ToString(cd.CertificateId)] = true
		}
	}
	for _, id := range before {
		if !have[id] {
			t.Errorf("certificate %s, acknowledged before the backup began, is missing after the restore", id)
		}
	}
	if len(have) > len(acked) {
		t.Errorf("%d certificates restored, more than the %d registered", len(have), len(acked))
	}

	db, err := sql.Open("sqlite", filepath.Join(restored.dataDir, "fleetcert.db")+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the restored store: %q %v", check, err)
	}
}

// Restore refuses what would lose or corrupt a store, and says why;
// backup and restore send a cluster's operator to PostgreSQL's tools.
func TestBackupRestoreRefusals(t *testing.T) {
	s := startServer(t)
	id := register(t, s.defaultClient(), testpki.Leaf(t).PEM, types.CertificateStatusActive)
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup.db")
	if code, _, stderr := runFleetcert(t, nil, "backup", "--data-dir", s.dataDir, "--to", backup); code != 0 {
		t.Fatalf("backup: exit %d %s", code, stderr)
	}
	notStore := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notStore, []byte(strings.Repeat("not a database\n", 300)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fail/restore-over-running-server", []string{"restore", "--from", backup, "--data-dir", s.dataDir}, 1, "stop it first"},
		{"fail/restore-not-a-store", []string{"restore", "--from", notStore, "--data-dir", filepath.Join(dir, "new")}, 1, "not an SQLite database"},
		{"fail/restore-missing-file", []string{"restore", "--from", filepath.Join(dir, "nothing.db"), "--data-dir", filepath.Join(dir, "new")}, 1, "no such file"},
		{"fail/restore-postgres", []string{"restore", "--from", backup, "--database-url", "postgres://db.example/fleetcert"}, 1, "pg_restore"},
		{"fail/backup-postgres", []string{"backup", "--to", backup, "--database-url", "postgres://db.example/fleetcert"}, 1, "pg_dump"},
		{"fail/backup-no-store", []string{"backup", "--data-dir", filepath.Join(dir, "empty"), "--to", filepath.Join(dir, "b2.db")}, 1, "holds no fleetcert store"},
		{"fail/backup-without-to", []string{"backup", "--data-dir", s.dataDir}, 2, "--to is required"},
		{"fail/restore-without-from", []string{"restore", "--data-dir", s.dataDir}, 2, "--from is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runFleetcert(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q (stdout %q)", code, stderr, tt.code, tt.want, stdout)
			}
		})
	}
	// The refused restore left the running server's store alone.
	if got := describe(t, s.defaultClient(), id); got.Status != types.CertificateStatusActive {
		t.Fatalf("after the refused restore: %s", got.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "b2.db")); err == nil {
		t.Fatal("a refused backup wrote its file")
	}
}
