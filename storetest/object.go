package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// newObject returns an object of scope and kind named name, created at
// baseTime, with every field but Version set.
func newObject(scope fleetcert.Scope, kind fleetcert.ObjectKind, name, label string) *fleetcert.Object {
	return &fleetcert.Object{
		Scope:            scope,
		Kind:             kind,
		Name:             name,
		Label:            label,
		Body:             append(fmt.Appendf(nil, `{"name":%q}`, name), 0, 0xff), // bytes kept as they are
		CreationDate:     baseTime,
		LastModifiedDate: baseTime,
	}
}

// createObjects stores objects in one Update, setting their Version.
func createObjects(tb testing.TB, s fleetcert.Store, objects ...*fleetcert.Object) {
	tb.Helper()
	createEach(tb, s, "objects", fleetcert.Tx.CreateObject, objects)
}

// createLinks stores links in one Update.
func createLinks(tb testing.TB, s fleetcert.Store, links ...*fleetcert.Link) {
	tb.Helper()
	createEach(tb, s, "links", fleetcert.Tx.CreateLink, links)
}

// getObject returns the object (scope, kind, name), or the store's error.
func getObject(s fleetcert.Store, scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) (*fleetcert.Object, error) {
	ctx := context.Background()
	var o *fleetcert.Object
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		o, err = tx.Object(ctx, scope, kind, name)
		return err
	})
	return o, err
}

// wantObject fails tb unless the store holds want, every field equal.
func wantObject(tb testing.TB, s fleetcert.Store, want *fleetcert.Object) {
	tb.Helper()
	got, err := getObject(s, want.Scope, want.Kind, want.Name)
	if err != nil {
		tb.Fatalf("get %s %q: %v", want.Kind, want.Name, err)
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("object differs:\n got %+v\nwant %+v", *got, *want)
	}
}

// updateObject runs UpdateObject(o) in its own Update.
func updateObject(s fleetcert.Store, o *fleetcert.Object) error {
	ctx := context.Background()
	return s.Update(ctx, func(tx fleetcert.Tx) error { return tx.UpdateObject(ctx, o) })
}

// deleteObject runs DeleteObject in its own Update.
func deleteObject(s fleetcert.Store, scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) error {
	ctx := context.Background()
	return s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteObject(ctx, scope, kind, name) })
}

// listObjects runs ListObjects in a View and returns the names listed.
func listObjects(tb testing.TB, s fleetcert.Store, q fleetcert.ObjectQuery) []string {
	tb.Helper()
	names := []string{}
	for _, o := range listObjectRecords(tb, s, q) {
		names = append(names, o.Name)
	}
	return names
}

// listObjectRecords runs ListObjects in a View.
func listObjectRecords(tb testing.TB, s fleetcert.Store, q fleetcert.ObjectQuery) []*fleetcert.Object {
	tb.Helper()
	ctx := context.Background()
	var objects []*fleetcert.Object
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		objects, err = tx.ListObjects(ctx, q)
		return err
	})
	if err != nil {
		tb.Fatalf("list objects %+v: %v", q, err)
	}
	if len(objects) > max(q.Limit, 0) {
		tb.Fatalf("list objects %+v: %d objects, more than the limit", q, len(objects))
	}
	return objects
}

// listAllObjects pages through q, size names a page, and returns the names.
func listAllObjects(tb testing.TB, s fleetcert.Store, q fleetcert.ObjectQuery, size int) []string {
	tb.Helper()
	all := []string{}
	q.Limit = size
	for {
		page := listObjects(tb, s, q)
		all = append(all, page...)
		if len(page) < size {
			return all
		}
		if q.After == page[len(page)-1] {
			tb.Fatalf("page after %q ends at the cursor again", q.After)
		}
		q.After = page[len(page)-1]
	}
}

func testObjectCreateAndGet(t *testing.T, s fleetcert.Store) {
	thing := newObject(scopeA, fleetcert.ObjectThing, "sensor-7", "type-1")
	empty := newObject(scopeA, fleetcert.ObjectThing, "bare", "")
	empty.Body = nil
	empty.LastModifiedDate = time.Time{}
	empty.Version = -3 // not above 0: stored as 1
	copied := newObject(scopeA, fleetcert.ObjectPolicy, "copied", "")
	copied.Version = 7 // a copy keeps its version
	createObjects(t, s, thing, empty, copied)
	for _, tc := range []struct {
		o    *fleetcert.Object
		want int64
	}{{thing, 1}, {empty, 1}, {copied, 7}} {
		if tc.o.Version != tc.want {
			t.Fatalf("CreateObject(%q) set Version %d, want %d", tc.o.Name, tc.o.Version, tc.want)
		}
		wantObject(t, s, tc.o)
	}

	// The name is taken in its kind only.
	err := s.Update(context.Background(), func(tx fleetcert.Tx) error {
		return tx.CreateObject(context.Background(), newObject(scopeA, fleetcert.ObjectThing, "sensor-7", "other"))
	})
	wantCode(t, err, fleetcert.EResourceAlreadyExists, "create a thing whose name is taken")
	wantObject(t, s, thing)
	group := newObject(scopeA, fleetcert.ObjectThingGroup, "sensor-7", "")
	createObjects(t, s, group)
	wantObject(t, s, group)

	// A refused create leaves the transaction usable: the Registry may
	// carry on (or CopyStore merge) after ResourceAlreadyExists.
	ctx := context.Background()
	later := newObject(scopeA, fleetcert.ObjectThing, "later", "")
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateObject(ctx, newObject(scopeA, fleetcert.ObjectThing, "sensor-7", "")); fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
			return fmt.Errorf("create a taken name: %v, want ResourceAlreadyExistsException", err)
		}
		return tx.CreateObject(ctx, later)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantObject(t, s, later)

	for _, tc := range []struct {
		scope fleetcert.Scope
		kind  fleetcert.ObjectKind
		name  string
	}{
		{scopeA, fleetcert.ObjectThing, "missing"},
		{scopeA, fleetcert.ObjectThing, "Sensor-7"},       // names are case-sensitive
		{scopeA, fleetcert.ObjectThingType, "sensor-7"},   // another kind
		{scopeB, fleetcert.ObjectThing, "sensor-7"},       // another account
		{scopeARegion, fleetcert.ObjectThing, "sensor-7"}, // another region
	} {
		_, err := getObject(s, tc.scope, tc.kind, tc.name)
		wantCode(t, err, fleetcert.EResourceNotFound, fmt.Sprintf("get %s %q of %v", tc.kind, tc.name, tc.scope))
	}
}

func testObjectUpdate(t *testing.T, s fleetcert.Store) {
	o := newObject(scopeA, fleetcert.ObjectThing, "sensor-7", "type-1")
	createObjects(t, s, o)

	u := *o
	u.Label = "type-2"
	u.Body = []byte(`{"attributes":{"a":"b"}}`)
	u.LastModifiedDate = baseTime.Add(time.Hour)
	u.CreationDate = baseTime.Add(time.Hour) // not replaced
	if err := updateObject(s, &u); err != nil {
		t.Fatalf("UpdateObject: %v", err)
	}
	if u.Version != 2 {
		t.Fatalf("UpdateObject set Version %d, want 2", u.Version)
	}
	want := u
	want.CreationDate = o.CreationDate
	wantObject(t, s, &want)

	// Emptied body and label.
	u2 := want
	u2.Label, u2.Body = "", []byte{}
	if err := updateObject(s, &u2); err != nil {
		t.Fatalf("UpdateObject: %v", err)
	}
	want = u2
	want.Body = nil
	want.Version = 3
	wantObject(t, s, &want)

	// A writer that read an older version changes nothing.
	stale := *o // Version 1
	stale.Label = "stale"
	err := updateObject(s, &stale)
	wantCode(t, err, fleetcert.EVersionConflict, "update with a stale version")
	ahead := want
	ahead.Version = 9
	wantCode(t, updateObject(s, &ahead), fleetcert.EVersionConflict, "update with a version ahead")
	if stale.Version != 1 || ahead.Version != 9 {
		t.Fatalf("a refused update changed the caller's Version: %d, %d", stale.Version, ahead.Version)
	}
	wantObject(t, s, &want)

	// Not found: another name, kind, account or region.
	for _, o := range []*fleetcert.Object{
		newObject(scopeA, fleetcert.ObjectThing, "missing", ""),
		newObject(scopeA, fleetcert.ObjectThingType, "sensor-7", ""),
		newObject(scopeB, fleetcert.ObjectThing, "sensor-7", ""),
		newObject(scopeARegion, fleetcert.ObjectThing, "sensor-7", ""),
	} {
		o.Version = 3
		wantCode(t, updateObject(s, o), fleetcert.EResourceNotFound, fmt.Sprintf("update %s %q of %v", o.Kind, o.Name, o.Scope))
		if _, err := getObject(s, o.Scope, o.Kind, o.Name); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("a refused update created %s %q of %v: %v", o.Kind, o.Name, o.Scope, err)
		}
	}
	wantObject(t, s, &want)
}

// testObjectUpdateConcurrent: of writers that read one version, exactly
// one updates the object; the others get VersionConflictException.
func testObjectUpdateConcurrent(t *testing.T, s fleetcert.Store) {
	o := newObject(scopeA, fleetcert.ObjectThing, "sensor-7", "")
	createObjects(t, s, o)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := *o
			u.Body = fmt.Appendf(nil, `{"writer":%d}`, i)
			errs[i] = updateObject(s, &u)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch fleetcert.ErrorCode(err) {
		case "":
			if winner >= 0 {
				t.Fatalf("writers %d and %d both updated version 1", winner, i)
			}
			winner = i
		case fleetcert.EVersionConflict:
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer updated the object")
	}
	got, err := getObject(s, o.Scope, o.Kind, o.Name)
	if err != nil || got.Version != 2 || string(got.Body) != fmt.Sprintf(`{"writer":%d}`, winner) {
		t.Fatalf("after the race: %+v, %v; want version 2 with writer %d's body", got, err, winner)
	}
}

func testObjectDelete(t *testing.T, s fleetcert.Store) {
	o := newObject(scopeA, fleetcert.ObjectPolicy, "p", "")
	kept := newObject(scopeA, fleetcert.ObjectPolicy, "p2", "")
	createObjects(t, s, o, kept)
	for _, tc := range []struct {
		scope fleetcert.Scope
		kind  fleetcert.ObjectKind
		name  string
	}{
		{scopeB, fleetcert.ObjectPolicy, "p"},
		{scopeARegion, fleetcert.ObjectPolicy, "p"},
		{scopeA, fleetcert.ObjectThing, "p"},
		{scopeA, fleetcert.ObjectPolicy, "P"},
	} {
		err := deleteObject(s, tc.scope, tc.kind, tc.name)
		wantCode(t, err, fleetcert.EResourceNotFound, fmt.Sprintf("delete %s %q of %v", tc.kind, tc.name, tc.scope))
	}
	wantObject(t, s, o)
	if err := deleteObject(s, scopeA, fleetcert.ObjectPolicy, "p"); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	_, err := getObject(s, scopeA, fleetcert.ObjectPolicy, "p")
	wantCode(t, err, fleetcert.EResourceNotFound, "get a deleted object")
	wantCode(t, deleteObject(s, scopeA, fleetcert.ObjectPolicy, "p"), fleetcert.EResourceNotFound, "delete twice")
	if got := listObjects(t, s, fleetcert.ObjectQuery{Scope: scopeA, Kind: fleetcert.ObjectPolicy, Limit: 10}); !reflect.DeepEqual(got, []string{"p2"}) {
		t.Fatalf("after the delete the policies are %q, want [p2]", got)
	}
	wantObject(t, s, kept)

	// The name is free again, at version 1.
	again := newObject(scopeA, fleetcert.ObjectPolicy, "p", "")
	createObjects(t, s, again)
	if again.Version != 1 {
		t.Fatalf("recreated object has version %d, want 1", again.Version)
	}
}

// objectNames are names whose byte-wise order differs from a
// locale's: case, punctuation, multi-byte runes, the largest rune.
var objectNames = []string{
	"a", "A", "a-b", "a_b", "ab", "a.b", "B", "b", "a-", "a-b-c", "Z",
	"é", "e", "z", "{", "z\U0010FFFF", "z\U0010FFFFa", "日本", "\u00bf", "\u00c0",
}

func testObjectList(t *testing.T, s fleetcert.Store) {
	var objects []*fleetcert.Object
	for i, name := range objectNames {
		label := "type-even"
		if i%2 == 1 {
			label = "type-odd"
		}
		objects = append(objects, newObject(scopeA, fleetcert.ObjectThing, name, label))
	}
	// Noise: the same names in another kind, account and region.
	objects = append(objects,
		newObject(scopeA, fleetcert.ObjectThingType, "a", "type-even"),
		newObject(scopeB, fleetcert.ObjectThing, "a0", "type-even"),
		newObject(scopeARegion, fleetcert.ObjectThing, "a0", "type-even"))
	createObjects(t, s, objects...)

	sorted := func(names ...string) []string {
		out := append([]string{}, names...)
		sort.Strings(out) // byte-wise
		return out
	}
	labelled := func(label string) []string {
		var out []string
		for i, name := range objectNames {
			if (i%2 == 1) == (label == "type-odd") {
				out = append(out, name)
			}
		}
		return sorted(out...)
	}
	all := sorted(objectNames...)
	q := fleetcert.ObjectQuery{Scope: scopeA, Kind: fleetcert.ObjectThing}
	with := func(f func(*fleetcert.ObjectQuery)) fleetcert.ObjectQuery {
		q := q
		f(&q)
		return q
	}
	for _, tc := range []struct {
		name string
		q    fleetcert.ObjectQuery
		want []string
	}{
		{"all", q, all},
		{"label", with(func(q *fleetcert.ObjectQuery) { q.Label = "type-odd" }), labelled("type-odd")},
		{"label-none", with(func(q *fleetcert.ObjectQuery) { q.Label = "type-none" }), nil},
		{"prefix-a", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "a" }), sorted("a", "a-b", "a_b", "ab", "a.b", "a-", "a-b-c")},
		{"prefix-case", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "A" }), []string{"A"}},
		{"prefix-a-", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "a-" }), []string{"a-", "a-b", "a-b-c"}},
		{"prefix-whole-name", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "a-b" }), []string{"a-b", "a-b-c"}},
		{"prefix-z", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "z" }), []string{"z", "z\U0010FFFF", "z\U0010FFFFa"}},
		{"prefix-max-rune", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "z\U0010FFFF" }), []string{"z\U0010FFFF", "z\U0010FFFFa"}},
		{"prefix-multibyte", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "\u00bf" }), []string{"\u00bf"}},
		{"prefix-none", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix = "q" }), nil},
		{"after", with(func(q *fleetcert.ObjectQuery) { q.After = "a-b" }), all[indexOf(all, "a-b")+1:]},
		{"after-missing-name", with(func(q *fleetcert.ObjectQuery) { q.After = "a-a" }), all[indexOf(all, "a-b"):]},
		{"after-last", with(func(q *fleetcert.ObjectQuery) { q.After = all[len(all)-1] }), nil},
		{"prefix-after", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix, q.After = "a", "a-b" }), []string{"a-b-c", "a.b", "a_b", "ab"}},
		{"after-below-prefix", with(func(q *fleetcert.ObjectQuery) { q.NamePrefix, q.After = "a-", "A" }), []string{"a-", "a-b", "a-b-c"}},
		{"label-prefix-after", with(func(q *fleetcert.ObjectQuery) { q.Label, q.NamePrefix, q.After = "type-even", "a", "a" }),
			intersect(labelled("type-even"), []string{"a-b", "a_b", "a.b", "a-", "a-b-c", "ab"})},
		{"other-kind", with(func(q *fleetcert.ObjectQuery) { q.Kind = fleetcert.ObjectThingType }), []string{"a"}},
		{"other-account", with(func(q *fleetcert.ObjectQuery) { q.Scope = scopeB }), []string{"a0"}},
		{"other-region", with(func(q *fleetcert.ObjectQuery) { q.Scope = scopeARegion }), []string{"a0"}},
		{"no-such-kind", with(func(q *fleetcert.ObjectQuery) { q.Kind = fleetcert.ObjectPolicy }), nil},
	} {
		if tc.want == nil {
			tc.want = []string{}
		}
		tc.q.Limit = 100
		if got := listObjects(t, s, tc.q); !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: ListObjects(%+v) = %q, want %q", tc.name, tc.q, got, tc.want)
		}
		// Paging gives the same, a page at a time.
		for _, size := range []int{1, 3} {
			pq := tc.q
			if got := listAllObjects(t, s, pq, size); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s: pages of %d = %q, want %q", tc.name, size, got, tc.want)
			}
		}
	}
	if got := listObjects(t, s, with(func(q *fleetcert.ObjectQuery) { q.Limit = 2 })); !reflect.DeepEqual(got, all[:2]) {
		t.Fatalf("limit 2: %q, want %q", got, all[:2])
	}
	if got := listObjects(t, s, q); len(got) != 0 {
		t.Fatalf("limit 0 listed %q", got)
	}
	// Listed objects carry every field.
	got := listObjectRecords(t, s, with(func(q *fleetcert.ObjectQuery) { q.NamePrefix, q.Limit = "a-b-c", 1 }))
	want := objects[indexOf(objectNames, "a-b-c")]
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("listed object %+v, want %+v", got, want)
	}
}

// testObjectListFollowsUpdates: a label filter lists what the object's
// label is now.
func testObjectListFollowsUpdates(t *testing.T, s fleetcert.Store) {
	o := newObject(scopeA, fleetcert.ObjectThing, "t", "type-1")
	createObjects(t, s, o)
	q := fleetcert.ObjectQuery{Scope: scopeA, Kind: fleetcert.ObjectThing, Label: "type-1", Limit: 10}
	if got := listObjects(t, s, q); !reflect.DeepEqual(got, []string{"t"}) {
		t.Fatalf("label type-1: %q", got)
	}
	o.Label = "type-2"
	if err := updateObject(s, o); err != nil {
		t.Fatal(err)
	}
	if got := listObjects(t, s, q); len(got) != 0 {
		t.Fatalf("label type-1 after the update: %q", got)
	}
	q.Label = "type-2"
	if got := listObjects(t, s, q); !reflect.DeepEqual(got, []string{"t"}) {
		t.Fatalf("label type-2 after the update: %q", got)
	}
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	panic("no " + name)
}

// intersect returns the names of a (in a's order) that are in b.
func intersect(a, b []string) []string {
	out := []string{}
	for _, n := range a {
		for _, m := range b {
			if n == m {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// newLink returns a link of scope and kind, created at baseTime.
func newLink(scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) *fleetcert.Link {
	return &fleetcert.Link{Scope: scope, Kind: kind, From: from, To: to,
		Body: []byte(`{"type":"EXCLUSIVE_THING"}`), CreationDate: baseTime}
}

// getLink returns the link, or the store's error.
func getLink(s fleetcert.Store, scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) (*fleetcert.Link, error) {
	ctx := context.Background()
	var l *fleetcert.Link
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		l, err = tx.Link(ctx, scope, kind, from, to)
		return err
	})
	return l, err
}

// wantLink fails tb unless the store holds want, every field equal.
func wantLink(tb testing.TB, s fleetcert.Store, want *fleetcert.Link) {
	tb.Helper()
	got, err := getLink(s, want.Scope, want.Kind, want.From, want.To)
	if err != nil {
		tb.Fatalf("get link %s %q → %q: %v", want.Kind, want.From, want.To, err)
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("link differs:\n got %+v\nwant %+v", *got, *want)
	}
}

// deleteLink runs DeleteLink in its own Update.
func deleteLink(s fleetcert.Store, scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) error {
	ctx := context.Background()
	return s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteLink(ctx, scope, kind, from, to) })
}

// listLinks runs ListLinks in a View and returns "from→to" of each link.
func listLinks(tb testing.TB, s fleetcert.Store, q fleetcert.LinkQuery) []string {
	tb.Helper()
	ctx := context.Background()
	var links []*fleetcert.Link
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		links, err = tx.ListLinks(ctx, q)
		return err
	})
	if err != nil {
		tb.Fatalf("list links %+v: %v", q, err)
	}
	if len(links) > max(q.Limit, 0) {
		tb.Fatalf("list links %+v: %d links, more than the limit", q, len(links))
	}
	out := []string{}
	for _, l := range links {
		out = append(out, l.From+"→"+l.To)
	}
	return out
}

func testLinkCreateGetDelete(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	arn := fleetcert.CertificateARN(scopeA, certificateID("c"))
	l := newLink(scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn)
	bare := newLink(scopeA, fleetcert.LinkPolicyTarget, "p", arn)
	bare.Body = nil
	createLinks(t, s, l, bare)
	wantLink(t, s, l)
	wantLink(t, s, bare)

	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		return tx.CreateLink(ctx, newLink(scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn))
	})
	wantCode(t, err, fleetcert.EResourceAlreadyExists, "create a link twice")
	wantLink(t, s, l)
	// A refused create leaves the transaction usable.
	other := newLink(scopeA, fleetcert.LinkThingPrincipal, "sensor-8", arn)
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateLink(ctx, newLink(scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn)); fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
			return fmt.Errorf("create a taken link: %v, want ResourceAlreadyExistsException", err)
		}
		return tx.CreateLink(ctx, other)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantLink(t, s, other)

	for _, tc := range []struct {
		scope    fleetcert.Scope
		kind     fleetcert.LinkKind
		from, to string
	}{
		{scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn + "x"},
		{scopeA, fleetcert.LinkThingPrincipal, "Sensor-7", arn},
		{scopeA, fleetcert.LinkThingPrincipal, arn, "sensor-7"}, // reversed
		{scopeA, fleetcert.LinkThingGroup, "sensor-7", arn},
		{scopeB, fleetcert.LinkThingPrincipal, "sensor-7", arn},
		{scopeARegion, fleetcert.LinkThingPrincipal, "sensor-7", arn},
	} {
		what := fmt.Sprintf("link %s %q → %q of %v", tc.kind, tc.from, tc.to, tc.scope)
		_, err := getLink(s, tc.scope, tc.kind, tc.from, tc.to)
		wantCode(t, err, fleetcert.EResourceNotFound, "get "+what)
		wantCode(t, deleteLink(s, tc.scope, tc.kind, tc.from, tc.to), fleetcert.EResourceNotFound, "delete "+what)
	}
	wantLink(t, s, l)

	if err := deleteLink(s, scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn); err != nil {
		t.Fatalf("DeleteLink: %v", err)
	}
	_, err = getLink(s, scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn)
	wantCode(t, err, fleetcert.EResourceNotFound, "get a deleted link")
	wantCode(t, deleteLink(s, scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn), fleetcert.EResourceNotFound, "delete twice")
	wantLink(t, s, bare)
	wantLink(t, s, other)
	createLinks(t, s, newLink(scopeA, fleetcert.LinkThingPrincipal, "sensor-7", arn)) // free again
}

func testListLinks(t *testing.T, s fleetcert.Store) {
	const kind = fleetcert.LinkThingGroup
	// Things (From) in groups (To), names differing in case and
	// punctuation; byte-wise: "G" < "g" < "g-1" < "g_1" < "g1".
	createLinks(t, s,
		newLink(scopeA, kind, "t1", "g"),
		newLink(scopeA, kind, "t1", "G"),
		newLink(scopeA, kind, "t1", "g_1"),
		newLink(scopeA, kind, "t1", "g-1"),
		newLink(scopeA, kind, "t1", "g1"),
		newLink(scopeA, kind, "T1", "g"),
		newLink(scopeA, kind, "t-1", "g"),
		newLink(scopeA, kind, "t2", "g"),
		newLink(scopeA, kind, "t2", "G"),
		// Noise: another kind, account, region.
		newLink(scopeA, fleetcert.LinkThingPrincipal, "t1", "g"),
		newLink(scopeB, kind, "t1", "g"),
		newLink(scopeARegion, kind, "t9", "g"),
	)
	q := fleetcert.LinkQuery{Scope: scopeA, Kind: kind, Limit: 100}
	with := func(f func(*fleetcert.LinkQuery)) fleetcert.LinkQuery {
		q := q
		f(&q)
		return q
	}
	for _, tc := range []struct {
		name string
		q    fleetcert.LinkQuery
		want []string
	}{
		{"from", with(func(q *fleetcert.LinkQuery) { q.From = "t1" }), []string{"t1→G", "t1→g", "t1→g-1", "t1→g1", "t1→g_1"}},
		{"from-after", with(func(q *fleetcert.LinkQuery) { q.From, q.After = "t1", "g" }), []string{"t1→g-1", "t1→g1", "t1→g_1"}},
		{"from-after-missing", with(func(q *fleetcert.LinkQuery) { q.From, q.After = "t1", "g0" }), []string{"t1→g1", "t1→g_1"}},
		{"from-limit", with(func(q *fleetcert.LinkQuery) { q.From, q.Limit = "t1", 2 }), []string{"t1→G", "t1→g"}},
		{"from-none", with(func(q *fleetcert.LinkQuery) { q.From = "t3" }), nil},
		{"to", with(func(q *fleetcert.LinkQuery) { q.To = "g" }), []string{"T1→g", "t-1→g", "t1→g", "t2→g"}},
		{"to-after", with(func(q *fleetcert.LinkQuery) { q.To, q.After = "g", "t-1" }), []string{"t1→g", "t2→g"}},
		{"to-limit", with(func(q *fleetcert.LinkQuery) { q.To, q.After, q.Limit = "g", "T1", 1 }), []string{"t-1→g"}},
		{"to-case", with(func(q *fleetcert.LinkQuery) { q.To = "G" }), []string{"t1→G", "t2→G"}},
		{"both", with(func(q *fleetcert.LinkQuery) { q.From, q.To = "t1", "g-1" }), []string{"t1→g-1"}},
		{"both-none", with(func(q *fleetcert.LinkQuery) { q.From, q.To = "t2", "g-1" }), nil},
		{"neither", q, []string{"T1→g", "t-1→g", "t1→G", "t1→g", "t1→g-1", "t1→g1", "t1→g_1", "t2→G", "t2→g"}},
		{"neither-after-ignored", with(func(q *fleetcert.LinkQuery) { q.After, q.Limit = "t2", 3 }), []string{"T1→g", "t-1→g", "t1→G"}},
		{"other-kind", with(func(q *fleetcert.LinkQuery) { q.Kind = fleetcert.LinkThingPrincipal }), []string{"t1→g"}},
		{"other-account", with(func(q *fleetcert.LinkQuery) { q.Scope = scopeB }), []string{"t1→g"}},
		{"other-account-from", with(func(q *fleetcert.LinkQuery) { q.Scope, q.From = scopeB, "t2" }), nil},
		{"other-region-to", with(func(q *fleetcert.LinkQuery) { q.Scope, q.To = scopeARegion, "g" }), []string{"t9→g"}},
		{"limit-0", with(func(q *fleetcert.LinkQuery) { q.From, q.Limit = "t1", 0 }), nil},
	} {
		if tc.want == nil {
			tc.want = []string{}
		}
		if got := listLinks(t, s, tc.q); !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: ListLinks(%+v) = %q, want %q", tc.name, tc.q, got, tc.want)
		}
	}

	// Paging from one record and to one record, a link at a time.
	for _, tc := range []struct {
		q    fleetcert.LinkQuery
		want []string
	}{
		{with(func(q *fleetcert.LinkQuery) { q.From = "t1" }), []string{"t1→G", "t1→g", "t1→g-1", "t1→g1", "t1→g_1"}},
		{with(func(q *fleetcert.LinkQuery) { q.To = "g" }), []string{"T1→g", "t-1→g", "t1→g", "t2→g"}},
	} {
		got := []string{}
		pq := tc.q
		pq.Limit = 1
		for range 10 {
			page := listLinks(t, s, pq)
			got = append(got, page...)
			if len(page) == 0 {
				break
			}
			// The page's key on the free side is the cursor.
			from, to, _ := strings.Cut(page[0], "→")
			if pq.From != "" {
				pq.After = to
			} else {
				pq.After = from
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("paging %+v: %q, want %q", tc.q, got, tc.want)
		}
	}
}

// testObjectChanges: the feed's object and link entries keep Resource and
// Target.
func testObjectChanges(t *testing.T, s fleetcert.Store) {
	arn := fleetcert.CertificateARN(scopeA, certificateID("c"))
	want := []*fleetcert.Change{
		{Kind: fleetcert.ChangeObjectCreated, Scope: scopeA, Resource: "thing/sensor-7", Time: baseTime},
		{Kind: fleetcert.ChangeObjectUpdated, Scope: scopeA, Resource: "policy/p ✓", Time: baseTime.Add(time.Millisecond)},
		{Kind: fleetcert.ChangeLinkCreated, Scope: scopeB, Resource: "thing-principal/sensor-7", Target: arn, Time: baseTime.Add(2 * time.Millisecond)},
		{Kind: fleetcert.ChangeLinkDeleted, Scope: scopeARegion, Resource: "policy-target/p", Target: arn, Time: baseTime.Add(3 * time.Millisecond)},
		{Kind: fleetcert.ChangeObjectDeleted, Scope: scopeA, Resource: "thinggroup/g", Time: baseTime.Add(4 * time.Millisecond)},
		newChange(scopeA, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive, baseTime.Add(5*time.Millisecond)),
	}
	appendChanges(t, s, want[0], want[1])
	appendChanges(t, s, want[2:]...)
	got := changes(t, s, 0, 100)
	if len(got) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], *want[i]) {
			t.Fatalf("change %d:\n got %+v\nwant %+v", i, got[i], *want[i])
		}
	}
}

// testObjectWriteInView: object and link writes fail in a View and store
// nothing.
func testObjectWriteInView(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	o := newObject(scopeA, fleetcert.ObjectThing, "t", "")
	l := newLink(scopeA, fleetcert.LinkThingGroup, "t", "g")
	createObjects(t, s, o)
	createLinks(t, s, l)
	u := *o
	u.Label = "changed"
	for _, tc := range []struct {
		name string
		fn   func(tx fleetcert.Tx) error
	}{
		{"CreateObject", func(tx fleetcert.Tx) error {
			return tx.CreateObject(ctx, newObject(scopeA, fleetcert.ObjectThing, "v", ""))
		}},
		{"UpdateObject", func(tx fleetcert.Tx) error { return tx.UpdateObject(ctx, &u) }},
		{"DeleteObject", func(tx fleetcert.Tx) error { return tx.DeleteObject(ctx, scopeA, o.Kind, o.Name) }},
		{"CreateLink", func(tx fleetcert.Tx) error { return tx.CreateLink(ctx, newLink(scopeA, l.Kind, "v", "g")) }},
		{"DeleteLink", func(tx fleetcert.Tx) error { return tx.DeleteLink(ctx, scopeA, l.Kind, l.From, l.To) }},
	} {
		if err := s.View(ctx, tc.fn); err == nil {
			t.Fatalf("%s in View succeeded, want an error", tc.name)
		}
	}
	wantObject(t, s, o)
	wantLink(t, s, l)
	_, err := getObject(s, scopeA, fleetcert.ObjectThing, "v")
	wantCode(t, err, fleetcert.EResourceNotFound, "get an object created in a View")
	_, err = getLink(s, scopeA, l.Kind, "v", "g")
	wantCode(t, err, fleetcert.EResourceNotFound, "get a link created in a View")
}

// testObjectRollsBack: an Update that fails leaves objects and links as
// they were.
func testObjectRollsBack(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	o := newObject(scopeA, fleetcert.ObjectThing, "t", "")
	gone := newObject(scopeA, fleetcert.ObjectThing, "gone", "")
	l := newLink(scopeA, fleetcert.LinkThingGroup, "t", "g")
	createObjects(t, s, o, gone)
	createLinks(t, s, l)
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		u := *o
		u.Body = []byte("changed")
		if err := tx.UpdateObject(ctx, &u); err != nil {
			return err
		}
		if err := tx.DeleteObject(ctx, scopeA, gone.Kind, gone.Name); err != nil {
			return err
		}
		if err := tx.CreateObject(ctx, newObject(scopeA, fleetcert.ObjectThing, "added", "")); err != nil {
			return err
		}
		if err := tx.DeleteLink(ctx, scopeA, l.Kind, l.From, l.To); err != nil {
			return err
		}
		if err := tx.CreateLink(ctx, newLink(scopeA, l.Kind, "added", "g")); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want %v", err, errBoom)
	}
	wantObject(t, s, o)
	wantObject(t, s, gone)
	wantLink(t, s, l)
	_, err = getObject(s, scopeA, fleetcert.ObjectThing, "added")
	wantCode(t, err, fleetcert.EResourceNotFound, "object of a failed Update")
	_, err = getLink(s, scopeA, l.Kind, "added", "g")
	wantCode(t, err, fleetcert.EResourceNotFound, "link of a failed Update")
}
