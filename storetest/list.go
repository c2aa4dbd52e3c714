package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// sortCertificates sorts certs in list order.
func sortCertificates(certs []*fleetcert.Certificate, ascending bool) {
	slices.SortFunc(certs, func(a, b *fleetcert.Certificate) int {
		c := cmp.Or(a.CreationDate.Compare(b.CreationDate), cmp.Compare(a.Seq, b.Seq))
		if !ascending {
			c = -c
		}
		return c
	})
}

// sameOrder fails tb unless got and want hold the same certificates in the
// same order.
func sameOrder(tb testing.TB, what string, got, want []*fleetcert.Certificate) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d certificates, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Scope != want[i].Scope {
			tb.Fatalf("%s: item %d is %s, want %s\n got %v\nwant %v", what, i, got[i].ID[:8], want[i].ID[:8], ids(got), ids(want))
		}
	}
}

func testListOrder(t *testing.T, s fleetcert.Store) {
	t0, t1, t2 := baseTime, baseTime.Add(time.Millisecond), baseTime.Add(2*time.Millisecond)
	// Created in this order, so Seq grows down the list; CreationDate does not.
	c1 := newCertificate(scopeA, "o1", t2)
	c2 := newCertificate(scopeA, "o2", t1)
	c3 := newCertificate(scopeA, "o3", t1)
	c4 := newCertificate(scopeA, "o4", t0)
	c5 := newCertificate(scopeA, "o5", t1)
	for _, c := range []*fleetcert.Certificate{c1, c2, c3, c4, c5} {
		create(t, s, c)
	}
	asc := []*fleetcert.Certificate{c4, c2, c3, c5, c1}
	desc := []*fleetcert.Certificate{c1, c5, c3, c2, c4}

	got := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, Limit: 10})
	sameOrder(t, "ascending", got, asc)
	for i := range got {
		// Listed records carry every field but the PEM.
		if got[i].PEM != "" {
			t.Fatalf("listed record %s carries its PEM", got[i].ID)
		}
		want := *asc[i]
		want.PEM = ""
		equalCertificate(t, got[i], &want)
	}
	sameOrder(t, "descending", list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Limit: 10}), desc)

	// The cursor sits between items of equal CreationDate.
	after := &fleetcert.Cursor{CreationDate: c3.CreationDate, Seq: c3.Seq}
	sameOrder(t, "ascending after o3",
		list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, After: after, Limit: 10}), asc[3:])
	sameOrder(t, "descending after o3",
		list(t, s, fleetcert.CertificateQuery{Scope: scopeA, After: after, Limit: 10}), desc[3:])
	// A cursor need not name an existing item.
	gap := &fleetcert.Cursor{CreationDate: t1, Seq: c2.Seq - 1}
	sameOrder(t, "ascending after a gap",
		list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, After: gap, Limit: 10}), asc[1:])
	last := &fleetcert.Cursor{CreationDate: c1.CreationDate, Seq: c1.Seq}
	sameOrder(t, "ascending after the last",
		list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, After: last, Limit: 10}), nil)
}

func testListLimit(t *testing.T, s fleetcert.Store) {
	if got := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Limit: 5}); len(got) != 0 {
		t.Fatalf("empty store listed %v", ids(got))
	}
	var all []*fleetcert.Certificate
	for i := range 10 {
		all = append(all, newCertificate(scopeA, fmt.Sprint("l", i), baseTime.Add(time.Duration(i)*time.Millisecond)))
	}
	create(t, s, all...)
	sameOrder(t, "limit 3", list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, Limit: 3}), all[:3])
	sameOrder(t, "limit 1", list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, Limit: 1}), all[:1])
	sameOrder(t, "limit 11", list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: true, Limit: 11}), all)
}

func testListPaging(t *testing.T, s fleetcert.Store) {
	const n = 1000
	certs := make([]*fleetcert.Certificate, n)
	for i := range n {
		// Four certificates per millisecond, so pages end inside ties.
		certs[i] = newCertificate(scopeA, fmt.Sprint("p", i), baseTime.Add(time.Duration(i/4)*time.Millisecond))
	}
	// Insert in a scrambled order, so Seq order is not CreationDate order.
	scrambled := make([]*fleetcert.Certificate, n)
	for i := range n {
		scrambled[i] = certs[(i*389)%n]
	}
	create(t, s, scrambled...)

	for _, ascending := range []bool{true, false} {
		want := slices.Clone(certs)
		sortCertificates(want, ascending)
		got := listAll(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: ascending}, 7)
		sameOrder(t, fmt.Sprintf("pages of 7, ascending=%v", ascending), got, want)
	}
}

func testListPagingConcurrentInserts(t *testing.T, s fleetcert.Store) {
	const n = 300
	ctx := context.Background()
	existing := make([]*fleetcert.Certificate, n)
	for i := range n {
		existing[i] = newCertificate(scopeA, fmt.Sprint("e", i), baseTime.Add(time.Duration(i)*time.Millisecond))
	}
	create(t, s, existing...)

	// Writers insert certificates whose CreationDate falls among the
	// existing ones, before and after the readers' cursors.
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		names counter
		errs  = make(chan error, 4)
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := newCertificate(scopeA, names.next("new"), baseTime.Add(time.Duration(rng.IntN(n))*time.Millisecond))
				if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, c) }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}

	for round := range 3 {
		for _, ascending := range []bool{true, false} {
			got := listAll(t, s, fleetcert.CertificateQuery{Scope: scopeA, Ascending: ascending}, 7)
			seen := make(map[string]bool, len(got))
			for i, c := range got {
				if seen[c.ID] {
					t.Fatalf("round %d, ascending=%v: %s listed twice", round, ascending, c.ID[:8])
				}
				seen[c.ID] = true
				if i > 0 {
					prev := got[i-1]
					c := cmp.Or(prev.CreationDate.Compare(c.CreationDate), cmp.Compare(prev.Seq, c.Seq))
					if ascending && c >= 0 || !ascending && c <= 0 {
						t.Fatalf("round %d, ascending=%v: item %d out of order", round, ascending, i)
					}
				}
			}
			for _, c := range existing {
				if !seen[c.ID] {
					t.Fatalf("round %d, ascending=%v: existing %s skipped", round, ascending, c.ID[:8])
				}
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent insert: %v", err)
	}
	if names.n.Load() == 0 {
		t.Log("no concurrent insert happened while paging")
	}
}

func testListCAFilter(t *testing.T, s fleetcert.Store) {
	caX, caY := certificateID("ca-x"), certificateID("ca-y")
	var underX []*fleetcert.Certificate
	var all []*fleetcert.Certificate
	for i := range 12 {
		c := newCertificate(scopeA, fmt.Sprint("ca", i), baseTime.Add(time.Duration(i/2)*time.Millisecond))
		switch i % 3 {
		case 0:
			c.CACertificateID = caX
			underX = append(underX, c)
		case 1:
			c.CACertificateID = caY
		}
		all = append(all, c)
	}
	// The same CA id in another account is another CA.
	other := newCertificate(scopeB, "ca-other", baseTime)
	other.CACertificateID = caX
	all = append(all, other)
	create(t, s, all...)

	for _, ascending := range []bool{true, false} {
		want := slices.Clone(underX)
		sortCertificates(want, ascending)
		q := fleetcert.CertificateQuery{Scope: scopeA, CACertificateID: caX, Ascending: ascending}
		sameOrder(t, fmt.Sprintf("CA filter, ascending=%v", ascending), listAll(t, s, q, 3), want)
	}
	q := fleetcert.CertificateQuery{Scope: scopeA, CACertificateID: certificateID("ca-none"), Limit: 10}
	if got := list(t, s, q); len(got) != 0 {
		t.Fatalf("unknown CA listed %v", ids(got))
	}
	q = fleetcert.CertificateQuery{Scope: scopeA, Limit: 100}
	if got := list(t, s, q); len(got) != 12 {
		t.Fatalf("without CA filter: %d certificates, want 12", len(got))
	}
}

func testListScopeIsolation(t *testing.T, s fleetcert.Store) {
	for i := range 5 {
		created := baseTime.Add(time.Duration(i) * time.Millisecond)
		name := fmt.Sprint("i", i)
		// The same certificates in another account and another region.
		create(t, s, newCertificate(scopeA, name, created), newCertificate(scopeB, name, created),
			newCertificate(scopeARegion, name, created))
	}
	for _, scope := range []fleetcert.Scope{scopeA, scopeB, scopeARegion} {
		got := listAll(t, s, fleetcert.CertificateQuery{Scope: scope, Ascending: true}, 2)
		if len(got) != 5 {
			t.Fatalf("scope %v: %d certificates, want 5", scope, len(got))
		}
		for _, c := range got {
			if c.Scope != scope {
				t.Fatalf("scope %v listed a certificate of %v", scope, c.Scope)
			}
		}
	}
	empty := fleetcert.Scope{AccountID: "999999999999", Region: scopeA.Region}
	if got := list(t, s, fleetcert.CertificateQuery{Scope: empty, Limit: 10}); len(got) != 0 {
		t.Fatalf("empty scope listed %v", ids(got))
	}
}
