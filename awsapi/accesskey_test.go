package awsapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

// listStatus is the HTTP status of a ListCertificates signed with key.
func (e *testEnv) listStatus(key *fleetcert.AccessKey) int {
	e.tb.Helper()
	resp := e.Do(e.Request(key, "us-east-1", http.MethodGet, "/certificates", nil, time.Now()))
	resp.Body.Close()
	return resp.StatusCode
}

// TestDeletedKeyRefusedAtOnce: a key deleted in this process is refused by
// the next request, though the cache had it.
func TestDeletedKeyRefusedAtOnce(t *testing.T) {
	e := newEnv(t)
	e.Handler.KeyCacheTTL = time.Hour
	e.Registry.OnAccessKeyDeleted(e.Handler.ForgetAccessKey)
	if st := e.listStatus(e.KeyA); st != http.StatusOK {
		t.Fatalf("before delete: %d", st)
	}
	if err := e.Registry.DeleteAccessKey(context.Background(), e.KeyA.ID); err != nil {
		t.Fatal(err)
	}
	resp := e.Do(e.Request(e.KeyA, "us-east-1", http.MethodGet, "/certificates", nil, time.Now()))
	if w := readError(t, resp); resp.StatusCode != http.StatusForbidden || w.Code != "UnrecognizedClientException" {
		t.Fatalf("after delete: %d %+v, want 403 UnrecognizedClientException", resp.StatusCode, w)
	}
	if st := e.listStatus(e.KeyB); st != http.StatusOK {
		t.Fatalf("another key after delete: %d", st)
	}
}

// TestDeletedKeyRefusedByOtherProcess: a key deleted through another
// Registry on the same store (another process: `fleetcert keys delete`, or
// a cluster node) is refused once the watcher reads the change, well
// within the cache's lifetime.
func TestDeletedKeyRefusedByOtherProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	db := mustOpenDB(t)
	e := newEnvOnStore(t, db)
	e.Handler.KeyCacheTTL = time.Hour
	e.Registry.OnAccessKeyDeleted(e.Handler.ForgetAccessKey)
	wait, err := e.Registry.WatchAccessKeys(ctx, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); wait() })
	if st := e.listStatus(e.KeyA); st != http.StatusOK {
		t.Fatalf("before delete: %d", st)
	}
	other := fleetcert.NewRegistry(reopen(t, db), nil)
	if err := other.DeleteAccessKey(ctx, e.KeyA.ID); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the deleted key is refused", func() bool { return e.listStatus(e.KeyA) == http.StatusForbidden })
}

// reopen opens a second handle on db's file, as another process would.
func reopen(tb testing.TB, db *sqlite.DB) *sqlite.DB {
	tb.Helper()
	other := sqlite.NewDB(db.Path)
	if err := other.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { other.Close() })
	return other
}
