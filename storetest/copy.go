package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// testCopyStore copies a store holding one record of every kind into an
// empty one with fleetcert.CopyStore (fleetcert migrate), when the store
// can list its records, and checks that the copy holds the same records
// in the same list order.
func testCopyStore(t *testing.T, newStore func(tb testing.TB) fleetcert.Store) {
	src, dst := newStore(t), newStore(t)
	exp, ok := src.(fleetcert.Exporter)
	if !ok {
		t.Skipf("%T does not implement fleetcert.Exporter", src)
	}
	ctx := context.Background()
	var certs []*fleetcert.Certificate
	for i, name := range []string{"b", "a", "c"} { // ids out of creation order
		c := newCertificate(scopeA, name, baseTime.Add(time.Duration(i)*time.Millisecond))
		certs = append(certs, c)
	}
	certs[1].Transfer = &fleetcert.TransferData{TargetAccountID: scopeB.AccountID, TransferMessage: "m ✓", TransferDate: baseTime}
	certs[1].Status = fleetcert.StatusPendingTransfer
	other := newCertificate(scopeB, "a", baseTime)
	create(t, src, append(certs, other)...)
	createCAs(t, src, newCA(scopeA, "ca", baseTime), newCA(scopeARegion, "ca", baseTime))
	tr := newTransfer("t", baseTime.Add(5*time.Millisecond))
	putTransfers(t, src, tr)
	if err := src.Update(ctx, func(tx fleetcert.Tx) error {
		return tx.PutRegistrationCode(ctx, scopeA, "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988")
	}); err != nil {
		t.Fatal(err)
	}
	if err := createAccessKey(src, newAccessKey("AKIAEXAMPLE000000001", scopeA.AccountID)); err != nil {
		t.Fatal(err)
	}
	if err := createSetting(src, "issuer-ca", []byte("pem\x00bytes")); err != nil {
		t.Fatal(err)
	}
	// Objects keep their version (one updated twice), links their body.
	thing := newObject(scopeA, fleetcert.ObjectThing, "sensor-7", "type-1")
	policy := newObject(scopeARegion, fleetcert.ObjectPolicy, "p/1", "")
	policy.Body = nil
	createObjects(t, src, thing, policy)
	for range 2 {
		thing.LastModifiedDate = thing.LastModifiedDate.Add(time.Millisecond)
		if err := updateObject(src, thing); err != nil {
			t.Fatal(err)
		}
	}
	arn := fleetcert.CertificateARN(scopeA, certs[0].ID)
	principal := newLink(scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn)
	target := newLink(scopeARegion, fleetcert.LinkPolicyTarget, "p/1", arn)
	target.Body = nil
	createLinks(t, src, principal, target)

	stats, err := fleetcert.CopyStore(ctx, exp, dst, fleetcert.CopyOptions{Batch: 2})
	if err != nil {
		t.Fatalf("CopyStore: %v", err)
	}
	want := map[string]int{"certificates": 4, "caCertificates": 2, "transfers": 1, "registrationCodes": 1, "accessKeys": 1, "settings": 1,
		"objects": 2, "links": 2}
	if !reflect.DeepEqual(stats.Counts, want) || len(stats.Checksum) != 64 {
		t.Fatalf("stats %+v, want counts %v and a SHA-256", stats, want)
	}
	// The copy lists in the source's order, every field equal.
	for _, asc := range []bool{true, false} {
		q := fleetcert.CertificateQuery{Scope: scopeA, Ascending: asc, Limit: 10}
		got, wantList := list(t, dst, q), list(t, src, q)
		if len(got) != len(wantList) {
			t.Fatalf("copy lists %d certificates, source %d", len(got), len(wantList))
		}
		for i := range got {
			g, w := *got[i], *wantList[i]
			g.Seq, w.Seq = 0, 0
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("listing %d (ascending %v):\n got %+v\nwant %+v", i, asc, g, w)
			}
		}
	}
	wantLatest(t, dst, "copied", tr.CertificateID, scopeA.AccountID, tr)
	wantRegistrationCode(t, dst, scopeA, "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988")
	if v, err := getSetting(dst, "issuer-ca"); err != nil || string(v) != "pem\x00bytes" {
		t.Fatalf("copied setting = %q, %v", v, err)
	}
	if got := countAccessKeys(t, dst); got != 1 {
		t.Fatalf("copy holds %d access keys, want 1", got)
	}
	wantObject(t, dst, thing) // Version 3
	wantObject(t, dst, policy)
	wantLink(t, dst, principal)
	wantLink(t, dst, target)

	// A second copy into the now non-empty target is refused, changing
	// nothing; merging skips what the target holds.
	if _, err := fleetcert.CopyStore(ctx, exp, dst, fleetcert.CopyOptions{}); err == nil {
		t.Fatal("CopyStore into a non-empty store succeeded")
	}
	stats, err = fleetcert.CopyStore(ctx, exp, dst, fleetcert.CopyOptions{Merge: true})
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if stats.Skipped != 13 { // all but the transfer, which is stored by upsert
		t.Fatalf("merge skipped %d records, want 13", stats.Skipped)
	}
	if n := len(list(t, dst, fleetcert.CertificateQuery{Scope: scopeA, Limit: 10})); n != 3 {
		t.Fatalf("after the merge the copy lists %d certificates, want 3", n)
	}
}
