package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// testCertificatesByID: the gateway's lookup by fingerprint finds every
// registration of a certificate, in every account and region, and nothing
// else.
func testCertificatesByID(t *testing.T, s fleetcert.Store) {
	a := newCertificate(scopeA, "shared", baseTime)
	b := newCertificate(scopeB, "shared", baseTime.Add(time.Millisecond))
	b.Mode = fleetcert.ModeSNIOnly // the gateway picks a registration by mode
	r := newCertificate(scopeARegion, "shared", baseTime.Add(2*time.Millisecond))
	other := newCertificate(scopeA, "other", baseTime)
	create(t, s, a, b, r, other)
	var got []*fleetcert.Certificate
	err := s.View(context.Background(), func(tx fleetcert.Tx) error {
		var err error
		got, err = tx.CertificatesByID(context.Background(), a.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d registrations, want 3", len(got))
	}
	seen := map[fleetcert.Scope]bool{}
	for _, c := range got {
		if c.ID != a.ID {
			t.Fatalf("another certificate: %s", c.ID)
		}
		seen[c.Scope] = true
		w := map[fleetcert.Scope]*fleetcert.Certificate{scopeA: a, scopeB: b, scopeARegion: r}[c.Scope]
		want := &fleetcert.Certificate{ID: w.ID, Scope: w.Scope, CACertificateID: w.CACertificateID,
			Status: w.Status, Mode: w.Mode, NotBefore: w.NotBefore, NotAfter: w.NotAfter, Seq: w.Seq}
		equalCertificate(t, c, want)
	}
	if len(seen) != 3 {
		t.Fatalf("scopes: %v", seen)
	}
	err = s.View(context.Background(), func(tx fleetcert.Tx) error {
		got, err = tx.CertificatesByID(context.Background(), certificateID("nobody"))
		return err
	})
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown id: %v %v", got, err)
	}
}

// testCertificatesAfter: the scan in Seq order finds every registration of
// every account and region once, page after page, with the fields of
// CertificatesByID.
func testCertificatesAfter(t *testing.T, s fleetcert.Store) {
	var all []*fleetcert.Certificate
	for i := 0; i < 25; i++ {
		scope := []fleetcert.Scope{scopeA, scopeB, scopeARegion}[i%3]
		c := newCertificate(scope, fmt.Sprint("scan-", i/2), baseTime.Add(time.Duration(i)*time.Millisecond))
		if i%2 == 0 {
			c.Mode = fleetcert.ModeSNIOnly
		}
		all = append(all, c)
	}
	create(t, s, all...)
	want := map[fleetcert.Scope]map[string]*fleetcert.Certificate{}
	for _, c := range all {
		if want[c.Scope] == nil {
			want[c.Scope] = map[string]*fleetcert.Certificate{}
		}
		want[c.Scope][c.ID] = c
	}
	after, found := int64(0), 0
	for page := 0; ; page++ {
		var got []*fleetcert.Certificate
		err := s.View(context.Background(), func(tx fleetcert.Tx) error {
			var err error
			got, err = tx.CertificatesAfter(context.Background(), after, 10)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			if c.Seq <= after {
				t.Fatalf("page %d: seq %d after %d", page, c.Seq, after)
			}
			after = c.Seq
			w := want[c.Scope][c.ID]
			if w == nil {
				t.Fatalf("unexpected or repeated registration %s in %v", c.ID, c.Scope)
			}
			delete(want[c.Scope], c.ID)
			found++
			equalCertificate(t, c, &fleetcert.Certificate{ID: w.ID, Scope: w.Scope, CACertificateID: w.CACertificateID,
				Status: w.Status, Mode: w.Mode, NotBefore: w.NotBefore, NotAfter: w.NotAfter, Seq: w.Seq})
		}
		if len(got) < 10 {
			break
		}
	}
	if found != len(all) {
		t.Fatalf("scan found %d registrations, want %d", found, len(all))
	}
}

// testListIDPrefix: the prefix filter finds exactly the ids that start with
// it, in list order, pages included.
func testListIDPrefix(t *testing.T, s fleetcert.Store) {
	var all []*fleetcert.Certificate
	for i := 0; i < 200; i++ {
		c := newCertificate(scopeA, "prefix-"+string(rune('a'+i%26))+strings.Repeat("x", i/26), baseTime.Add(time.Duration(i)*time.Millisecond))
		all = append(all, c)
	}
	create(t, s, all...)
	create(t, s, newCertificate(scopeB, "prefix-a", baseTime)) // another account
	for _, prefix := range []string{all[0].ID[:1], all[7].ID[:2], all[42].ID[:5], all[99].ID} {
		var want []*fleetcert.Certificate
		for _, c := range all {
			if strings.HasPrefix(c.ID, prefix) {
				want = append(want, c)
			}
		}
		for _, asc := range []bool{true, false} {
			sortCertificates(want, asc)
			got := listAll(t, s, fleetcert.CertificateQuery{Scope: scopeA, IDPrefix: prefix, Ascending: asc}, 3)
			sameOrder(t, "prefix "+prefix, got, want)
		}
	}
	if got := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, IDPrefix: "fffffffffffffffffffffffffffffffffffffffffffff", Limit: 10}); len(got) != 0 {
		t.Fatalf("unlikely prefix matched %d", len(got))
	}
}
