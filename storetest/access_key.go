package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// newAccessKey returns an access key of account with id.
func newAccessKey(id, account string) *fleetcert.AccessKey {
	return &fleetcert.AccessKey{
		ID:        id,
		Secret:    "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + id[len(id)-10:],
		AccountID: account,
		CreatedAt: baseTime.Add(7 * time.Millisecond),
	}
}

// countAccessKeys returns CountAccessKeys.
func countAccessKeys(tb testing.TB, s fleetcert.Store) int {
	tb.Helper()
	ctx := context.Background()
	var n int
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		n, err = tx.CountAccessKeys(ctx)
		return err
	})
	if err != nil {
		tb.Fatalf("count access keys: %v", err)
	}
	return n
}

// getAccessKey returns AccessKey.
func getAccessKey(tb testing.TB, s fleetcert.Store, id string) (*fleetcert.AccessKey, error) {
	tb.Helper()
	ctx := context.Background()
	var k *fleetcert.AccessKey
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		k, err = tx.AccessKey(ctx, id)
		return err
	})
	return k, err
}

// createAccessKey stores k.
func createAccessKey(s fleetcert.Store, k *fleetcert.AccessKey) error {
	ctx := context.Background()
	return s.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateAccessKey(ctx, k) })
}

func testAccessKey(t *testing.T, s fleetcert.Store) {
	if n := countAccessKeys(t, s); n != 0 {
		t.Fatalf("empty store counts %d access keys", n)
	}
	k1 := newAccessKey("AKIAAAAAAAAAAAAAAAA1", scopeA.AccountID)
	k2 := newAccessKey("AKIAAAAAAAAAAAAAAAA2", scopeB.AccountID)
	for _, k := range []*fleetcert.AccessKey{k1, k2} {
		if err := createAccessKey(s, k); err != nil {
			t.Fatalf("create access key %s: %v", k.ID, err)
		}
	}
	for _, k := range []*fleetcert.AccessKey{k1, k2} {
		got, err := getAccessKey(t, s, k.ID)
		if err != nil {
			t.Fatalf("get access key %s: %v", k.ID, err)
		}
		if !reflect.DeepEqual(got, k) {
			t.Fatalf("access key %+v, want %+v", *got, *k)
		}
	}
	if n := countAccessKeys(t, s); n != 2 {
		t.Fatalf("%d access keys, want 2", n)
	}
}

func testAccessKeyDuplicate(t *testing.T, s fleetcert.Store) {
	k := newAccessKey("AKIAAAAAAAAAAAAAAAA1", scopeA.AccountID)
	if err := createAccessKey(s, k); err != nil {
		t.Fatal(err)
	}
	dup := newAccessKey(k.ID, scopeB.AccountID)
	dup.Secret = "another secret"
	wantCode(t, createAccessKey(s, dup), fleetcert.EResourceAlreadyExists, "create duplicate access key")
	got, err := getAccessKey(t, s, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, k) {
		t.Fatalf("access key %+v after duplicate, want %+v", *got, *k)
	}
	if n := countAccessKeys(t, s); n != 1 {
		t.Fatalf("%d access keys, want 1", n)
	}
}

func testAccessKeyNotFound(t *testing.T, s fleetcert.Store) {
	if err := createAccessKey(s, newAccessKey("AKIAAAAAAAAAAAAAAAA1", scopeA.AccountID)); err != nil {
		t.Fatal(err)
	}
	_, err := getAccessKey(t, s, "AKIAAAAAAAAAAAAAAAA2")
	wantCode(t, err, fleetcert.EResourceNotFound, "get missing access key")
	// Ids are exact: no case folding.
	_, err = getAccessKey(t, s, "akiaaaaaaaaaaaaaaaa1")
	wantCode(t, err, fleetcert.EResourceNotFound, "get access key in other case")
}
