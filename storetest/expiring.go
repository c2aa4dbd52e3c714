package storetest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

func getExpiring(s fleetcert.Store, kind, key string, now time.Time) ([]byte, error) {
	ctx := context.Background()
	var v []byte
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		v, err = tx.Expiring(ctx, kind, key, now)
		return err
	})
	return v, err
}

func putExpiring(tb testing.TB, s fleetcert.Store, kind, key string, value []byte, expires time.Time) {
	tb.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.PutExpiring(ctx, kind, key, value, expires) }); err != nil {
		tb.Fatalf("PutExpiring: %v", err)
	}
}

func testExpiring(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	now := baseTime
	wantValue := func(kind, key string, at time.Time, want string) {
		t.Helper()
		v, err := getExpiring(s, kind, key, at)
		if want == "" {
			if fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
				t.Fatalf("Expiring(%s, %s) at %s = %q, %v; want ResourceNotFoundException", kind, key, at, v, err)
			}
			return
		}
		if err != nil || string(v) != want {
			t.Fatalf("Expiring(%s, %s) at %s = %q, %v; want %q", kind, key, at, v, err, want)
		}
	}
	wantValue("login", "a", now, "")
	putExpiring(t, s, "login", "a", []byte("first\x00"), now.Add(time.Minute))
	putExpiring(t, s, "flash", "a", []byte("other kind"), now.Add(time.Hour))
	wantValue("login", "a", now, "first\x00")
	wantValue("login", "a", now.Add(time.Minute-time.Millisecond), "first\x00")
	wantValue("login", "a", now.Add(time.Minute), "") // expired at its time
	// Replaced, with a new expiry.
	putExpiring(t, s, "login", "a", []byte("second"), now.Add(2*time.Minute))
	wantValue("login", "a", now.Add(time.Minute), "second")
	wantValue("flash", "a", now, "other kind")

	// Writes in a View fail and change nothing.
	if err := s.View(ctx, func(tx fleetcert.Tx) error {
		return tx.PutExpiring(ctx, "login", "a", []byte("in view"), now.Add(time.Hour))
	}); err == nil {
		t.Fatal("PutExpiring in a View succeeded")
	}
	wantValue("login", "a", now, "second")

	del := func(kind, key string) {
		t.Helper()
		if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteExpiring(ctx, kind, key) }); err != nil {
			t.Fatalf("DeleteExpiring: %v", err)
		}
	}
	del("login", "a")
	del("login", "a") // missing: no error
	wantValue("login", "a", now, "")
	wantValue("flash", "a", now, "other kind")

	// Pruning removes what expired, and only that.
	putExpiring(t, s, "login", "old", []byte("x"), now.Add(-time.Second))
	putExpiring(t, s, "login", "new", []byte("y"), now.Add(time.Second))
	var n int64
	if err := s.Update(ctx, func(tx fleetcert.Tx) (err error) { n, err = tx.PruneExpiring(ctx, now); return err }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("PruneExpiring removed %d values, want 1", n)
	}
	wantValue("login", "new", now, "y")
	wantValue("flash", "a", now, "other kind")
}

// testExpiringCounter: a counter read and written back in one Update, by
// many writers at once, counts every increment — the console's sign-in
// limiter, shared by a cluster's nodes, relies on it.
func testExpiringCounter(t *testing.T, s fleetcert.Store) {
	const writers, each = 4, 10
	ctx := context.Background()
	now := baseTime
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				errs <- s.Update(ctx, func(tx fleetcert.Tx) error {
					n := 0
					v, err := tx.Expiring(ctx, "limit", "k", now)
					switch fleetcert.ErrorCode(err) {
					case "":
						n, _ = strconv.Atoi(string(v))
					case fleetcert.EResourceNotFound:
					default:
						return err
					}
					return tx.PutExpiring(ctx, "limit", "k", []byte(strconv.Itoa(n+1)), now.Add(time.Minute))
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v, err := getExpiring(s, "limit", "k", now)
	if err != nil || string(v) != strconv.Itoa(writers*each) {
		t.Fatalf("counter = %q, %v; want %d", v, err, writers*each)
	}
}
