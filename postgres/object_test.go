package postgres_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
)

// TestDB_ObjectsByteOrder: names list byte-wise in a database whose
// collation is a language's, not "C" (the shared test server's is "C", so
// the contract suite alone would not notice a column without COLLATE "C").
func TestDB_ObjectsByteOrder(t *testing.T) {
	ctx := context.Background()
	server := testpg.Shared(t)
	admin := raw(t, server.URL("postgres"))
	name := fmt.Sprintf("fleetcert_test_icu_%d", os.Getpid())
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+
		` TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`); err != nil {
		t.Fatalf("create a database collating as en-US (ICU): %v", err)
	}
	t.Cleanup(func() { admin.Exec(context.WithoutCancel(ctx), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	db := mustOpenDBAt(t, server.URL(name))

	scope := fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}
	names := []string{"a", "A", "a-b", "a_b", "ab", "a.b", "B", "b", "é", "e", "z"}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	err := db.Update(ctx, func(tx fleetcert.Tx) error {
		for _, n := range names {
			o := &fleetcert.Object{Scope: scope, Kind: fleetcert.ObjectThing, Name: n, Label: "l", CreationDate: now}
			if err := tx.CreateObject(ctx, o); err != nil {
				return err
			}
			l := &fleetcert.Link{Scope: scope, Kind: fleetcert.LinkThingGroup, From: "t", To: n, CreationDate: now}
			if err := tx.CreateLink(ctx, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{}, names...)
	sort.Strings(want)
	for _, label := range []string{"", "l"} {
		var got []string
		err := db.View(ctx, func(tx fleetcert.Tx) error {
			objects, err := tx.ListObjects(ctx, fleetcert.ObjectQuery{Scope: scope, Kind: fleetcert.ObjectThing, Label: label, Limit: 100})
			for _, o := range objects {
				got = append(got, o.Name)
			}
			return err
		})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ListObjects (label %q) = %q, %v; want byte order %q", label, got, err, want)
		}
	}
	var got []string
	err = db.View(ctx, func(tx fleetcert.Tx) error {
		links, err := tx.ListLinks(ctx, fleetcert.LinkQuery{Scope: scope, Kind: fleetcert.LinkThingGroup, From: "t", Limit: 100})
		for _, l := range links {
			got = append(got, l.To)
		}
		return err
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ListLinks = %q, %v; want byte order %q", got, err, want)
	}
}
