package console_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

// useStoreState makes h keep its sessions, messages and results in s.
func useStoreState(h *console.Handler, s fleetcert.Store) {
	st := &console.StoreState{Store: s, MaxAge: console.DefaultMaxSessionAge}
	h.Logins, h.Flashes, h.Results = st, st, st
}

// Two consoles on one store, as two nodes of a cluster: a browser signed
// in through one is signed in on the other, and signing out on either ends
// the session on both.
func TestStoreStateSharedByProcesses(t *testing.T) {
	e := newEnv(t)
	useStoreState(e.H, e.DB)
	other := sqlite.NewDB(e.DB.Path)
	if err := other.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	h2 := console.NewHandler(fleetcert.NewRegistry(other, nil), slog.New(slog.NewTextHandler(&testwait.Buffer{}, nil)))
	useStoreState(h2, other)
	srv2 := httptest.NewServer(h2)
	t.Cleanup(func() {
		srv2.Close()
		h2.Close()
	})

	b, _ := e.signedIn("123456789012")
	// The same browser (cookies are per host, not per port) on node 2.
	e2 := *e
	e2.Srv = srv2
	b2 := *b
	b2.e = &e2
	if r := b2.get("/console/certificates"); r.Status != http.StatusOK || r.URL.Path != "/console/certificates" {
		t.Fatalf("node 2 did not know the session signed in on node 1: %d at %s", r.Status, r.URL)
	}
	// A form of node 2's page posted to node 1: the CSRF token is the
	// session's, wherever it is checked.
	r := b2.post("/console/signout", url.Values{})
	if r.URL.Path != "/console/signin" {
		t.Fatalf("sign out on node 2 ended at %s", r.URL)
	}
	if r := b.get("/console/certificates"); r.URL.Path != "/console/signin" {
		t.Fatalf("node 1 still knows a session signed out on node 2 (at %s)", r.URL)
	}
}

func TestStoreState(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	s := &console.StoreState{Store: db, MaxAge: time.Hour, Now: func() time.Time { return now }}
	l := &console.Login{Token: "tok-1", CSRF: "csrf-1", Scope: fleetcert.Scope{AccountID: "123456789012", Region: "eu-west-1"},
		KeyID: "AKIA1", Created: now, LastSeen: now}
	if err := s.CreateLogin(ctx, l); err != nil {
		t.Fatal(err)
	}
	got, err := s.Login(ctx, "tok-1", now.Add(time.Second), 10*time.Minute, time.Hour)
	if err != nil || got == nil || got.CSRF != "csrf-1" || got.Scope != l.Scope || got.Token != "tok-1" {
		t.Fatalf("Login = %+v, %v", got, err)
	}
	if got, _ := s.Login(ctx, "tok-2", now, 10*time.Minute, time.Hour); got != nil {
		t.Fatal("another token found the session")
	}
	// Idle past the timeout: gone.
	if got, _ := s.Login(ctx, "tok-1", now.Add(11*time.Minute), 10*time.Minute, time.Hour); got != nil {
		t.Fatal("an idle session was still valid")
	}
	if got, _ := s.Login(ctx, "tok-1", now.Add(time.Second), 10*time.Minute, time.Hour); got != nil {
		t.Fatal("an expired session was not removed")
	}

	// Flash: read once.
	if err := s.SetFlash(ctx, "tok-1", console.Flash{Message: "done"}); err != nil {
		t.Fatal(err)
	}
	if f, err := s.PopFlash(ctx, "tok-1"); err != nil || f == nil || f.Message != "done" {
		t.Fatalf("PopFlash = %+v, %v", f, err)
	}
	if f, _ := s.PopFlash(ctx, "tok-1"); f != nil {
		t.Fatal("a flash message was shown twice")
	}

	// Results: per session, until they expire, deletable.
	if err := s.PutResult(ctx, "tok-1", "r1", []byte("result"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Result(ctx, "tok-1", "r1", now); string(v) != "result" {
		t.Fatalf("Result = %q", v)
	}
	if v, _ := s.Result(ctx, "tok-2", "r1", now); v != nil {
		t.Fatal("another session read the result")
	}
	if v, _ := s.Result(ctx, "tok-1", "r1", now.Add(time.Minute)); v != nil {
		t.Fatal("an expired result was shown")
	}
	if err := s.DeleteResult(ctx, "tok-1", "r1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Result(ctx, "tok-1", "r1", now); v != nil {
		t.Fatal("a deleted result was shown")
	}
}

// Two consoles sharing the limiter's counts in one store (two nodes of a
// cluster): parallel wrong sign-ins through both are held to one limit.
func TestSignInLimitSharedByProcesses(t *testing.T) {
	e := newEnv(t)
	k := e.key("111111111111")
	e.H.SignInLimitStore = e.DB
	other := sqlite.NewDB(e.DB.Path)
	if err := other.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	h2 := console.NewHandler(fleetcert.NewRegistry(other, nil), slog.New(slog.NewTextHandler(&testwait.Buffer{}, nil)))
	h2.SignInLimitStore = other
	t.Cleanup(func() { h2.Close() })
	e2 := *e
	e2.H = h2

	const n = 20
	results := make([]signInAttempt, n)
	var wg sync.WaitGroup
	for i := range n {
		node := e
		if i%2 == 1 {
			node = &e2
		}
		wg.Go(func() { results[i] = node.signInFrom("192.0.2.7:4000", k.ID, "wrong", nil) })
	}
	wg.Wait()
	byStatus := map[int]int{}
	for _, r := range results {
		byStatus[r.Status]++
	}
	if byStatus[http.StatusUnauthorized] != console.DefaultMaxFailedSignIns || byStatus[http.StatusTooManyRequests] != n-console.DefaultMaxFailedSignIns {
		t.Fatalf("%d wrong sign-ins through two nodes answered %v, want %d checked (401) and the rest 429",
			n, byStatus, console.DefaultMaxFailedSignIns)
	}
	// Another address is not held by this one's count, and a right secret
	// from it signs in and gives its attempt back.
	if r := e2.signInFrom("192.0.2.8:4000", k.ID, k.Secret, nil); r.Status != http.StatusSeeOther {
		t.Fatalf("the right secret from another address: %d", r.Status)
	}
}
