package fleetcert_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

var otherScope = fleetcert.Scope{AccountID: "210987654321", Region: "us-east-1"}

// mustCert registers a fresh INACTIVE certificate in s and returns it.
func mustCert(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope) *fleetcert.Certificate {
	t.Helper()
	c, err := reg.RegisterCertificateWithoutCA(context.Background(), s, testpki.Leaf(t).PEM, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := fleetcert.ErrorCode(err); got != code {
		t.Fatalf("got %v (%s), want %s", err, got, code)
	}
}

// recordingStore keeps every change the Registry appends, as appended
// (whatever the store keeps of them).
type recordingStore struct {
	fleetcert.Store
	changes []fleetcert.Change
}

type recordingTx struct {
	fleetcert.Tx
	s       *recordingStore
	pending *[]fleetcert.Change
}

func (t recordingTx) AppendChange(ctx context.Context, ch *fleetcert.Change) error {
	*t.pending = append(*t.pending, *ch)
	return t.Tx.AppendChange(ctx, ch)
}

func (s *recordingStore) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	var pending []fleetcert.Change
	err := s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		pending = pending[:0]
		return fn(recordingTx{tx, s, &pending})
	})
	if err == nil {
		s.changes = append(s.changes, pending...)
	}
	return err
}

// mustOpenRecordingRegistry is mustOpenRegistry with its changes recorded.
func mustOpenRecordingRegistry(t *testing.T) (*fleetcert.Registry, *recordingStore) {
	t.Helper()
	reg, _ := mustOpenRegistry(t)
	rec := &recordingStore{Store: reg.Store}
	reg.Store = rec
	return reg, rec
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestThings(t *testing.T) {
	ctx := context.Background()
	reg, rec := mustOpenRecordingRegistry(t)
	attrs := &fleetcert.AttributePayload{Attributes: map[string]string{"a": "1", "b": "2"}}
	th, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "lamp-1", AttributePayload: attrs})
	must(t, err)
	if th.Version != 1 || len(th.ID) != 36 || th.ARN() != "arn:aws:iot:us-east-1:123456789012:thing/lamp-1" {
		t.Fatalf("created %+v", th)
	}
	again, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "lamp-1", AttributePayload: attrs})
	if err != nil || again.ID != th.ID {
		t.Fatalf("same configuration again: %+v %v", again, err)
	}
	_, err = reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "lamp-1"})
	wantCode(t, err, fleetcert.EResourceAlreadyExists)

	for _, tt := range []struct {
		name string
		in   fleetcert.CreateThingInput
		code string
	}{
		{"fail/empty name", fleetcert.CreateThingInput{}, fleetcert.EInvalidRequest},
		{"fail/name pattern", fleetcert.CreateThingInput{Name: "a b"}, fleetcert.EInvalidRequest},
		{"fail/name too long", fleetcert.CreateThingInput{Name: strings.Repeat("a", 129)}, fleetcert.EInvalidRequest},
		{"fail/four attributes without a type", fleetcert.CreateThingInput{Name: "x", AttributePayload: &fleetcert.AttributePayload{
			Attributes: map[string]string{"a": "1", "b": "1", "c": "1", "d": "1"}}}, fleetcert.EInvalidRequest},
		{"fail/attribute value pattern", fleetcert.CreateThingInput{Name: "x", AttributePayload: &fleetcert.AttributePayload{
			Attributes: map[string]string{"a": "white space"}}}, fleetcert.EInvalidRequest},
		{"fail/unknown type", fleetcert.CreateThingInput{Name: "x", TypeName: "nope"}, fleetcert.EResourceNotFound},
		{"fail/billing group", fleetcert.CreateThingInput{Name: "x", BillingGroupName: "b"}, fleetcert.EInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reg.CreateThing(ctx, scope, tt.in)
			wantCode(t, err, tt.code)
		})
	}

	// UpdateThing: merge, removal by empty value, expectedVersion.
	must(t, reg.UpdateThing(ctx, scope, fleetcert.UpdateThingInput{Name: "lamp-1",
		AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"a": "", "c": "3"}, Merge: true}}))
	got, err := reg.DescribeThing(ctx, scope, "lamp-1")
	must(t, err)
	if got.Version != 2 || len(got.Attributes) != 2 || got.Attributes["b"] != "2" || got.Attributes["c"] != "3" {
		t.Fatalf("after merge: %+v", got)
	}
	old := int64(1)
	wantCode(t, reg.UpdateThing(ctx, scope, fleetcert.UpdateThingInput{Name: "lamp-1", ExpectedVersion: &old}), fleetcert.EVersionConflict)
	must(t, reg.UpdateThing(ctx, scope, fleetcert.UpdateThingInput{Name: "lamp-1",
		AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"z": "9"}}}))
	if got, _ := reg.DescribeThing(ctx, scope, "lamp-1"); len(got.Attributes) != 1 || got.Attributes["z"] != "9" {
		t.Fatalf("after replace: %+v", got)
	}

	// Cross-account names are not found.
	_, err = reg.DescribeThing(ctx, otherScope, "lamp-1")
	wantCode(t, err, fleetcert.EResourceNotFound)

	// DeleteThing: unknown is a success; wrong version conflicts.
	must(t, reg.DeleteThing(ctx, scope, "never", nil))
	wantCode(t, reg.DeleteThing(ctx, scope, "lamp-1", &old), fleetcert.EVersionConflict)
	must(t, reg.DeleteThing(ctx, scope, "lamp-1", nil))
	_, err = reg.DescribeThing(ctx, scope, "lamp-1")
	wantCode(t, err, fleetcert.EResourceNotFound)

	var kinds []string
	for _, ch := range rec.changes {
		if strings.HasPrefix(string(ch.Kind), "object.") {
			kinds = append(kinds, string(ch.Kind)+" "+ch.Resource)
		}
	}
	want := []string{"object.created thing/lamp-1", "object.updated thing/lamp-1", "object.updated thing/lamp-1", "object.deleted thing/lamp-1"}
	if !slices.Equal(kinds, want) {
		t.Errorf("changes %q, want %q", kinds, want)
	}
}

func TestListThingsFilterAndPages(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	_, err := reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "bulb"})
	must(t, err)
	for i := range 7 {
		in := fleetcert.CreateThingInput{Name: fmt.Sprintf("t%d", i),
			AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"color": fmt.Sprintf("red%d", i%2)}}}
		if i >= 5 {
			in.TypeName = "bulb"
		}
		_, err := reg.CreateThing(ctx, scope, in)
		must(t, err)
	}
	list := func(f fleetcert.ThingFilter, size int) []string {
		var names []string
		opts := fleetcert.RegistryListOptions{MaxResults: &size}
		for {
			page, err := reg.ListThings(ctx, scope, f, opts)
			must(t, err)
			if len(page.Things) > size {
				t.Fatalf("page of %d", len(page.Things))
			}
			for _, th := range page.Things {
				names = append(names, th.Name)
			}
			if page.NextToken == "" {
				return names
			}
			opts.NextToken = page.NextToken
		}
	}
	for _, tt := range []struct {
		name string
		f    fleetcert.ThingFilter
		want []string
	}{
		{"ok/all", fleetcert.ThingFilter{}, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"}},
		{"ok/attribute", fleetcert.ThingFilter{AttributeName: "color", AttributeValue: "red1"}, []string{"t1", "t3", "t5"}},
		{"ok/attribute prefix", fleetcert.ThingFilter{AttributeName: "color", AttributeValue: "red", UsePrefixAttributeValue: true}, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"}},
		{"ok/type", fleetcert.ThingFilter{TypeName: "bulb"}, []string{"t5", "t6"}},
		{"ok/name prefix", fleetcert.ThingFilter{NamePrefix: "t5"}, []string{"t5"}},
		{"ok/name prefix and type", fleetcert.ThingFilter{NamePrefix: "t", TypeName: "bulb"}, []string{"t5", "t6"}},
		{"ok/name prefix, none", fleetcert.ThingFilter{NamePrefix: "u"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 250} {
				if got := list(tt.f, size); !slices.Equal(got, tt.want) {
					t.Errorf("size %d: %v, want %v", size, got, tt.want)
				}
			}
		})
	}
	bad := 0
	_, err = reg.ListThings(ctx, scope, fleetcert.ThingFilter{}, fleetcert.RegistryListOptions{MaxResults: &bad})
	wantCode(t, err, fleetcert.EInvalidRequest)
	_, err = reg.ListThings(ctx, scope, fleetcert.ThingFilter{}, fleetcert.RegistryListOptions{NextToken: "garbage"})
	wantCode(t, err, fleetcert.EInvalidRequest)
}

func TestThingTypes(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	_, err := reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "bulb", Description: "a bulb", SearchableAttributes: []string{"w"}})
	must(t, err)
	_, err = reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "bulb"})
	wantCode(t, err, fleetcert.EResourceAlreadyExists)
	_, err = reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "x", SearchableAttributes: []string{"a", "b", "c", "d"}})
	wantCode(t, err, fleetcert.EInvalidRequest)

	// Up to 50 attributes with a type.
	many := map[string]string{}
	for i := range 50 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	_, err = reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "typed", TypeName: "bulb", AttributePayload: &fleetcert.AttributePayload{Attributes: many}})
	must(t, err)
	// Removing the type leaves 50 attributes for a thing allowed 3.
	wantCode(t, reg.UpdateThing(ctx, scope, fleetcert.UpdateThingInput{Name: "typed", RemoveThingType: true}), fleetcert.EInvalidRequest)

	wantCode(t, reg.DeleteThingType(ctx, scope, "bulb"), fleetcert.EInvalidRequest) // not deprecated
	must(t, reg.DeprecateThingType(ctx, scope, "bulb", false))
	tt, err := reg.DescribeThingType(ctx, scope, "bulb")
	must(t, err)
	if !tt.Deprecated || !tt.DeprecationDate.Equal(clk.t) || tt.Description != "a bulb" {
		t.Fatalf("deprecated: %+v", tt)
	}
	_, err = reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "new", TypeName: "bulb"})
	wantCode(t, err, fleetcert.EInvalidRequest)

	clk.advance(fleetcert.ThingTypeDeleteDelay - time.Second)
	wantCode(t, reg.DeleteThingType(ctx, scope, "bulb"), fleetcert.EInvalidRequest) // too soon
	clk.advance(time.Second)
	wantCode(t, reg.DeleteThingType(ctx, scope, "bulb"), fleetcert.EInvalidRequest) // a thing has it
	must(t, reg.DeleteThing(ctx, scope, "typed", nil))
	must(t, reg.DeleteThingType(ctx, scope, "bulb"))
	wantCode(t, reg.DeleteThingType(ctx, scope, "bulb"), fleetcert.EResourceNotFound)

	// Undeprecate makes it usable again.
	_, err = reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "lamp"})
	must(t, err)
	must(t, reg.DeprecateThingType(ctx, scope, "lamp", false))
	must(t, reg.DeprecateThingType(ctx, scope, "lamp", true))
	_, err = reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "new", TypeName: "lamp"})
	must(t, err)
	page, err := reg.ListThingTypes(ctx, scope, "", fleetcert.RegistryListOptions{})
	must(t, err)
	if len(page.ThingTypes) != 1 || page.ThingTypes[0].Name != "lamp" {
		t.Fatalf("types %+v", page.ThingTypes)
	}
}

func TestThingGroups(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	parent := ""
	for i := range fleetcert.MaxThingGroupDepth {
		name := fmt.Sprintf("g%d", i)
		_, err := reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: name, ParentName: parent})
		must(t, err)
		parent = name
	}
	_, err := reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: "too-deep", ParentName: parent})
	wantCode(t, err, fleetcert.EInvalidRequest)
	_, err = reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: "orphan", ParentName: "nope"})
	wantCode(t, err, fleetcert.EResourceNotFound)

	g, err := reg.DescribeThingGroup(ctx, scope, "g3")
	must(t, err)
	if g.ParentName != "g2" || !slices.Equal(g.RootToParent, []string{"g0", "g1", "g2"}) {
		t.Fatalf("g3: %+v", g)
	}
	rec := true
	all, err := reg.ListThingGroups(ctx, scope, fleetcert.ThingGroupFilter{ParentGroup: "g4", Recursive: &rec}, fleetcert.RegistryListOptions{})
	must(t, err)
	if !slices.Equal(all.Names, []string{"g5", "g6"}) {
		t.Fatalf("below g4: %v", all.Names)
	}
	direct, err := reg.ListThingGroups(ctx, scope, fleetcert.ThingGroupFilter{ParentGroup: "g4"}, fleetcert.RegistryListOptions{})
	must(t, err)
	if !slices.Equal(direct.Names, []string{"g5"}) {
		t.Fatalf("children of g4: %v", direct.Names)
	}

	desc := "lights"
	v, err := reg.UpdateThingGroup(ctx, scope, fleetcert.UpdateThingGroupInput{Name: "g6", Description: &desc})
	must(t, err)
	stale := v - 1
	_, err = reg.UpdateThingGroup(ctx, scope, fleetcert.UpdateThingGroupInput{Name: "g6", Description: &desc, ExpectedVersion: &stale})
	wantCode(t, err, fleetcert.EVersionConflict)

	// Members, recursive listing, one group per hierarchy, 10 groups.
	for _, n := range []string{"a", "b"} {
		_, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: n})
		must(t, err)
	}
	must(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: "g6", ThingName: "a"}))
	must(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupARN: fleetcert.ThingGroupARN(scope, "g5"), ThingName: "b"}))
	must(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: "g6", ThingName: "a"})) // again: no change
	wantCode(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: "g5", ThingName: "a"}), fleetcert.EInvalidRequest)
	wantCode(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupARN: fleetcert.ThingGroupARN(otherScope, "g5"), ThingName: "a"}), fleetcert.EResourceNotFound)
	in, err := reg.ListThingsInThingGroup(ctx, scope, "g4", true, fleetcert.RegistryListOptions{})
	must(t, err)
	if !slices.Equal(in.Names, []string{"a", "b"}) {
		t.Fatalf("things under g4: %v", in.Names)
	}
	in, err = reg.ListThingsInThingGroup(ctx, scope, "g5", false, fleetcert.RegistryListOptions{})
	must(t, err)
	if !slices.Equal(in.Names, []string{"b"}) {
		t.Fatalf("things in g5: %v", in.Names)
	}
	for i := range fleetcert.MaxThingGroupsPerThing - 1 {
		name := fmt.Sprintf("root%d", i)
		_, err := reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: name})
		must(t, err)
		must(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: name, ThingName: "a"}))
	}
	_, err = reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: "eleventh"})
	must(t, err)
	wantCode(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: "eleventh", ThingName: "a"}), fleetcert.EInvalidRequest)
	groups, err := reg.ListThingGroupsForThing(ctx, scope, "a", fleetcert.RegistryListOptions{})
	must(t, err)
	if len(groups.Names) != fleetcert.MaxThingGroupsPerThing {
		t.Fatalf("groups of a: %v", groups.Names)
	}

	// Deleting: refused with children; members leave.
	wantCode(t, reg.DeleteThingGroup(ctx, scope, "g5", nil), fleetcert.EInvalidRequest)
	must(t, reg.DeleteThingGroup(ctx, scope, "g6", nil))
	must(t, reg.DeleteThingGroup(ctx, scope, "g6", nil)) // gone: a success
	groups, _ = reg.ListThingGroupsForThing(ctx, scope, "a", fleetcert.RegistryListOptions{})
	if slices.Contains(groups.Names, "g6") {
		t.Fatalf("a still in g6: %v", groups.Names)
	}
	must(t, reg.RemoveThingFromThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: "g5", ThingName: "b"}))
	must(t, reg.DeleteThing(ctx, scope, "a", nil)) // its memberships go with it
}

func TestThingPrincipals(t *testing.T) {
	ctx := context.Background()
	reg, rec := mustOpenRecordingRegistry(t)
	c1, c2 := mustCert(t, reg, scope), mustCert(t, reg, scope)
	foreign := mustCert(t, reg, otherScope)
	for _, n := range []string{"t1", "t2"} {
		_, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: n})
		must(t, err)
	}
	must(t, reg.AttachThingPrincipal(ctx, scope, "t1", c1.ARN(), ""))
	must(t, reg.AttachThingPrincipal(ctx, scope, "t2", c1.ARN(), fleetcert.NonExclusiveThing))
	// c1 is on two things: it cannot become exclusive.
	wantCode(t, reg.AttachThingPrincipal(ctx, scope, "t1", c1.ARN(), fleetcert.ExclusiveThing), fleetcert.EInvalidRequest)
	must(t, reg.AttachThingPrincipal(ctx, scope, "t1", c2.ARN(), fleetcert.ExclusiveThing))
	// c2 is exclusive to t1.
	wantCode(t, reg.AttachThingPrincipal(ctx, scope, "t2", c2.ARN(), ""), fleetcert.EInvalidRequest)

	for _, tt := range []struct {
		name, thing, principal, code string
	}{
		{"fail/another account's certificate", "t1", foreign.ARN(), fleetcert.EResourceNotFound},
		{"fail/unknown certificate", "t1", fleetcert.CertificateARN(scope, strings.Repeat("0", 64)), fleetcert.EResourceNotFound},
		{"fail/cognito identity", "t1", "us-east-1:12345678-1234-1234-1234-123456789012", fleetcert.EInvalidRequest},
		{"fail/not an ARN", "t1", "hello", fleetcert.EInvalidRequest},
		{"fail/unknown thing", "nope", c1.ARN(), fleetcert.EResourceNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, reg.AttachThingPrincipal(ctx, scope, tt.thing, tt.principal, ""), tt.code)
		})
	}

	page, err := reg.ListThingPrincipals(ctx, scope, "t1", "", fleetcert.RegistryListOptions{})
	must(t, err)
	if len(page.Principals) != 2 {
		t.Fatalf("principals of t1: %+v", page.Principals)
	}
	page, err = reg.ListThingPrincipals(ctx, scope, "t1", fleetcert.ExclusiveThing, fleetcert.RegistryListOptions{})
	must(t, err)
	if len(page.Principals) != 1 || page.Principals[0].Principal != c2.ARN() {
		t.Fatalf("exclusive principals of t1: %+v", page.Principals)
	}
	things, err := reg.ListPrincipalThings(ctx, scope, c1.ARN(), "", fleetcert.RegistryListOptions{})
	must(t, err)
	if len(things.Principals) != 2 || things.Principals[0].ThingName != "t1" || things.Principals[1].ThingName != "t2" {
		t.Fatalf("things of c1: %+v", things.Principals)
	}
	_, err = reg.ListPrincipalThings(ctx, otherScope, c1.ARN(), "", fleetcert.RegistryListOptions{})
	wantCode(t, err, fleetcert.EResourceNotFound)

	// A thing with principals is not deleted; a certificate with a thing
	// is not deleted, even forced.
	wantCode(t, reg.DeleteThing(ctx, scope, "t2", nil), fleetcert.EInvalidRequest)
	wantCode(t, reg.DeleteCertificate(ctx, scope, c1.ID, true), fleetcert.EDeleteConflict)
	must(t, reg.DetachThingPrincipal(ctx, scope, "t1", c1.ARN()))
	must(t, reg.DetachThingPrincipal(ctx, scope, "t2", c1.ARN()))
	wantCode(t, reg.DetachThingPrincipal(ctx, scope, "t2", c1.ARN()), fleetcert.EResourceNotFound)
	must(t, reg.DeleteThing(ctx, scope, "t2", nil))
	must(t, reg.DeleteCertificate(ctx, scope, c1.ID, false))

	var links []string
	for _, ch := range rec.changes {
		if strings.HasPrefix(string(ch.Kind), "link.") {
			links = append(links, string(ch.Kind)+" "+ch.Resource+" "+ch.Target)
		}
	}
	if len(links) != 5 || links[0] != "link.created thing-principal/t1 "+c1.ARN() || links[4] != "link.deleted thing-principal/t2 "+c1.ARN() {
		t.Errorf("link changes %q", links)
	}
}

// attachPolicy links a policy to a certificate as the policy operations
// (another branch's) will.
func attachPolicy(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope, policy, arn string) {
	t.Helper()
	must(t, reg.Store.Update(context.Background(), func(tx fleetcert.Tx) error {
		return tx.CreateLink(context.Background(), &fleetcert.Link{Scope: s, Kind: fleetcert.LinkPolicyTarget, From: policy, To: arn, CreationDate: time.Now()})
	}))
}

func TestCertificateWithPolicies(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	c := mustCert(t, reg, scope)
	attachPolicy(t, reg, scope, "p1", c.ARN())
	wantCode(t, reg.DeleteCertificate(ctx, scope, c.ID, false), fleetcert.EDeleteConflict)
	_, err := reg.TransferCertificate(ctx, scope, c.ID, otherScope.AccountID, "")
	wantCode(t, err, fleetcert.ETransferConflict)
	must(t, reg.DeleteCertificate(ctx, scope, c.ID, true))
	var left []*fleetcert.Link
	must(t, reg.Store.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		left, err = tx.ListLinks(ctx, fleetcert.LinkQuery{Scope: scope, Kind: fleetcert.LinkPolicyTarget, To: c.ARN(), Limit: 10})
		return err
	}))
	if len(left) != 0 {
		t.Fatalf("policy links left: %+v", left)
	}

	// A transfer's acceptance takes the certificate from the source's
	// things.
	c2 := mustCert(t, reg, scope)
	_, err = reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "t"})
	must(t, err)
	must(t, reg.AttachThingPrincipal(ctx, scope, "t", c2.ARN(), ""))
	_, err = reg.TransferCertificate(ctx, scope, c2.ID, otherScope.AccountID, "")
	must(t, err)
	must(t, reg.AcceptCertificateTransfer(ctx, otherScope, c2.ID, false))
	page, err := reg.ListThingPrincipals(ctx, scope, "t", "", fleetcert.RegistryListOptions{})
	must(t, err)
	if len(page.Principals) != 0 {
		t.Fatalf("principals of t after the transfer: %+v", page.Principals)
	}
}
