package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/postgres"
	"github.com/jackc/pgx/v5/pgconn"
)

// fastFail bounds how long a call may take to fail while the server is
// down: the connect timeout, and slack for a loaded machine under -race.
const fastFail = 3 * postgres.ConnectTimeout

// TestDB_DatabaseLoss stops the server under an open store: every call
// fails at once with ServiceUnavailableException wrapping the cause, and
// the store recovers by itself when the server is back.
func TestDB_DatabaseLoss(t *testing.T) {
	ctx := context.Background()
	srv := testpg.Start(t) // a server of its own: this test stops it
	url := srv.NewDatabase(t)
	db := mustOpenDBAt(t, url)
	reg := fleetcert.NewRegistry(db, nil)
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	notify, err := db.NotifyChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, notify, "the value sent once the listener listens")

	calls := []struct {
		name string
		fn   func() error
	}{
		{"View", func() error { _, err := reg.DescribeCertificate(ctx, scope, c.ID); return err }},
		{"Update", func() error { return reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusInactive) }},
		{"Update create", func() error { _, err := reg.CreateAccessKey(ctx, scope.AccountID); return err }},
		{"Changes", func() error { _, err := db.Changes(ctx, 0, 10); return err }},
		{"ChangesHead", func() error { _, err := db.ChangesHead(ctx); return err }},
		{"PruneChanges", func() error { _, err := db.PruneChanges(ctx, baseTime); return err }},
		{"Open", func() error {
			db, err := postgres.Open(ctx, url)
			if err == nil {
				db.Close()
			}
			return err
		}},
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // dead pooled connections first, then refused new ones
		for _, call := range calls {
			start := time.Now()
			err := call.fn()
			took := time.Since(start)
			var fe *fleetcert.Error
			if !errors.As(err, &fe) || fe.Code != fleetcert.EServiceUnavailable {
				t.Fatalf("round %d: %s with the server down: %v, want ServiceUnavailableException", round, call.name, err)
			}
			if !wrapsCause(err) {
				t.Fatalf("%s: %v does not wrap the driver's error", call.name, err)
			}
			if took > fastFail {
				t.Fatalf("round %d: %s took %v to fail, want under %v", round, call.name, took, fastFail)
			}
			t.Logf("round %d: %s failed in %v: %v", round, call.name, took.Round(time.Millisecond), err)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the store to recover", func() bool {
		_, err := reg.DescribeCertificate(ctx, scope, c.ID)
		return err == nil
	})
	receive(t, notify, "the listener's value after reconnecting")
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatalf("update after recovery: %v", err)
	}
	receive(t, notify, "a notification after recovery")
	if h, err := db.ChangesHead(ctx); err != nil || h != 2 {
		t.Fatalf("head %d (%v) after recovery, want 2", h, err)
	}
}

// wrapsCause reports whether err wraps the driver's error for a lost
// server: the server's notice of its shutdown, a failed connection attempt,
// or a broken connection.
func wrapsCause(err error) bool {
	var (
		pe *pgconn.PgError
		ce *pgconn.ConnectError
		ne net.Error
	)
	return errors.As(err, &pe) || errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// TestDB_SilentServer: a server that accepts connections and never answers
// (a host cut off behind a proxy) fails the call after the connect timeout
// rather than hanging.
func TestDB_SilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	start := time.Now()
	db, err := postgres.Open(context.Background(), "postgres://fleetcert@"+l.Addr().String()+"/fleetcert?sslmode=disable")
	took := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded against a server that never answers")
	}
	if fleetcert.ErrorCode(err) != fleetcert.EServiceUnavailable {
		t.Fatalf("Open: %v, want ServiceUnavailableException", err)
	}
	if took < postgres.ConnectTimeout/2 || took > fastFail {
		t.Fatalf("Open failed after %v, want about the connect timeout %v", took, postgres.ConnectTimeout)
	}
}
