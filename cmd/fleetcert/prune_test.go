package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

func TestPruneInterval(t *testing.T) {
	for _, tc := range []struct{ retention, want time.Duration }{
		{24 * time.Hour, time.Hour},
		{7 * 24 * time.Hour, time.Hour},
		{time.Hour, 150 * time.Second},
		{time.Second, time.Second},
	} {
		if got := pruneInterval(tc.retention); got != tc.want {
			t.Errorf("pruneInterval(%v) = %v, want %v", tc.retention, got, tc.want)
		}
	}
}

// The pruner removes what is older than the retention, at once on start.
func TestChangePruner(t *testing.T) {
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), storeFile))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := fleetcert.NewRegistry(db, nil)
	now := time.Now()
	reg.Now = func() time.Time { return now.Add(-48 * time.Hour) }
	if _, err := reg.RegisterCertificateWithoutCA(ctx, fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"},
		testpki.New(t, testpki.Options{NotBefore: now.Add(-72 * time.Hour)}).PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	reg.Now = time.Now
	recent, err := reg.RegisterCertificateWithoutCA(ctx, fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"},
		testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	if p := startChangePruner(reg, 0, slog.New(slog.NewTextHandler(io.Discard, nil))); p != nil {
		t.Fatal("retention 0 started a pruner")
	}
	logs := &testwait.Buffer{}
	p := startChangePruner(reg, DefaultChangeRetention, slog.New(slog.NewTextHandler(logs, nil)))
	defer p.stop()
	// The store's feed: the Registry's (Registry.Changes) still answers
	// with the entries it read before they were pruned, which were the
	// feed's.
	testwait.For(t, "the old change to be pruned", func() bool {
		_, err := db.Changes(ctx, 0, 10)
		return errors.Is(err, fleetcert.ErrChangesPruned)
	})
	head, err := reg.ChangesHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chs, err := reg.Changes(ctx, head-1, 10)
	if err != nil || len(chs) != 1 || chs[0].CertificateID != recent.ID {
		t.Fatalf("Changes(%d) = %+v, %v; want the recent registration kept", head-1, chs, err)
	}
	testwait.For(t, "the prune to be logged", func() bool { return strings.Contains(logs.String(), "removed=1") })
}

func TestServeChangeRetentionFlag(t *testing.T) {
	var out bytes.Buffer
	if err := runServe(context.Background(), []string{"--help"}, &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve --help: %v", err)
	}
	if !strings.Contains(out.String(), "--change-retention duration") || !strings.Contains(out.String(), "FLEETCERT_CHANGE_RETENTION; default 24h0m0s") {
		t.Fatalf("serve --help does not describe --change-retention:\n%s", out.String())
	}
}

// The audit pruner keeps what is younger than its own retention, whatever
// the change feed's.
func TestAuditPruner(t *testing.T) {
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), storeFile))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := fleetcert.NewRegistry(db, nil)
	scope := fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	now := time.Now()
	reg.Now = func() time.Time { return now.Add(-100 * 24 * time.Hour) }
	if _, err := reg.RegisterCertificateWithoutCA(ctx, scope,
		testpki.New(t, testpki.Options{NotBefore: now.Add(-101 * 24 * time.Hour)}).PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	reg.Now = func() time.Time { return now.Add(-48 * time.Hour) }
	kept, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{NotBefore: now.Add(-72 * time.Hour)}).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	reg.Now = time.Now
	if p := startAuditPruner(reg, 0, slog.New(slog.NewTextHandler(io.Discard, nil))); p != nil {
		t.Fatal("retention 0 started a pruner")
	}
	logs := &testwait.Buffer{}
	p := startAuditPruner(reg, DefaultAuditRetention, slog.New(slog.NewTextHandler(logs, nil)))
	defer p.stop()
	testwait.For(t, "the prune to be logged", func() bool { return strings.Contains(logs.String(), "pruned audit log") })
	entries, _, err := reg.Audit(ctx, fleetcert.AuditQuery{})
	if err != nil || len(entries) != 1 || entries[0].CertificateID != kept.ID {
		t.Fatalf("audit log %+v, %v; want only the registration of 48 hours ago", entries, err)
	}
}
