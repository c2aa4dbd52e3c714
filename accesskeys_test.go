package fleetcert_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

// forgotten records the ids OnAccessKeyDeleted reports.
type forgotten struct {
	mu  sync.Mutex
	ids []string
}

func (f *forgotten) add(id string) { f.mu.Lock(); f.ids = append(f.ids, id); f.mu.Unlock() }

func (f *forgotten) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.ids, id)
}

func TestDeleteAccessKey(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	var f forgotten
	reg.OnAccessKeyDeleted(f.add)
	k, err := reg.CreateAccessKey(ctx, "111111111111")
	if err != nil {
		t.Fatal(err)
	}
	other, err := reg.CreateAccessKey(ctx, "111111111111")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteAccessKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	// Synchronous in this process: told before DeleteAccessKey returned.
	if !f.has(k.ID) {
		t.Fatalf("listeners told %v, want %s", f.ids, k.ID)
	}
	if _, err := reg.AccessKey(ctx, k.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("deleted key: %v, want ResourceNotFoundException", err)
	}
	if _, err := reg.AccessKey(ctx, other.ID); err != nil {
		t.Fatalf("other key: %v", err)
	}
	ch := changes(t, reg)
	last := ch[len(ch)-1]
	if last.Kind != fleetcert.ChangeAccessKeyDeleted || last.Resource != k.ID || last.Scope.AccountID != "111111111111" {
		t.Fatalf("last change %+v, want accesskey.deleted of %s", last, k.ID)
	}
	if err := reg.DeleteAccessKey(ctx, k.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("second delete: %v, want ResourceNotFoundException", err)
	}
	// A deleted bootstrap key given in the environment is not stored again.
	err = reg.EnsureAccessKey(ctx, k)
	if fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("EnsureAccessKey of a deleted key: %v, want InvalidRequestException", err)
	}
	if _, err := reg.AccessKey(ctx, k.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("deleted key after EnsureAccessKey: %v", err)
	}
}

func TestRotateAccessKey(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		keepOld bool
	}{{"ok/delete-old", false}, {"ok/keep-old", true}} {
		t.Run(tc.name, func(t *testing.T) {
			reg, _ := mustOpenRegistry(t)
			var f forgotten
			reg.OnAccessKeyDeleted(f.add)
			old, err := reg.CreateAccessKey(ctx, "222222222222")
			if err != nil {
				t.Fatal(err)
			}
			k, err := reg.RotateAccessKey(ctx, old.ID, tc.keepOld)
			if err != nil {
				t.Fatal(err)
			}
			if k.AccountID != old.AccountID || k.ID == old.ID || k.Secret == "" {
				t.Fatalf("rotated key %s of %s, from %s of %s", k.ID, k.AccountID, old.ID, old.AccountID)
			}
			if got, err := reg.AccessKey(ctx, k.ID); err != nil || got.Secret != k.Secret {
				t.Fatalf("new key: %v", err)
			}
			_, err = reg.AccessKey(ctx, old.ID)
			if tc.keepOld {
				if err != nil || f.has(old.ID) {
					t.Fatalf("old key kept: %v, forgotten %v", err, f.ids)
				}
			} else if fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound || !f.has(old.ID) {
				t.Fatalf("old key: %v, forgotten %v", err, f.ids)
			}
		})
	}
	t.Run("fail/not-found", func(t *testing.T) {
		reg, _ := mustOpenRegistry(t)
		_, err := reg.RotateAccessKey(ctx, "AKIAAAAAAAAAAAAAAAAA", false)
		if fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("rotate unknown key: %v", err)
		}
		if keys, _, _ := reg.ListAccessKeys(ctx, "", "", 10); len(keys) != 0 {
			t.Fatalf("a failed rotation left %d keys", len(keys))
		}
	})
}

func TestListAccessKeys(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	var ids []string
	for i := 0; i < 5; i++ {
		account := "333333333333"
		if i == 4 {
			account = "444444444444"
		}
		k, err := reg.CreateAccessKey(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		if account == "333333333333" {
			ids = append(ids, k.ID)
		}
	}
	slices.Sort(ids)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		keys, next, err := reg.ListAccessKeys(ctx, "333333333333", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.Secret != "" {
				t.Fatalf("listed key %s carries its secret", k.ID)
			}
			got = append(got, k.ID)
		}
		if next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("listing does not end")
		}
		after = next
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	if _, _, err := reg.ListAccessKeys(ctx, "12", "", 10); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("malformed account: %v", err)
	}
}

// TestWatchAccessKeysOtherProcess: a key deleted through one Registry is
// forgotten by another on the same SQLite file (another process, in
// effect) once its watcher reads the feed.
func TestWatchAccessKeysOtherProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	open := func() *fleetcert.Registry {
		db := sqlite.NewDB(path)
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return fleetcert.NewRegistry(db, nil)
	}
	a, b := open(), open()
	k, err := a.CreateAccessKey(ctx, "555555555555")
	if err != nil {
		t.Fatal(err)
	}
	var f forgotten
	b.OnAccessKeyDeleted(f.add)
	wait, err := b.WatchAccessKeys(ctx, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	defer cancel()
	if err := a.DeleteAccessKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the other Registry forgets the deleted key", func() bool { return f.has(k.ID) })
}

// countingStore counts the change-feed reads made through it.
type countingStore struct {
	fleetcert.Store
	reads atomic.Int64
}

func (s *countingStore) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	s.reads.Add(1)
	return s.Store.Changes(ctx, after, limit)
}

// A stream of commits does not make the access-key watcher read the feed
// once per commit: at most once per keyReadGap (50 ms), so that under
// load it costs the writes nothing (it took a tenth of the server's CPU at
// 600 registrations/s).
func TestWatchAccessKeysCoalescesCommits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, _ := mustOpenRegistry(t)
	cs := &countingStore{Store: reg.Store}
	reg.Store = cs
	wait, err := reg.WatchAccessKeys(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	defer cancel()
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	reads0 := cs.reads.Load()
	start := time.Now()
	const commits = 200
	for i := range commits {
		status := fleetcert.StatusInactive
		if i%2 == 1 {
			status = fleetcert.StatusActive
		}
		if err := reg.UpdateCertificate(ctx, scope, c.ID, status); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// One read per 50 ms of the loop, one in progress when it began, one
	// for the last wake; the old watcher read after every commit.
	if reads, most := cs.reads.Load()-reads0, int64(elapsed/(50*time.Millisecond))+3; reads > most {
		t.Errorf("%d commits in %s made the watcher read the feed %d times, want at most %d", commits, elapsed.Round(time.Millisecond), reads, most)
	}
}
