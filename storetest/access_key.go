package storetest

import (
	"context"
	"errors"
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

// listAccessKeys returns ListAccessKeys(q).
func listAccessKeys(tb testing.TB, s fleetcert.Store, q fleetcert.AccessKeyQuery) []*fleetcert.AccessKey {
	tb.Helper()
	ctx := context.Background()
	var keys []*fleetcert.AccessKey
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		keys, err = tx.ListAccessKeys(ctx, q)
		return err
	})
	if err != nil {
		tb.Fatalf("list access keys %+v: %v", q, err)
	}
	return keys
}

func keyIDs(keys []*fleetcert.AccessKey) []string {
	ids := []string{}
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

func testAccessKeyDelete(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	k1 := newAccessKey("AKIAAAAAAAAAAAAAAAA1", scopeA.AccountID)
	k2 := newAccessKey("AKIAAAAAAAAAAAAAAAA2", scopeA.AccountID)
	for _, k := range []*fleetcert.AccessKey{k1, k2} {
		if err := createAccessKey(s, k); err != nil {
			t.Fatal(err)
		}
	}
	// A rolled-back deletion deletes nothing.
	rollback := errors.New("roll back")
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.DeleteAccessKey(ctx, k1.ID); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("rolled-back delete: %v", err)
	}
	if _, err := getAccessKey(t, s, k1.ID); err != nil {
		t.Fatalf("key after rolled-back delete: %v", err)
	}
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteAccessKey(ctx, k1.ID) }); err != nil {
		t.Fatalf("delete access key: %v", err)
	}
	_, err = getAccessKey(t, s, k1.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get deleted access key")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteAccessKey(ctx, k1.ID) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete deleted access key")
	if got, err := getAccessKey(t, s, k2.ID); err != nil || !reflect.DeepEqual(got, k2) {
		t.Fatalf("other key after delete: %+v, %v", got, err)
	}
	if n := countAccessKeys(t, s); n != 1 {
		t.Fatalf("%d access keys after delete, want 1", n)
	}
	err = s.View(ctx, func(tx fleetcert.Tx) error { return tx.DeleteAccessKey(ctx, k2.ID) })
	if err == nil {
		t.Fatal("delete access key in a View succeeded")
	}
}

func testAccessKeyList(t *testing.T, s fleetcert.Store) {
	ids := []string{"AKIAAAAAAAAAAAAAAAB3", "AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAB1", "AKIAAAAAAAAAAAAAAAA2"}
	accounts := []string{scopeB.AccountID, scopeA.AccountID, scopeA.AccountID, scopeB.AccountID}
	for i, id := range ids {
		if err := createAccessKey(s, newAccessKey(id, accounts[i])); err != nil {
			t.Fatal(err)
		}
	}
	if got := listAccessKeys(t, s, fleetcert.AccessKeyQuery{}); len(got) != 0 {
		t.Fatalf("limit 0 listed %v", keyIDs(got))
	}
	all := listAccessKeys(t, s, fleetcert.AccessKeyQuery{Limit: 10})
	want := []string{"AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2", "AKIAAAAAAAAAAAAAAAB1", "AKIAAAAAAAAAAAAAAAB3"}
	if !reflect.DeepEqual(keyIDs(all), want) {
		t.Fatalf("all keys %v, want %v", keyIDs(all), want)
	}
	for _, k := range all {
		if k.Secret != "" {
			t.Fatalf("listed key %s carries its secret", k.ID)
		}
		if want := newAccessKey(k.ID, k.AccountID); !k.CreatedAt.Equal(want.CreatedAt) || k.CreatedAt.Location() != time.UTC {
			t.Fatalf("listed key %s created %v, want %v in UTC", k.ID, k.CreatedAt, want.CreatedAt)
		}
	}
	// Paging: strictly after the last id of the previous page.
	var paged []string
	after := ""
	for {
		page := listAccessKeys(t, s, fleetcert.AccessKeyQuery{After: after, Limit: 3})
		paged = append(paged, keyIDs(page)...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	if !reflect.DeepEqual(paged, want) {
		t.Fatalf("paged keys %v, want %v", paged, want)
	}
	gotB := keyIDs(listAccessKeys(t, s, fleetcert.AccessKeyQuery{AccountID: scopeB.AccountID, Limit: 10}))
	if wantB := []string{"AKIAAAAAAAAAAAAAAAA2", "AKIAAAAAAAAAAAAAAAB3"}; !reflect.DeepEqual(gotB, wantB) {
		t.Fatalf("account B keys %v, want %v", gotB, wantB)
	}
	gotA := keyIDs(listAccessKeys(t, s, fleetcert.AccessKeyQuery{AccountID: scopeA.AccountID, After: "AKIAAAAAAAAAAAAAAAA1", Limit: 10}))
	if wantA := []string{"AKIAAAAAAAAAAAAAAAB1"}; !reflect.DeepEqual(gotA, wantA) {
		t.Fatalf("account A keys after A1 %v, want %v", gotA, wantA)
	}
	if got := listAccessKeys(t, s, fleetcert.AccessKeyQuery{AccountID: "999999999999", Limit: 10}); len(got) != 0 {
		t.Fatalf("unknown account lists %v", keyIDs(got))
	}
}
