package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// subject returns a stand-in for the raw DER subject of a CA named name:
// a SEQUENCE holding the name, with a zero byte inside so that a store that
// keeps subjects as text fails.
func subject(name string) []byte {
	body := append([]byte{0x31, 0x00}, name...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

// newCA returns a CA certificate of scope named name, created at created,
// with every field but Tags and Seq set.
func newCA(scope fleetcert.Scope, name string, created time.Time) *fleetcert.CACertificate {
	return &fleetcert.CACertificate{
		Scope:                  scope,
		ID:                     certificateID("ca/" + name),
		Status:                 fleetcert.CAStatusActive,
		PEM:                    pem,
		Mode:                   fleetcert.ModeDefault,
		AutoRegistrationStatus: fleetcert.AutoRegistrationDisable,
		RegistrationConfig: fleetcert.RegistrationConfig{
			TemplateBody: `{"Resources":{"thing":{"Type":"AWS::IoT::Thing"}}}`,
			RoleARN:      "arn:aws:iam::" + scope.AccountID + ":role/JITPRole",
		},
		Subject:          subject(name),
		OwnedBy:          scope.AccountID,
		CreationDate:     created,
		LastModifiedDate: created,
		CustomerVersion:  1,
		GenerationID:     "7c1d9e2f-3a4b-4c5d-8e6f-" + certificateID(name)[:12],
		NotBefore:        created.Truncate(time.Second).Add(-time.Hour),
		NotAfter:         created.Truncate(time.Second).AddDate(10, 0, 0),
	}
}

// createCAs stores cas in one Update, setting their Seq.
func createCAs(tb testing.TB, s fleetcert.Store, cas ...*fleetcert.CACertificate) {
	tb.Helper()
	createEach(tb, s, "CA certificates", fleetcert.Tx.CreateCACertificate, cas)
}

// getCA returns the CA certificate id of scope, or the store's error.
func getCA(tb testing.TB, s fleetcert.Store, scope fleetcert.Scope, id string) (*fleetcert.CACertificate, error) {
	tb.Helper()
	ctx := context.Background()
	var ca *fleetcert.CACertificate
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		ca, err = tx.CACertificate(ctx, scope, id)
		return err
	})
	return ca, err
}

// mustGetCA returns the CA certificate id of scope.
func mustGetCA(tb testing.TB, s fleetcert.Store, scope fleetcert.Scope, id string) *fleetcert.CACertificate {
	tb.Helper()
	ca, err := getCA(tb, s, scope, id)
	if err != nil {
		tb.Fatalf("get CA certificate %s: %v", id, err)
	}
	return ca
}

// casByID runs CACertificatesByID in a View.
func casByID(tb testing.TB, s fleetcert.Store, region, id string) []*fleetcert.CACertificate {
	tb.Helper()
	ctx := context.Background()
	var cas []*fleetcert.CACertificate
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		cas, err = tx.CACertificatesByID(ctx, region, id)
		return err
	})
	if err != nil {
		tb.Fatalf("CA certificates by id %s: %v", id, err)
	}
	return cas
}

// listCAs runs ListCACertificates in a View.
func listCAs(tb testing.TB, s fleetcert.Store, q fleetcert.CAQuery) []*fleetcert.CACertificate {
	tb.Helper()
	ctx := context.Background()
	var cas []*fleetcert.CACertificate
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		cas, err = tx.ListCACertificates(ctx, q)
		return err
	})
	if err != nil {
		tb.Fatalf("list CA certificates %+v: %v", q, err)
	}
	return cas
}

// listAllCAs pages through q with pages of size and returns every item.
func listAllCAs(tb testing.TB, s fleetcert.Store, q fleetcert.CAQuery, size int) []*fleetcert.CACertificate {
	tb.Helper()
	var all []*fleetcert.CACertificate
	q.Limit = size
	for {
		page := listCAs(tb, s, q)
		if len(page) > size {
			tb.Fatalf("page of %d CAs for limit %d", len(page), size)
		}
		all = append(all, page...)
		if len(page) < size {
			return all
		}
		last := page[len(page)-1]
		next := &fleetcert.Cursor{CreationDate: last.CreationDate, Seq: last.Seq}
		if q.After != nil && *next == *q.After {
			// A store that repeats the cursor's item would page forever.
			tb.Fatalf("page after %+v ends at the cursor again: %v", *q.After, caIDs(page))
		}
		q.After = next
	}
}

// sortCAs sorts cas in list order.
func sortCAs(cas []*fleetcert.CACertificate, ascending bool) {
	slices.SortFunc(cas, func(a, b *fleetcert.CACertificate) int {
		c := cmp.Or(a.CreationDate.Compare(b.CreationDate), cmp.Compare(a.Seq, b.Seq))
		if !ascending {
			c = -c
		}
		return c
	})
}

// caIDs returns the scopes and ids of cas, for readable failures.
func caIDs(cas []*fleetcert.CACertificate) []string {
	out := make([]string, len(cas))
	for i, ca := range cas {
		out[i] = ca.AccountID[:3] + "/" + ca.Region + "/" + ca.ID[:8]
	}
	return out
}

// sameCAs fails tb unless got equals want exactly, item by item and every
// field of each, in the same order.
func sameCAs(tb testing.TB, what string, got, want []*fleetcert.CACertificate) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d CA certificates, want %d\n got %v\nwant %v", what, len(got), len(want), caIDs(got), caIDs(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Scope != want[i].Scope {
			tb.Fatalf("%s: item %d is %s, want %s\n got %v\nwant %v", what, i, caIDs(got)[i], caIDs(want)[i], caIDs(got), caIDs(want))
		}
		equalCA(tb, got[i], want[i])
	}
}

// equalCA fails tb unless got equals want exactly, times included (same
// instant, UTC).
func equalCA(tb testing.TB, got, want *fleetcert.CACertificate) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("CA certificate differs:\n got %s\nwant %s", describeCA(got), describeCA(want))
	}
}

// describeCA prints ca with its time zones and the nil-ness of its slices.
func describeCA(ca *fleetcert.CACertificate) string {
	if ca == nil {
		return "<nil>"
	}
	cc := *ca
	cc.PEM = fmt.Sprintf("<%d bytes>", len(ca.PEM))
	return fmt.Sprintf("%+v (tags nil: %v, subject nil: %v)", cc, ca.Tags == nil, ca.Subject == nil)
}

func testCACreateAndGet(t *testing.T, s fleetcert.Store) {
	ca := newCA(scopeA, "a", baseTime.Add(123*time.Millisecond))
	ca.Status = fleetcert.CAStatusInactive
	ca.Mode = fleetcert.ModeSNIOnly
	ca.AutoRegistrationStatus = fleetcert.AutoRegistrationEnable
	ca.RegistrationConfig.TemplateName = "fleet-template ✓"
	ca.Tags = []fleetcert.Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: ""}, {Key: "ü\"\\", Value: "x\ny"}}
	ca.LastModifiedDate = ca.CreationDate.Add(36*time.Hour + 999*time.Millisecond)
	ca.CustomerVersion = 7
	// RFC 5280 4.1.2.5: "no well-defined expiration date".
	ca.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	createCAs(t, s, ca)
	if ca.Seq == 0 {
		t.Fatal("CreateCACertificate did not set Seq")
	}
	got := mustGetCA(t, s, scopeA, ca.ID)
	equalCA(t, got, ca)
	if got.CreationDate.Location() != time.UTC || got.NotAfter.Location() != time.UTC {
		t.Fatalf("times in %v and %v, want UTC", got.CreationDate.Location(), got.NotAfter.Location())
	}
	// The record returned is the caller's own: changing it does not change
	// the store.
	got.Subject[len(got.Subject)-1] ^= 0xff
	got.Tags[0].Value = "changed"
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), ca)
}

func testCACreateAndGetZeroFields(t *testing.T, s fleetcert.Store) {
	ca := newCA(scopeA, "z", baseTime)
	ca.AutoRegistrationStatus = ""
	ca.RegistrationConfig = fleetcert.RegistrationConfig{}
	ca.Subject = nil
	ca.OwnedBy = ""
	ca.LastModifiedDate = time.Time{}
	ca.CustomerVersion = 0
	ca.GenerationID = ""
	ca.NotBefore, ca.NotAfter = time.Time{}, time.Time{}
	createCAs(t, s, ca)
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), ca)

	// Empty slices come back nil (the Store contract).
	empty := newCA(scopeA, "empty", baseTime)
	empty.Tags = []fleetcert.Tag{}
	empty.Subject = []byte{}
	createCAs(t, s, empty)
	want := *empty
	want.Tags, want.Subject = nil, nil
	equalCA(t, mustGetCA(t, s, scopeA, empty.ID), &want)
}

func testCADuplicate(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	ca := newCA(scopeA, "d", baseTime)
	createCAs(t, s, ca)
	dup := newCA(scopeA, "d", baseTime.Add(time.Hour))
	dup.Status = fleetcert.CAStatusInactive
	err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCACertificate(ctx, dup) })
	wantCode(t, err, fleetcert.EResourceAlreadyExists, "create duplicate CA")
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), ca)

	// Also within the transaction that created it.
	twice := newCA(scopeA, "d2", baseTime)
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateCACertificate(ctx, twice); err != nil {
			t.Errorf("first create: %v", err)
			return err
		}
		again := *twice
		return tx.CreateCACertificate(ctx, &again)
	})
	wantCode(t, err, fleetcert.EResourceAlreadyExists, "create CA twice in one transaction")

	// A client certificate with the CA's id is another record.
	c := newCertificate(scopeA, "ca/d", baseTime)
	if c.ID != ca.ID {
		t.Fatal("test ids differ")
	}
	create(t, s, c)
}

func testCASameIDOtherScope(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	a := newCA(scopeA, "same", baseTime)
	b := newCA(scopeB, "same", baseTime)
	b.Status = fleetcert.CAStatusInactive
	b.Mode = fleetcert.ModeSNIOnly
	r := newCA(scopeARegion, "same", baseTime)
	r.RegistrationConfig.TemplateName = "other-region"
	createCAs(t, s, a)
	createCAs(t, s, b)
	createCAs(t, s, r)
	for _, ca := range []*fleetcert.CACertificate{a, b, r} {
		equalCA(t, mustGetCA(t, s, ca.Scope, ca.ID), ca)
	}
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, a.ID) }); err != nil {
		t.Fatal(err)
	}
	_, err := getCA(t, s, scopeA, a.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get deleted CA")
	equalCA(t, mustGetCA(t, s, scopeB, b.ID), b)
	equalCA(t, mustGetCA(t, s, scopeARegion, r.ID), r)
}

func testCANotFound(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	other := newCA(scopeB, "elsewhere", baseTime)
	createCAs(t, s, other)
	// A client certificate is not a CA certificate.
	c := newCertificate(scopeA, "ca/client", baseTime)
	create(t, s, c)

	_, err := getCA(t, s, scopeA, certificateID("ca/missing"))
	wantCode(t, err, fleetcert.EResourceNotFound, "get missing CA")
	_, err = getCA(t, s, scopeA, other.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get another account's CA")
	_, err = getCA(t, s, fleetcert.Scope{AccountID: scopeB.AccountID, Region: scopeARegion.Region}, other.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get another region's CA")
	_, err = getCA(t, s, scopeA, c.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get a client certificate as a CA")

	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.UpdateCACertificate(ctx, newCA(scopeA, "missing", baseTime)) })
	wantCode(t, err, fleetcert.EResourceNotFound, "update missing CA")
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		ca := *other
		ca.Scope = scopeA
		return tx.UpdateCACertificate(ctx, &ca)
	})
	wantCode(t, err, fleetcert.EResourceNotFound, "update another account's CA")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, other.ID) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete another account's CA")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, certificateID("ca/missing")) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete missing CA")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, c.ID) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete a client certificate as a CA")
	equalCA(t, mustGetCA(t, s, scopeB, other.ID), other)
	equalCertificate(t, mustGet(t, s, scopeA, c.ID), c)
}

func testCAUpdate(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	ca := newCA(scopeA, "u", baseTime)
	ca.Tags = []fleetcert.Tag{{Key: "k", Value: "v"}}
	neighbour := newCA(scopeA, "neighbour", baseTime)
	createCAs(t, s, ca, neighbour)

	u := *ca
	u.Status = fleetcert.CAStatusInactive
	u.PEM = "changed"
	u.Mode = fleetcert.ModeSNIOnly
	u.AutoRegistrationStatus = fleetcert.AutoRegistrationEnable
	u.RegistrationConfig = fleetcert.RegistrationConfig{TemplateBody: "{}", RoleARN: "arn:aws:iam::123456789012:role/R", TemplateName: "t"}
	u.Tags = []fleetcert.Tag{{Key: "k", Value: "v2"}, {Key: "k2", Value: "v"}}
	u.Subject = subject("u-renamed")
	u.OwnedBy = scopeB.AccountID
	u.CreationDate = baseTime.Add(-time.Hour)
	u.LastModifiedDate = baseTime.Add(time.Hour + 5*time.Millisecond)
	u.CustomerVersion = 2
	u.GenerationID = "changed-generation"
	u.NotBefore = baseTime.Add(-48 * time.Hour)
	u.NotAfter = baseTime.Add(48 * time.Hour)
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		cur, err := tx.CACertificate(ctx, scopeA, ca.ID)
		if err != nil {
			return err
		}
		equalCA(t, cur, ca)
		return tx.UpdateCACertificate(ctx, &u)
	})
	if err != nil {
		t.Fatalf("update CA: %v", err)
	}
	got := mustGetCA(t, s, scopeA, ca.ID)
	equalCA(t, got, &u)
	if got.Seq != ca.Seq {
		t.Fatalf("Seq %d after update, want %d", got.Seq, ca.Seq)
	}
	equalCA(t, mustGetCA(t, s, scopeA, neighbour.ID), neighbour)
	// The filters see the updated values.
	sameCAs(t, "by the new subject", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: u.Subject, Limit: 10}),
		[]*fleetcert.CACertificate{&u})
	sameCAs(t, "by the old subject", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: ca.Subject, Limit: 10}), nil)
	sameCAs(t, "by the new template", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, TemplateName: "t", Limit: 10}),
		[]*fleetcert.CACertificate{&u})

	// Back to no tags and no subject.
	u.Tags, u.Subject = nil, nil
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.UpdateCACertificate(ctx, &u) }); err != nil {
		t.Fatalf("update CA: %v", err)
	}
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), &u)
}

func testCADelete(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	ca := newCA(scopeA, "del", baseTime)
	keep := newCA(scopeA, "keep", baseTime.Add(time.Millisecond))
	createCAs(t, s, ca, keep)
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, ca.ID) }); err != nil {
		t.Fatalf("delete CA: %v", err)
	}
	_, err := getCA(t, s, scopeA, ca.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get deleted CA")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, ca.ID) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete CA twice")
	sameCAs(t, "list after delete", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Limit: 10}), []*fleetcert.CACertificate{keep})
	sameCAs(t, "by id after delete", casByID(t, s, scopeA.Region, ca.ID), nil)
	sameCAs(t, "by subject after delete", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: ca.Subject, Limit: 10}), nil)

	// The id can be registered again, as a new record.
	again := newCA(scopeA, "del", baseTime.Add(time.Hour))
	createCAs(t, s, again)
	if again.Seq <= keep.Seq {
		t.Fatalf("Seq %d of a CA created again, want more than %d", again.Seq, keep.Seq)
	}
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), again)
}

func testCAByID(t *testing.T, s fleetcert.Store) {
	a := newCA(scopeA, "shared", baseTime)
	b := newCA(scopeB, "shared", baseTime.Add(time.Millisecond))
	b.Mode = fleetcert.ModeSNIOnly
	c := newCA(fleetcert.Scope{AccountID: "333333333333", Region: scopeA.Region}, "shared", baseTime)
	otherRegion := newCA(scopeARegion, "shared", baseTime)
	otherCA := newCA(scopeA, "other", baseTime)
	createCAs(t, s, b, otherRegion, otherCA)
	createCAs(t, s, a, c)

	// The contract sets no order: compare in account order.
	got := casByID(t, s, scopeA.Region, a.ID)
	slices.SortFunc(got, func(x, y *fleetcert.CACertificate) int { return cmp.Compare(x.AccountID, y.AccountID) })
	sameCAs(t, "by id in "+scopeA.Region, got, []*fleetcert.CACertificate{a, b, c})
	sameCAs(t, "by id in "+scopeARegion.Region, casByID(t, s, scopeARegion.Region, a.ID), []*fleetcert.CACertificate{otherRegion})
	sameCAs(t, "by id in an empty region", casByID(t, s, "ap-south-1", a.ID), nil)
	sameCAs(t, "unknown id", casByID(t, s, scopeA.Region, certificateID("ca/none")), nil)
	// Client certificates are not CAs.
	create(t, s, newCertificate(scopeA, "ca/client", baseTime))
	sameCAs(t, "client certificate id", casByID(t, s, scopeA.Region, certificateID("ca/client")), nil)
}

func testCAListOrder(t *testing.T, s fleetcert.Store) {
	t0, t1, t2 := baseTime, baseTime.Add(time.Millisecond), baseTime.Add(2*time.Millisecond)
	// Created in this order, so Seq grows down the list; CreationDate does not.
	c1 := newCA(scopeA, "o1", t2)
	c2 := newCA(scopeA, "o2", t1)
	c3 := newCA(scopeA, "o3", t1)
	c4 := newCA(scopeA, "o4", t0)
	c5 := newCA(scopeA, "o5", t1)
	c5.Tags = []fleetcert.Tag{{Key: "k", Value: "v"}}
	for _, ca := range []*fleetcert.CACertificate{c1, c2, c3, c4, c5} {
		createCAs(t, s, ca)
	}
	asc := []*fleetcert.CACertificate{c4, c2, c3, c5, c1}
	desc := []*fleetcert.CACertificate{c1, c5, c3, c2, c4}

	// Listed CAs carry every field, PEM included.
	sameCAs(t, "ascending", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Ascending: true, Limit: 10}), asc)
	sameCAs(t, "descending", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Limit: 10}), desc)
	sameCAs(t, "limit 2", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Limit: 2}), desc[:2])
	sameCAs(t, "limit 0", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA}), nil)

	// The cursor sits between items of equal CreationDate.
	after := &fleetcert.Cursor{CreationDate: c3.CreationDate, Seq: c3.Seq}
	sameCAs(t, "ascending after o3",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Ascending: true, After: after, Limit: 10}), asc[3:])
	sameCAs(t, "descending after o3",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, After: after, Limit: 10}), desc[3:])
	// A cursor need not name an existing item.
	gap := &fleetcert.Cursor{CreationDate: t1, Seq: c2.Seq - 1}
	sameCAs(t, "ascending after a gap",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Ascending: true, After: gap, Limit: 10}), asc[1:])
	last := &fleetcert.Cursor{CreationDate: c1.CreationDate, Seq: c1.Seq}
	sameCAs(t, "ascending after the last",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Ascending: true, After: last, Limit: 10}), nil)
}

// caPagingSet creates n CAs of scopeA, three per millisecond, in a scrambled
// order, each with one of three subjects and one of three template names
// ("" among them), and returns them.
func caPagingSet(t *testing.T, s fleetcert.Store, n int) []*fleetcert.CACertificate {
	cas := make([]*fleetcert.CACertificate, n)
	for i := range n {
		ca := newCA(scopeA, fmt.Sprint("p", i), baseTime.Add(time.Duration(i/3)*time.Millisecond))
		ca.Subject = subject(fmt.Sprint("subject-", i%3))
		ca.RegistrationConfig.TemplateName = []string{"", "tpl-1", "tpl-2"}[i%5%3]
		cas[i] = ca
	}
	scrambled := slices.Clone(cas)
	rand.New(rand.NewPCG(7, 7)).Shuffle(n, func(i, j int) { scrambled[i], scrambled[j] = scrambled[j], scrambled[i] })
	createCAs(t, s, scrambled...)
	return cas
}

func testCAListPaging(t *testing.T, s fleetcert.Store) {
	cas := caPagingSet(t, s, 100)
	// Noise in other scopes.
	createCAs(t, s, newCA(scopeB, "p1", baseTime), newCA(scopeARegion, "p2", baseTime.Add(time.Millisecond)))
	for _, ascending := range []bool{true, false} {
		want := slices.Clone(cas)
		sortCAs(want, ascending)
		for _, size := range []int{1, 7, 100, 101} {
			got := listAllCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Ascending: ascending}, size)
			sameCAs(t, fmt.Sprintf("pages of %d, ascending=%v", size, ascending), got, want)
		}
	}
}

func testCAListSubjectFilter(t *testing.T, s fleetcert.Store) {
	cas := caPagingSet(t, s, 60)
	// Subjects that differ only in length or in a zero byte, and the same
	// subject in other scopes.
	prefix := newCA(scopeA, "prefix", baseTime)
	prefix.Subject = subject("subject-1")[:len(subject("subject-1"))-1]
	longer := newCA(scopeA, "longer", baseTime)
	longer.Subject = append(subject("subject-1"), 0x00)
	zero := newCA(scopeA, "zero", baseTime)
	zero.Subject = subject("subject-\x001")
	b := newCA(scopeB, "b", baseTime)
	b.Subject = subject("subject-1")
	r := newCA(scopeARegion, "r", baseTime)
	r.Subject = subject("subject-1")
	createCAs(t, s, prefix, longer, zero, b, r)

	for _, ascending := range []bool{true, false} {
		var want []*fleetcert.CACertificate
		for _, ca := range cas {
			if string(ca.Subject) == string(subject("subject-1")) {
				want = append(want, ca)
			}
		}
		sortCAs(want, ascending)
		q := fleetcert.CAQuery{Scope: scopeA, Subject: subject("subject-1"), Ascending: ascending}
		sameCAs(t, fmt.Sprintf("subject filter, ascending=%v", ascending), listAllCAs(t, s, q, 3), want)
	}
	sameCAs(t, "zero-byte subject",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: zero.Subject, Limit: 10}), []*fleetcert.CACertificate{zero})
	sameCAs(t, "prefix subject",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: prefix.Subject, Limit: 10}), []*fleetcert.CACertificate{prefix})
	sameCAs(t, "subject of scope B",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeB, Subject: b.Subject, Limit: 10}), []*fleetcert.CACertificate{b})
	sameCAs(t, "unknown subject",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: subject("none"), Limit: 10}), nil)
	// The registry's issuer lookup: MaxCAsPerSubject+1, no cursor.
	if got := listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Subject: subject("subject-0"), Limit: fleetcert.MaxCAsPerSubject + 1}); len(got) != fleetcert.MaxCAsPerSubject+1 {
		t.Fatalf("subject lookup with limit %d: %d CAs", fleetcert.MaxCAsPerSubject+1, len(got))
	}
}

func testCAListTemplateFilter(t *testing.T, s fleetcert.Store) {
	cas := caPagingSet(t, s, 60)
	b := newCA(scopeB, "b", baseTime)
	b.RegistrationConfig.TemplateName = "tpl-1"
	createCAs(t, s, b)
	match := func(subj []byte, tpl string) []*fleetcert.CACertificate {
		var out []*fleetcert.CACertificate
		for _, ca := range cas {
			if (subj == nil || string(ca.Subject) == string(subj)) && ca.RegistrationConfig.TemplateName == tpl {
				out = append(out, ca)
			}
		}
		return out
	}
	for _, ascending := range []bool{true, false} {
		for _, tc := range []struct {
			name    string
			subject []byte
			tpl     string
		}{
			{"template tpl-1", nil, "tpl-1"},
			{"template tpl-2", nil, "tpl-2"},
			{"template tpl-2 and subject-2", subject("subject-2"), "tpl-2"},
			{"template tpl-1 and subject-0", subject("subject-0"), "tpl-1"},
		} {
			want := match(tc.subject, tc.tpl)
			if len(want) < 3 {
				t.Fatalf("%s: only %d CAs match; the test needs several pages", tc.name, len(want))
			}
			sortCAs(want, ascending)
			q := fleetcert.CAQuery{Scope: scopeA, Subject: tc.subject, TemplateName: tc.tpl, Ascending: ascending}
			sameCAs(t, fmt.Sprintf("%s, ascending=%v", tc.name, ascending), listAllCAs(t, s, q, 2), want)
		}
	}
	sameCAs(t, "unknown template", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, TemplateName: "none", Limit: 10}), nil)
	sameCAs(t, "template of scope B",
		listCAs(t, s, fleetcert.CAQuery{Scope: scopeB, TemplateName: "tpl-1", Limit: 10}), []*fleetcert.CACertificate{b})
	// No filter lists them all, with and without a template.
	if got := listAllCAs(t, s, fleetcert.CAQuery{Scope: scopeA}, 25); len(got) != len(cas) {
		t.Fatalf("without filters: %d CAs, want %d", len(got), len(cas))
	}
}

func testCAListScopeIsolation(t *testing.T, s fleetcert.Store) {
	for i := range 5 {
		created := baseTime.Add(time.Duration(i) * time.Millisecond)
		name := fmt.Sprint("i", i)
		createCAs(t, s, newCA(scopeA, name, created), newCA(scopeB, name, created), newCA(scopeARegion, name, created))
	}
	// Client certificates are not listed as CAs.
	create(t, s, newCertificate(scopeA, "client", baseTime))
	for _, scope := range []fleetcert.Scope{scopeA, scopeB, scopeARegion} {
		got := listAllCAs(t, s, fleetcert.CAQuery{Scope: scope, Ascending: true}, 2)
		if len(got) != 5 {
			t.Fatalf("scope %v: %d CAs, want 5", scope, len(got))
		}
		for _, ca := range got {
			if ca.Scope != scope {
				t.Fatalf("scope %v listed a CA of %v", scope, ca.Scope)
			}
		}
	}
	empty := fleetcert.Scope{AccountID: "999999999999", Region: scopeA.Region}
	sameCAs(t, "empty scope", listCAs(t, s, fleetcert.CAQuery{Scope: empty, Limit: 10}), nil)
	if got := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Limit: 10}); len(got) != 1 {
		t.Fatalf("CAs listed as client certificates: %v", ids(got))
	}
}

// registrationCode returns RegistrationCode, or the store's error.
func registrationCode(tb testing.TB, s fleetcert.Store, scope fleetcert.Scope) (string, error) {
	tb.Helper()
	ctx := context.Background()
	var code string
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		code, err = tx.RegistrationCode(ctx, scope)
		return err
	})
	return code, err
}

// wantRegistrationCode fails tb unless scope's registration code is want.
func wantRegistrationCode(tb testing.TB, s fleetcert.Store, scope fleetcert.Scope, want string) {
	tb.Helper()
	got, err := registrationCode(tb, s, scope)
	if err != nil {
		tb.Fatalf("registration code of %v: %v", scope, err)
	} else if got != want {
		tb.Fatalf("registration code of %v is %q, want %q", scope, got, want)
	}
}

func testRegistrationCode(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	put := func(scope fleetcert.Scope, code string) {
		t.Helper()
		if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.PutRegistrationCode(ctx, scope, code) }); err != nil {
			t.Fatalf("put registration code: %v", err)
		}
	}
	del := func(scope fleetcert.Scope) error {
		return s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteRegistrationCode(ctx, scope) })
	}
	codeA, codeB, codeR := certificateID("code-a"), certificateID("code-b"), certificateID("code-r")

	_, err := registrationCode(t, s, scopeA)
	wantCode(t, err, fleetcert.EResourceNotFound, "registration code of an empty store")
	put(scopeA, codeA)
	wantRegistrationCode(t, s, scopeA, codeA)
	_, err = registrationCode(t, s, scopeB)
	wantCode(t, err, fleetcert.EResourceNotFound, "registration code of another account")
	_, err = registrationCode(t, s, scopeARegion)
	wantCode(t, err, fleetcert.EResourceNotFound, "registration code of another region")
	put(scopeB, codeB)
	put(scopeARegion, codeR)

	// Put replaces, within and across transactions.
	put(scopeA, codeB)
	wantRegistrationCode(t, s, scopeA, codeB)
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.PutRegistrationCode(ctx, scopeA, "first"); err != nil {
			return err
		}
		if err := tx.PutRegistrationCode(ctx, scopeA, codeA); err != nil {
			return err
		}
		code, err := tx.RegistrationCode(ctx, scopeA)
		if err != nil {
			return err
		} else if code != codeA {
			t.Errorf("registration code inside the transaction %q, want %q", code, codeA)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRegistrationCode(t, s, scopeA, codeA)

	if err := del(scopeA); err != nil {
		t.Fatalf("delete registration code: %v", err)
	}
	_, err = registrationCode(t, s, scopeA)
	wantCode(t, err, fleetcert.EResourceNotFound, "deleted registration code")
	wantCode(t, del(scopeA), fleetcert.EResourceNotFound, "delete registration code twice")
	wantRegistrationCode(t, s, scopeB, codeB)
	wantRegistrationCode(t, s, scopeARegion, codeR)

	// A new code after a delete.
	put(scopeA, codeR)
	wantRegistrationCode(t, s, scopeA, codeR)
}

func testRegistrationCodeNotFound(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteRegistrationCode(ctx, scopeA) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete missing registration code")
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.PutRegistrationCode(ctx, scopeB, "b") }); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteRegistrationCode(ctx, scopeA) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete registration code of an account without one")
	_, err = registrationCode(t, s, scopeA)
	wantCode(t, err, fleetcert.EResourceNotFound, "get missing registration code")
	wantRegistrationCode(t, s, scopeB, "b")
}
