package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// limited is what the page says when the sign-in limiter refuses.
const limited = "Too many failed sign-ins"

func TestSignInLimiter(t *testing.T) {
	t.Run("fail/parallel wrong secrets: exactly the limit is checked", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		// Every read of the store waits at a gate until each sign-in has
		// either reached it or been answered, so that all the attempts are
		// in flight together however the scheduler runs them.
		gate := &gatedStore{Store: e.Reg.Store, open: make(chan struct{})}
		e.Reg.Store = gate
		const n = 60
		c := e.client("127.0.0.1")
		results := make([]signInAttempt, n)
		errs := make([]error, n)
		var answered atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = e.signInOver(c, k.ID, "wrong")
				answered.Add(1)
			})
		}
		testwait.For(t, "every sign-in at the store or answered", func() bool {
			return gate.waiting.Load()+answered.Load() == n
		})
		close(gate.open)
		wg.Wait()
		byStatus := map[int]int{}
		for i, r := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			byStatus[r.Status]++
			if r.Status == http.StatusTooManyRequests && !strings.Contains(text(r.Body), limited) {
				t.Errorf("a refused sign-in's page does not say %q:\n%s", limited, text(r.Body))
			}
		}
		want := map[int]int{http.StatusUnauthorized: console.DefaultMaxFailedSignIns, http.StatusTooManyRequests: n - console.DefaultMaxFailedSignIns}
		if len(byStatus) != len(want) || byStatus[http.StatusUnauthorized] != want[http.StatusUnauthorized] ||
			byStatus[http.StatusTooManyRequests] != want[http.StatusTooManyRequests] {
			t.Errorf("%d parallel wrong sign-ins answered %v, want %v", n, byStatus, want)
		}
		if got := strings.Count(e.Log.String(), "console: failed sign-in"); got != console.DefaultMaxFailedSignIns {
			t.Errorf("%d secrets were checked and failed, want %d", got, console.DefaultMaxFailedSignIns)
		}

		// The right secret is refused too from that address, and is
		// accepted from another.
		if r, err := e.signInOver(c, k.ID, k.Secret); err != nil || r.Status != http.StatusTooManyRequests {
			t.Errorf("the right secret from the locked address: %d %v, want %d", r.Status, err, http.StatusTooManyRequests)
		}
		if r, err := e.signInOver(e.client("127.0.0.2"), k.ID, k.Secret); err != nil || r.Status != http.StatusSeeOther {
			t.Errorf("the right secret from another address: %d %v, want %d (signed in)", r.Status, err, http.StatusSeeOther)
		}
	})

	t.Run("ok/each key id has its own attempts, up to the address's cap", func(t *testing.T) {
		e := newEnv(t)
		const addr = "127.0.0.1:40000"
		perKey := console.DefaultMaxFailedSignIns
		keys := 4 // the default cap of an address is 4 × the limit per key
		for i := range keys {
			k := e.key("111111111111")
			for j := range perKey {
				if r := e.signInFrom(addr, k.ID, "wrong", nil); r.Status != http.StatusUnauthorized {
					t.Fatalf("key %d, wrong secret %d: status %d, want %d", i+1, j+1, r.Status, http.StatusUnauthorized)
				}
			}
			if r := e.signInFrom(addr, k.ID, k.Secret, nil); r.Status != http.StatusTooManyRequests {
				t.Fatalf("key %d after %d failures: status %d, want %d", i+1, perKey, r.Status, http.StatusTooManyRequests)
			}
		}
		// The address has used its cap: a fifth key id, even with its
		// right secret, is refused there, and accepted elsewhere.
		k := e.key("111111111111")
		r := e.signInFrom(addr, k.ID, k.Secret, nil)
		if r.Status != http.StatusTooManyRequests || !strings.Contains(text(r.Body), limited) {
			t.Errorf("a new key id from an address over its cap: status %d, want %d saying %q", r.Status, http.StatusTooManyRequests, limited)
		}
		if r := e.signInFrom("127.0.0.2:40000", k.ID, k.Secret, nil); r.Status != http.StatusSeeOther {
			t.Errorf("the same key from another address: status %d, want %d", r.Status, http.StatusSeeOther)
		}
	})

	t.Run("ok/a success neither counts nor forgives", func(t *testing.T) {
		e := newEnv(t)
		const addr = "127.0.0.1:40000"
		k, mine := e.key("111111111111"), e.key("111111111111")
		for range console.DefaultMaxFailedSignIns - 1 {
			wantSignIn(t, e.signInFrom(addr, k.ID, "wrong", nil), http.StatusUnauthorized)
		}
		// Signing in with a key one knows must not reset the count of
		// another: that would give whoever holds one key unlimited
		// guesses at the others.
		wantSignIn(t, e.signInFrom(addr, mine.ID, mine.Secret, nil), http.StatusSeeOther)
		wantSignIn(t, e.signInFrom(addr, k.ID, "wrong", nil), http.StatusUnauthorized)
		wantSignIn(t, e.signInFrom(addr, k.ID, k.Secret, nil), http.StatusTooManyRequests)
		// Nor did the success use one of mine's attempts.
		for range console.DefaultMaxFailedSignIns {
			wantSignIn(t, e.signInFrom(addr, mine.ID, "wrong", nil), http.StatusUnauthorized)
		}
		wantSignIn(t, e.signInFrom(addr, mine.ID, mine.Secret, nil), http.StatusTooManyRequests)
	})

	t.Run("fail/the refusal does not tell whether the key exists", func(t *testing.T) {
		e := newEnv(t)
		now := time.Now()
		e.H.Now = func() time.Time { return now }
		k := e.key("111111111111")
		var pages []signInAttempt
		for _, try := range []struct{ addr, keyID string }{
			{"127.0.0.1:40000", k.ID},
			{"127.0.0.2:40000", "AKIAUNKNOWNUNKNOWN00"},
		} {
			for range console.DefaultMaxFailedSignIns {
				wantSignIn(t, e.signInFrom(try.addr, try.keyID, "wrong", nil), http.StatusUnauthorized)
			}
			r := e.signInFrom(try.addr, try.keyID, "wrong", nil)
			wantSignIn(t, r, http.StatusTooManyRequests)
			pages = append(pages, r)
		}
		if a, b := text(pages[0].Body), text(pages[1].Body); a != b {
			t.Errorf("the refusals differ for a key that exists and one that does not:\n%s\n%s", a, b)
		}
		if a, b := pages[0].Header.Get("Retry-After"), pages[1].Header.Get("Retry-After"); a != b || a == "" {
			t.Errorf("Retry-After %q and %q: want the same, set", a, b)
		}
	})
}

func TestSignInLimiterMemory(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	now := time.Now()
	e.H.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	const entries = 50
	console.SetLimiterEntries(e.H, entries)

	// Many addresses, one failure each: the limiter keeps at most its
	// entries.
	var last string
	for i := range 300 {
		last = fmt.Sprintf("127.0.%d.%d:40000", i/250, i%250+1)
		wantSignIn(t, e.signInFrom(last, "AKIAUNKNOWNUNKNOWN00", "wrong", nil), http.StatusUnauthorized)
		if keys, addrs := console.LimiterSize(e.H); keys > entries || addrs > entries {
			t.Fatalf("after %d addresses the limiter holds %d key and %d address windows, want at most %d", i+1, keys, addrs, entries)
		}
	}
	// The newest counts were kept.
	for range console.DefaultMaxFailedSignIns - 1 {
		wantSignIn(t, e.signInFrom(last, "AKIAUNKNOWNUNKNOWN00", "wrong", nil), http.StatusUnauthorized)
	}
	wantSignIn(t, e.signInFrom(last, "AKIAUNKNOWNUNKNOWN00", "wrong", nil), http.StatusTooManyRequests)

	// Once the window has passed, the next attempt drops every expired
	// window.
	mu.Lock()
	now = now.Add(console.DefaultFailedSignInWindow)
	mu.Unlock()
	wantSignIn(t, e.signInFrom(last, "AKIAUNKNOWNUNKNOWN00", "wrong", nil), http.StatusUnauthorized)
	if keys, addrs := console.LimiterSize(e.H); keys != 1 || addrs != 1 {
		t.Errorf("after the window the limiter holds %d key and %d address windows, want 1 and 1", keys, addrs)
	}
}

func TestLimitNetwork(t *testing.T) {
	for _, tc := range []struct{ name, addr, want string }{
		{"ok/IPv4: the address", "127.0.0.1", "127.0.0.1/32"},
		{"ok/IPv4-mapped IPv6: the IPv4 address", "::ffff:127.0.0.1", "127.0.0.1/32"},
		{"ok/IPv6: its /64", "::1", "::/64"},
		{"ok/IPv6 with a zone: its /64", "::1%lo", "::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := console.LimitNetwork(netip.MustParseAddr(tc.addr)).String(); got != tc.want {
				t.Errorf("limitNetwork(%s) = %s, want %s", tc.addr, got, tc.want)
			}
		})
	}
}

func wantSignIn(t *testing.T, r signInAttempt, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("sign-in: status %d, want %d; page:\n%s", r.Status, status, text(r.Body))
	}
}

// gatedStore holds every View until open is closed, counting those
// waiting.
type gatedStore struct {
	fleetcert.Store
	open    chan struct{}
	waiting atomic.Int64
}

func (g *gatedStore) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	g.waiting.Add(1)
	<-g.open
	return g.Store.View(ctx, fn)
}
