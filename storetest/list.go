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
	// Bounded: a reader finishes only once it has passed every row, and
	// writers unbounded in count could insert ahead of its cursor as fast
	// as it pages: on PostgreSQL this test took 190–260 s in four runs
	// one evening, and the package's tests 152 s in an earlier one.
	const insertsPerWriter = 150
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range insertsPerWriter {
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

// testListPagingLongTies pages through certificates most of which share
// one creation date (a bulk import dates a batch with one clock reading),
// with pages shorter than the ties, so that pages start and end inside
// them: without filters, by CA, by status and by CA and owner, in both
// orders.
func testListPagingLongTies(t *testing.T, s fleetcert.Store) {
	caX := certificateID("ca-x")
	var certs []*fleetcert.Certificate
	for i := range 60 {
		// 5 before, 50 in one millisecond, 5 after; inserted interleaved so
		// that Seq order is not list order outside the ties.
		created := baseTime.Add(time.Millisecond)
		switch {
		case i%12 == 0:
			created = baseTime.Add(time.Duration(i) * time.Microsecond)
		case i%12 == 1:
			created = baseTime.Add(2*time.Millisecond + time.Duration(i)*time.Millisecond)
		}
		c := newCertificate(scopeA, fmt.Sprint("lt", i), created)
		if i%4 != 3 {
			c.CACertificateID = caX
		}
		if i%5 == 4 {
			c.Status = fleetcert.StatusInactive
		}
		certs = append(certs, c)
	}
	create(t, s, certs...)
	for _, tc := range []struct {
		name    string
		q       fleetcert.CertificateQuery
		matches func(c *fleetcert.Certificate) bool
	}{
		{"all", fleetcert.CertificateQuery{}, func(*fleetcert.Certificate) bool { return true }},
		{"CA", fleetcert.CertificateQuery{CACertificateID: caX},
			func(c *fleetcert.Certificate) bool { return c.CACertificateID == caX }},
		{"status", fleetcert.CertificateQuery{Status: fleetcert.StatusActive},
			func(c *fleetcert.Certificate) bool { return c.Status == fleetcert.StatusActive }},
		{"CA and owner", fleetcert.CertificateQuery{CACertificateID: caX, OwnedBy: scopeA.AccountID},
			func(c *fleetcert.Certificate) bool { return c.CACertificateID == caX }},
	} {
		var want []*fleetcert.Certificate
		for _, c := range certs {
			if tc.matches(c) {
				want = append(want, c)
			}
		}
		for _, ascending := range []bool{true, false} {
			sortCertificates(want, ascending)
			q := tc.q
			q.Scope, q.Ascending = scopeA, ascending
			for _, size := range []int{1, 7, 30} {
				got := listAll(t, s, q, size)
				sameOrder(t, fmt.Sprintf("%s, ascending=%v, pages of %d", tc.name, ascending, size), got, want)
			}
		}
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

// filterSet creates n certificates of scopeA, two per millisecond, in a
// scrambled order, with statuses, owners and CAs spread so that every
// combination of filters matches several, and returns them.
func filterSet(t *testing.T, s fleetcert.Store, n int) []*fleetcert.Certificate {
	statuses := []fleetcert.Status{fleetcert.StatusActive, fleetcert.StatusPendingTransfer, fleetcert.StatusInactive}
	owners := []string{scopeA.AccountID, scopeB.AccountID}
	cas := []string{"", certificateID("ca-x")}
	certs := make([]*fleetcert.Certificate, n)
	for i := range n {
		c := newCertificate(scopeA, fmt.Sprint("f", i), baseTime.Add(time.Duration(i/2)*time.Millisecond))
		c.Status = statuses[i%3]
		c.OwnedBy = owners[i%4/2]
		c.CACertificateID = cas[i%5%2]
		certs[i] = c
	}
	scrambled := slices.Clone(certs)
	rand.New(rand.NewPCG(3, 3)).Shuffle(n, func(i, j int) { scrambled[i], scrambled[j] = scrambled[j], scrambled[i] })
	create(t, s, scrambled...)
	// The same certificates in another account, and another region, match
	// the filters too but are out of scope.
	for _, scope := range []fleetcert.Scope{scopeB, scopeARegion} {
		var others []*fleetcert.Certificate
		for _, c := range certs[:20] {
			o := *c
			o.Scope = scope
			others = append(others, &o)
		}
		create(t, s, others...)
	}
	return certs
}

// testListFilters pages through every combination of the status, owner and
// CA filters, in both orders.
func testListFilters(t *testing.T, s fleetcert.Store) {
	certs := filterSet(t, s, 120)
	caX := certificateID("ca-x")
	for _, tc := range []struct {
		name    string
		q       fleetcert.CertificateQuery
		matches func(c *fleetcert.Certificate) bool
	}{
		{"status", fleetcert.CertificateQuery{Status: fleetcert.StatusPendingTransfer},
			func(c *fleetcert.Certificate) bool { return c.Status == fleetcert.StatusPendingTransfer }},
		{"owner", fleetcert.CertificateQuery{OwnedBy: scopeB.AccountID},
			func(c *fleetcert.Certificate) bool { return c.OwnedBy == scopeB.AccountID }},
		{"status and owner", fleetcert.CertificateQuery{Status: fleetcert.StatusPendingTransfer, OwnedBy: scopeA.AccountID},
			func(c *fleetcert.Certificate) bool {
				return c.Status == fleetcert.StatusPendingTransfer && c.OwnedBy == scopeA.AccountID
			}},
		{"CA and status", fleetcert.CertificateQuery{CACertificateID: caX, Status: fleetcert.StatusInactive},
			func(c *fleetcert.Certificate) bool {
				return c.CACertificateID == caX && c.Status == fleetcert.StatusInactive
			}},
		{"CA and owner", fleetcert.CertificateQuery{CACertificateID: caX, OwnedBy: scopeA.AccountID},
			func(c *fleetcert.Certificate) bool { return c.CACertificateID == caX && c.OwnedBy == scopeA.AccountID }},
		{"CA, status and owner", fleetcert.CertificateQuery{CACertificateID: caX, Status: fleetcert.StatusActive, OwnedBy: scopeB.AccountID},
			func(c *fleetcert.Certificate) bool {
				return c.CACertificateID == caX && c.Status == fleetcert.StatusActive && c.OwnedBy == scopeB.AccountID
			}},
	} {
		var want []*fleetcert.Certificate
		for _, c := range certs {
			if tc.matches(c) {
				want = append(want, c)
			}
		}
		if len(want) < 4 || len(want) == len(certs) {
			t.Fatalf("%s: %d of %d certificates match; the test needs a few pages of some", tc.name, len(want), len(certs))
		}
		for _, ascending := range []bool{true, false} {
			sortCertificates(want, ascending)
			q := tc.q
			q.Scope, q.Ascending = scopeA, ascending
			got := listAll(t, s, q, 3)
			what := fmt.Sprintf("%s, ascending=%v", tc.name, ascending)
			sameOrder(t, what, got, want)
			for i := range got {
				w := *want[i]
				w.PEM = ""
				equalCertificate(t, got[i], &w)
			}
			// A cursor taken from outside the filtered list.
			mid := certs[len(certs)/2]
			q.After, q.Limit = &fleetcert.Cursor{CreationDate: mid.CreationDate, Seq: mid.Seq}, len(certs)
			var rest []*fleetcert.Certificate
			for _, c := range want {
				order := cmp.Or(c.CreationDate.Compare(mid.CreationDate), cmp.Compare(c.Seq, mid.Seq))
				if ascending && order > 0 || !ascending && order < 0 {
					rest = append(rest, c)
				}
			}
			sameOrder(t, what+", after a certificate filtered out", list(t, s, q), rest)
		}
	}
	for _, q := range []fleetcert.CertificateQuery{
		{Scope: scopeA, Status: fleetcert.StatusRevoked, Limit: 10},
		{Scope: scopeA, OwnedBy: "999999999999", Limit: 10},
		{Scope: scopeA, Status: fleetcert.StatusPendingTransfer, OwnedBy: "999999999999", Limit: 10},
		{Scope: fleetcert.Scope{AccountID: "999999999999", Region: scopeA.Region}, Status: fleetcert.StatusActive, Limit: 10},
	} {
		if got := list(t, s, q); len(got) != 0 {
			t.Fatalf("%+v listed %v, want none", q, ids(got))
		}
	}
}

func testListStatusFilterFollowsUpdates(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	var certs []*fleetcert.Certificate
	for i := range 6 {
		certs = append(certs, newCertificate(scopeA, fmt.Sprint("su", i), baseTime.Add(time.Duration(i)*time.Millisecond)))
	}
	create(t, s, certs...)
	pending := fleetcert.CertificateQuery{Scope: scopeA, Status: fleetcert.StatusPendingTransfer, OwnedBy: scopeA.AccountID, Limit: 10}
	if got := list(t, s, pending); len(got) != 0 {
		t.Fatalf("pending before any transfer: %v", ids(got))
	}
	// Start transfers of two; a third goes to another owner.
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		for i, c := range []*fleetcert.Certificate{certs[4], certs[1], certs[2]} {
			c.Status = fleetcert.StatusPendingTransfer
			c.Transfer = &fleetcert.TransferData{TargetAccountID: scopeB.AccountID, TransferDate: baseTime.Add(time.Hour)}
			if i == 2 {
				c.OwnedBy = scopeB.AccountID
			}
			if err := tx.UpdateCertificate(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, "pending, newest first", list(t, s, pending), []*fleetcert.Certificate{certs[4], certs[1]})
	// One ends; one is deleted.
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		certs[4].Status, certs[4].Transfer = fleetcert.StatusInactive, nil
		if err := tx.UpdateCertificate(ctx, certs[4]); err != nil {
			return err
		}
		return tx.DeleteCertificate(ctx, scopeA, certs[1].ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := list(t, s, pending); len(got) != 0 {
		t.Fatalf("pending after the transfers ended: %v", ids(got))
	}
	sameOrder(t, "inactive", list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Status: fleetcert.StatusInactive, Limit: 10}),
		[]*fleetcert.Certificate{certs[4]})
	sameOrder(t, "owned by B", list(t, s, fleetcert.CertificateQuery{Scope: scopeA, OwnedBy: scopeB.AccountID, Limit: 10}),
		[]*fleetcert.Certificate{certs[2]})
}
