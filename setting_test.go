package fleetcert_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

// openNodes opens n stores on one SQLite file, as n processes would.
func openNodes(tb testing.TB, n int) []fleetcert.Store {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "fleetcert.db")
	stores := make([]fleetcert.Store, n)
	for i := range stores {
		db := sqlite.NewDB(path)
		if err := db.Open(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		stores[i] = db
	}
	return stores
}

// onEachNode runs fn on every node at once, as processes starting together
// would, and returns each one's result.
func onEachNode[T any](nodes []fleetcert.Store, fn func(fleetcert.Store) (T, error)) ([]T, []error) {
	out := make([]T, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, s := range nodes {
		wg.Go(func() { out[i], errs[i] = fn(s) })
	}
	wg.Wait()
	return out, errs
}

func TestLoadOrCreateIssuer(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	t.Run("ok/created-once-in-the-store", func(t *testing.T) {
		dir := t.TempDir()
		certPath, keyPath := filepath.Join(dir, "issuer-ca.pem"), filepath.Join(dir, "issuer-ca.key")
		nodes := openNodes(t, 4)
		issuers, errs := onEachNode(nodes, func(s fleetcert.Store) (*fleetcert.Issuer, error) {
			return fleetcert.LoadOrCreateIssuer(ctx, s, certPath, keyPath, now)
		})
		for i := range nodes {
			if errs[i] != nil {
				t.Fatalf("node %d: %v", i, errs[i])
			}
			if !bytes.Equal(issuers[i].Certificate.Raw, issuers[0].Certificate.Raw) {
				t.Fatalf("node %d has another issuing CA than node 0", i)
			}
		}
		// The CA lives in the store, not in the data dir.
		if _, err := os.Stat(certPath); !os.IsNotExist(err) {
			t.Fatalf("issuer certificate file written: %v", err)
		}
		again, err := fleetcert.LoadOrCreateIssuer(ctx, nodes[0], certPath, keyPath, now)
		if err != nil || !bytes.Equal(again.Certificate.Raw, issuers[0].Certificate.Raw) {
			t.Fatalf("second load: %v, or another CA", err)
		}
		// It signs: the key is the certificate's.
		if err := issuers[1].Certificate.CheckSignatureFrom(issuers[0].Certificate); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/files-of-an-older-data-dir-seed-the-store", func(t *testing.T) {
		dir := t.TempDir()
		certPath, keyPath := filepath.Join(dir, "issuer-ca.pem"), filepath.Join(dir, "issuer-ca.key")
		old, err := fleetcert.NewIssuer(now)
		if err != nil {
			t.Fatal(err)
		}
		b, err := old.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		cut := bytes.Index(b, []byte("-----BEGIN PRIVATE KEY"))
		if err := os.WriteFile(certPath, b[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, b[cut:], 0o600); err != nil {
			t.Fatal(err)
		}
		s := openNodes(t, 1)[0]
		iss, err := fleetcert.LoadOrCreateIssuer(ctx, s, certPath, keyPath, now)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(iss.Certificate.Raw, old.Certificate.Raw) {
			t.Fatal("the store's issuing CA is not the data dir's")
		}
	})
	t.Run("fail/key-without-certificate", func(t *testing.T) {
		dir := t.TempDir()
		certPath, keyPath := filepath.Join(dir, "issuer-ca.pem"), filepath.Join(dir, "issuer-ca.key")
		if err := os.WriteFile(keyPath, []byte("key"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := openNodes(t, 1)[0]
		if _, err := fleetcert.LoadOrCreateIssuer(ctx, s, certPath, keyPath, now); err == nil {
			t.Fatal("an orphaned issuer key was ignored")
		}
		err := s.View(ctx, func(tx fleetcert.Tx) error {
			_, err := tx.Setting(ctx, fleetcert.IssuerSetting)
			return err
		})
		if fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("a refused start stored an issuing CA: %v", err)
		}
	})
}

func TestCreateBootstrapAccessKey(t *testing.T) {
	ctx := context.Background()
	t.Run("ok/one-of-nodes-starting-together", func(t *testing.T) {
		nodes := openNodes(t, 6)
		keys, errs := onEachNode(nodes, func(s fleetcert.Store) (*fleetcert.AccessKey, error) {
			return fleetcert.NewRegistry(s, nil).CreateBootstrapAccessKey(ctx, "123456789012")
		})
		made := 0
		for i := range nodes {
			if errs[i] != nil {
				t.Fatalf("node %d: %v", i, errs[i])
			}
			if keys[i] != nil {
				made++
			}
		}
		if made != 1 {
			t.Fatalf("%d nodes made a bootstrap key, want 1", made)
		}
		var n int
		nodes[0].View(ctx, func(tx fleetcert.Tx) error {
			var err error
			n, err = tx.CountAccessKeys(ctx)
			return err
		})
		if n != 1 {
			t.Fatalf("%d access keys stored, want 1", n)
		}
	})
	t.Run("ok/none-when-a-key-exists", func(t *testing.T) {
		s := openNodes(t, 1)[0]
		reg := fleetcert.NewRegistry(s, nil)
		if _, err := reg.CreateAccessKey(ctx, "123456789012"); err != nil {
			t.Fatal(err)
		}
		k, err := reg.CreateBootstrapAccessKey(ctx, "123456789012")
		if err != nil || k != nil {
			t.Fatalf("CreateBootstrapAccessKey on a store with a key = %v, %v; want nil, nil", k, err)
		}
	})
	t.Run("fail/bad-account", func(t *testing.T) {
		s := openNodes(t, 1)[0]
		_, err := fleetcert.NewRegistry(s, nil).CreateBootstrapAccessKey(ctx, "12")
		if fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
			t.Fatalf("got %v, want InvalidRequestException", err)
		}
	})
}
