package testpg_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"syscall"
	"testing"

	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }

// query returns the one text value of sql on the database at url.
func query(tb testing.TB, url, sql string) (string, error) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

func TestShared(t *testing.T) {
	t.Run("ok/databases-are-fresh-and-separate", func(t *testing.T) {
		a, b := testpg.NewDatabase(t), testpg.NewDatabase(t)
		if a == b {
			t.Fatalf("two databases with one URL %s", a)
		}
		for _, url := range []string{a, b} {
			if n, err := query(t, url, "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"); err != nil || n != "0" {
				t.Fatalf("%s: %s tables (%v), want an empty database", url, n, err)
			}
		}
		if testpg.Shared(t) != testpg.Shared(t) {
			t.Fatal("Shared started a second server")
		}
	})
	t.Run("ok/loopback-only", func(t *testing.T) {
		if os.Getenv(testpg.EnvURL) != "" {
			t.Skipf("the server at %s is not ours to check", testpg.EnvURL)
		}
		addrs, err := query(t, testpg.NewDatabase(t), "SHOW listen_addresses")
		if err != nil || addrs != "127.0.0.1" {
			t.Fatalf("listen_addresses %q (%v), want 127.0.0.1", addrs, err)
		}
	})
}

func TestStart(t *testing.T) {
	t.Run("ok/stop-and-restart-keep-data", func(t *testing.T) {
		s := testpg.Start(t)
		url := s.NewDatabase(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')"); err != nil {
			t.Fatal(err)
		}
		pid, err := s.PID()
		if err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			// PostgreSQL refuses root; the server runs as nobody.
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`(?m)^Uid:\s+65534\s`).Match(status) {
				t.Fatalf("postmaster %d does not run as nobody:\n%s", pid, status)
			}
		}
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.EPERM) {
			// A zombie awaiting its reaper still answers; the pid file is gone.
			if _, statErr := s.PID(); !errors.Is(statErr, os.ErrNotExist) {
				t.Fatalf("postmaster %d runs after Stop", pid)
			}
		}
		if _, err := query(t, url, "SELECT 'up'"); err == nil {
			t.Fatal("query succeeded on a stopped server")
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		if v, err := query(t, url, "SELECT v FROM kept"); err != nil || v != "yes" {
			t.Fatalf("after restart: %q, %v", v, err)
		}
	})
}
