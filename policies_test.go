package fleetcert_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// allowAll is a small valid policy document.
const allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}`

func docAllow(action, resource string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":%q,"Resource":%q}]}`, action, resource)
}

func docDeny(action, resource string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":%q,"Resource":%q}]}`, action, resource)
}

func mustCreatePolicy(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope, name, doc string) *fleetcert.Policy {
	t.Helper()
	p, err := reg.CreatePolicy(context.Background(), s, name, doc, nil)
	if err != nil {
		t.Fatalf("create policy %s: %v", name, err)
	}
	return p
}

func mustRegisterCert(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope) *fleetcert.Certificate {
	t.Helper()
	c, err := reg.RegisterCertificateWithoutCA(context.Background(), s, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustCreateThingGroup creates a thing group under parent ("" for a root)
// and returns its ARN.
func mustCreateThingGroup(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope, name, parent string) string {
	t.Helper()
	g, err := reg.CreateThingGroup(context.Background(), s, fleetcert.CreateThingGroupInput{Name: name, ParentName: parent})
	if err != nil {
		t.Fatal(err)
	}
	return g.ARN()
}

// mustCreateThing creates thing name of typeName ("" for none) with
// attribute color=blue in groups, attached to the certificates certARNs.
func mustCreateThing(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope, name, typeName string, groups []string, certARNs ...string) {
	t.Helper()
	ctx := context.Background()
	if typeName != "" {
		if _, err := reg.CreateThingType(ctx, s, fleetcert.CreateThingTypeInput{Name: typeName}); err != nil && fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
			t.Fatal(err)
		}
	}
	_, err := reg.CreateThing(ctx, s, fleetcert.CreateThingInput{Name: name, TypeName: typeName,
		AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"color": "blue"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if err := reg.AddThingToThingGroup(ctx, s, fleetcert.ThingGroupMember{GroupName: g, ThingName: name}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range certARNs {
		if err := reg.AttachThingPrincipal(ctx, s, name, c, fleetcert.NonExclusiveThing); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCreatePolicy(t *testing.T) {
	// A document of exactly 2048 characters other than white space, padded
	// with white space, and one character more.
	pad := func(n int) string {
		base := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/"}]}`
		topic := strings.Repeat("a", n-len(base))
		return strings.Replace(base, "topic/", "topic/"+topic, 1) + strings.Repeat(" \n\t", 1000)
	}
	tests := []struct {
		name, policy, doc string
		code              string
	}{
		{"ok/simple", "p1", allowAll, ""},
		{"ok/name-characters", `a_Z0+=,.@-`, allowAll, ""},
		{"ok/name-128", strings.Repeat("n", 128), allowAll, ""},
		{"ok/document-2048-without-whitespace", "big", pad(2048), ""},
		{"fail/name-empty", "", allowAll, fleetcert.EInvalidRequest},
		{"fail/name-129", strings.Repeat("n", 129), allowAll, fleetcert.EInvalidRequest},
		{"fail/name-space", "a b", allowAll, fleetcert.EInvalidRequest},
		{"fail/name-slash", "a/b", allowAll, fleetcert.EInvalidRequest},
		{"fail/document-2049", "big2", pad(2049), fleetcert.EMalformedPolicy},
		{"fail/document-empty", "empty", "  ", fleetcert.EMalformedPolicy},
		{"fail/document-not-json", "nj", "{", fleetcert.EMalformedPolicy},
		{"fail/document-no-statement", "ns", `{"Version":"2012-10-17"}`, fleetcert.EMalformedPolicy},
		{"fail/document-over-request-bound", "huge", strings.Repeat(" ", fleetcert.MaxPolicyDocumentLength+1), fleetcert.EInvalidRequest},
	}
	reg, clk := mustOpenRegistry(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := reg.CreatePolicy(ctx, scope, tt.policy, tt.doc, nil)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if p.ARN() != "arn:aws:iot:us-east-1:123456789012:policy/"+tt.policy || len(p.Versions) != 1 ||
				p.DefaultVersion().ID != "1" || p.DefaultVersion().Document != tt.doc || !p.CreationDate.Equal(clk.t) || p.GenerationID == "" {
				t.Fatalf("created %+v", p)
			}
			got, err := reg.GetPolicy(ctx, scope, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if got.DefaultVersion().Document != tt.doc || !got.LastModifiedDate.Equal(clk.t) || got.GenerationID != p.GenerationID {
				t.Fatalf("got %+v, created %+v", got, p)
			}
		})
	}
	t.Run("fail/duplicate", func(t *testing.T) {
		_, err := reg.CreatePolicy(ctx, scope, "p1", allowAll, nil)
		wantCode(t, err, fleetcert.EResourceAlreadyExists)
		var e *fleetcert.Error
		if !errors.As(err, &e) || e.ResourceARN != "arn:aws:iot:us-east-1:123456789012:policy/p1" || e.ResourceID != "p1" {
			t.Fatalf("duplicate: %+v", e)
		}
	})
	t.Run("ok/same-name-other-account", func(t *testing.T) {
		mustCreatePolicy(t, reg, otherAccount, "p1", allowAll)
	})
	t.Run("fail/tags", func(t *testing.T) {
		_, err := reg.CreatePolicy(ctx, scope, "tagged", allowAll, []fleetcert.Tag{{Key: "", Value: "v"}})
		wantCode(t, err, fleetcert.EInvalidRequest)
	})
	t.Run("fail/not-found-other-account", func(t *testing.T) {
		_, err := reg.GetPolicy(ctx, scope, "big")
		wantCode(t, err, "")
		_, err = reg.GetPolicy(ctx, otherAccount, "big")
		wantCode(t, err, fleetcert.EResourceNotFound)
		_, err = reg.GetPolicy(ctx, scope, "never")
		wantCode(t, err, fleetcert.EResourceNotFound)
	})
}

func TestPolicyVersions(t *testing.T) {
	reg, clk := mustOpenRegistry(t)
	ctx := context.Background()
	mustCreatePolicy(t, reg, scope, "p", docAllow("iot:Connect", "*"))
	head := len(changes(t, reg))

	// Versions 2 to 5; the policy then has the maximum.
	for i := 2; i <= fleetcert.MaxPolicyVersions; i++ {
		clk.advance(time.Second)
		p, v, err := reg.CreatePolicyVersion(ctx, scope, "p", docAllow("iot:Publish", fmt.Sprint("arn:aws:iot:us-east-1:123456789012:topic/", i)), i == 3)
		if err != nil {
			t.Fatal(err)
		}
		if v.ID != fmt.Sprint(i) || v.IsDefaultVersion != (i == 3) || !v.CreateDate.Equal(clk.t) || !p.LastModifiedDate.Equal(clk.t) {
			t.Fatalf("version %d: %+v", i, v)
		}
	}
	_, _, err := reg.CreatePolicyVersion(ctx, scope, "p", allowAll, false)
	wantCode(t, err, fleetcert.EVersionsLimitExceeded)

	tests := []struct {
		name string
		run  func() error
		code string
	}{
		{"fail/create-malformed", func() error { _, _, err := reg.CreatePolicyVersion(ctx, scope, "p", "[]", false); return err }, fleetcert.EMalformedPolicy},
		{"fail/create-unknown-policy", func() error { _, _, err := reg.CreatePolicyVersion(ctx, scope, "nope", allowAll, false); return err }, fleetcert.EResourceNotFound},
		{"fail/create-other-account", func() error {
			_, _, err := reg.CreatePolicyVersion(ctx, otherAccount, "p", allowAll, false)
			return err
		}, fleetcert.EResourceNotFound},
		{"fail/get-unknown-version", func() error { _, _, err := reg.GetPolicyVersion(ctx, scope, "p", "9"); return err }, fleetcert.EResourceNotFound},
		{"fail/get-bad-version-id", func() error { _, _, err := reg.GetPolicyVersion(ctx, scope, "p", "v1"); return err }, fleetcert.EInvalidRequest},
		{"fail/set-default-unknown", func() error { return reg.SetDefaultPolicyVersion(ctx, scope, "p", "9") }, fleetcert.EResourceNotFound},
		{"fail/set-default-bad-id", func() error { return reg.SetDefaultPolicyVersion(ctx, scope, "p", "") }, fleetcert.EInvalidRequest},
		{"fail/delete-default-version", func() error { return reg.DeletePolicyVersion(ctx, scope, "p", "3") }, fleetcert.EDeleteConflict},
		{"fail/delete-unknown-version", func() error { return reg.DeletePolicyVersion(ctx, scope, "p", "9") }, fleetcert.EResourceNotFound},
		{"fail/delete-policy-with-versions", func() error { return reg.DeletePolicy(ctx, scope, "p") }, fleetcert.EDeleteConflict},
		{"fail/delete-version-other-account", func() error { return reg.DeletePolicyVersion(ctx, otherAccount, "p", "2") }, fleetcert.EResourceNotFound},
		{"ok/set-default-again", func() error { return reg.SetDefaultPolicyVersion(ctx, scope, "p", "3") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.run(), tt.code) })
	}
	if n := len(changes(t, reg)); n != head+fleetcert.MaxPolicyVersions-1 {
		t.Fatalf("%d changes after the versions, want %d: refusals and no-ops append none", n, head+fleetcert.MaxPolicyVersions-1)
	}

	p, v, err := reg.GetPolicyVersion(ctx, scope, "p", "3")
	if err != nil || !v.IsDefaultVersion || v.Document != docAllow("iot:Publish", "arn:aws:iot:us-east-1:123456789012:topic/3") || p.DefaultVersion().ID != "3" {
		t.Fatalf("version 3: %+v %v", v, err)
	}
	// Deleting a version frees a slot; ids are never reused.
	if err := reg.DeletePolicyVersion(ctx, scope, "p", "5"); err != nil {
		t.Fatal(err)
	}
	_, v, err = reg.CreatePolicyVersion(ctx, scope, "p", allowAll, false)
	if err != nil || v.ID != "6" {
		t.Fatalf("after deleting version 5, new version %+v %v, want id 6", v, err)
	}
	if err := reg.SetDefaultPolicyVersion(ctx, scope, "p", "6"); err != nil {
		t.Fatal(err)
	}
	vs, err := reg.ListPolicyVersions(ctx, scope, "p")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range vs {
		ids = append(ids, fmt.Sprint(v.ID, v.IsDefaultVersion))
	}
	if want := []string{"1false", "2false", "3false", "4false", "6true"}; !slices.Equal(ids, want) {
		t.Fatalf("versions %v, want %v", ids, want)
	}
	for _, id := range []string{"1", "2", "3", "4"} {
		if err := reg.DeletePolicyVersion(ctx, scope, "p", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.DeletePolicy(ctx, scope, "p"); err != nil {
		t.Fatal(err)
	}
	_, err = reg.GetPolicy(ctx, scope, "p")
	wantCode(t, err, fleetcert.EResourceNotFound)

	var kinds []string
	for _, ch := range changes(t, reg)[head:] {
		if ch.Resource != "policy/p" || ch.Scope != scope || ch.Target != "" {
			t.Fatalf("change %+v", ch)
		}
		kinds = append(kinds, string(ch.Kind))
	}
	if kinds[len(kinds)-1] != string(fleetcert.ChangeObjectDeleted) || kinds[0] != string(fleetcert.ChangeObjectUpdated) {
		t.Fatalf("change kinds %v", kinds)
	}
}

func TestAttachPolicy(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	ctx := context.Background()
	mustCreatePolicy(t, reg, scope, "p", allowAll)
	mustCreatePolicy(t, reg, otherAccount, "theirs", allowAll)
	cert := mustRegisterCert(t, reg, scope)
	theirCert := mustRegisterCert(t, reg, otherAccount)
	group := mustCreateThingGroup(t, reg, scope, "g", "")
	otherRegion := fleetcert.Scope{AccountID: scope.AccountID, Region: "eu-west-1"}
	head := len(changes(t, reg))

	tests := []struct {
		name, policy, target, code string
	}{
		{"ok/certificate", "p", cert.ARN(), ""},
		{"ok/certificate-again", "p", cert.ARN(), ""},
		{"ok/thing-group", "p", group, ""},
		{"fail/certificate-of-other-account", "p", theirCert.ARN(), fleetcert.EResourceNotFound},
		{"fail/own-id-other-account-arn", "p", fleetcert.CertificateARN(otherAccount, cert.ID), fleetcert.EResourceNotFound},
		{"fail/own-id-other-region-arn", "p", fleetcert.CertificateARN(otherRegion, cert.ID), fleetcert.EResourceNotFound},
		{"fail/unknown-certificate", "p", fleetcert.CertificateARN(scope, strings.Repeat("ab", 32)), fleetcert.EResourceNotFound},
		{"fail/short-certificate-id", "p", fleetcert.CertificateARN(scope, "abc"), fleetcert.EInvalidRequest},
		{"fail/unknown-thing-group", "p", "arn:aws:iot:us-east-1:123456789012:thinggroup/nope", fleetcert.EResourceNotFound},
		{"fail/thing-group-other-account", "p", "arn:aws:iot:us-east-1:210987654321:thinggroup/g", fleetcert.EResourceNotFound},
		{"fail/cognito-identity", "p", "us-east-1:0a1b2c3d-0000-0000-0000-000000000000", fleetcert.EInvalidRequest},
		{"fail/thing-arn", "p", "arn:aws:iot:us-east-1:123456789012:thing/t", fleetcert.EInvalidRequest},
		{"fail/empty-target", "p", "", fleetcert.EInvalidRequest},
		{"fail/unknown-policy", "nope", cert.ARN(), fleetcert.EResourceNotFound},
		{"fail/policy-of-other-account", "theirs", cert.ARN(), fleetcert.EResourceNotFound},
		{"fail/bad-policy-name", "a b", cert.ARN(), fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, reg.AttachPolicy(ctx, scope, tt.policy, tt.target), tt.code)
		})
	}
	chs := changes(t, reg)[head:]
	if len(chs) != 2 || chs[0].Kind != fleetcert.ChangeLinkCreated || chs[0].Resource != "policy-target/p" || chs[0].Target != cert.ARN() ||
		chs[1].Target != group {
		t.Fatalf("changes %+v, want one link.created per new attachment", chs)
	}

	t.Run("fail/delete-attached", func(t *testing.T) {
		wantCode(t, reg.DeletePolicy(ctx, scope, "p"), fleetcert.EDeleteConflict)
	})
	t.Run("ok/list-targets", func(t *testing.T) {
		page, err := reg.ListTargetsForPolicy(ctx, scope, "p", fleetcert.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{cert.ARN(), group}
		slices.Sort(want)
		if !slices.Equal(page.Targets, want) || page.NextMarker != "" {
			t.Fatalf("targets %v, want %v", page.Targets, want)
		}
		_, err = reg.ListTargetsForPolicy(ctx, otherAccount, "p", fleetcert.ListOptions{})
		wantCode(t, err, fleetcert.EResourceNotFound)
	})
	t.Run("ok/list-attached", func(t *testing.T) {
		for _, target := range []string{cert.ARN(), group} {
			page, err := reg.ListAttachedPolicies(ctx, scope, target, false, fleetcert.ListOptions{})
			if err != nil || len(page.Policies) != 1 || page.Policies[0].Name != "p" {
				t.Fatalf("attached to %s: %+v %v", target, page, err)
			}
		}
		page, err := reg.ListPrincipalPolicies(ctx, scope, cert.ARN(), fleetcert.ListOptions{})
		if err != nil || len(page.Policies) != 1 {
			t.Fatalf("principal policies %+v %v", page, err)
		}
		_, err = reg.ListAttachedPolicies(ctx, otherAccount, cert.ARN(), false, fleetcert.ListOptions{})
		wantCode(t, err, fleetcert.EResourceNotFound)
	})
	t.Run("fail/limit-per-target", func(t *testing.T) {
		for i := 1; i < fleetcert.MaxPoliciesPerTarget; i++ {
			name := fmt.Sprint("extra", i)
			mustCreatePolicy(t, reg, scope, name, allowAll)
			if err := reg.AttachPolicy(ctx, scope, name, cert.ARN()); err != nil {
				t.Fatal(err)
			}
		}
		mustCreatePolicy(t, reg, scope, "one-too-many", allowAll)
		wantCode(t, reg.AttachPolicy(ctx, scope, "one-too-many", cert.ARN()), fleetcert.ELimitExceeded)
		wantCode(t, reg.AttachPolicy(ctx, scope, "p", cert.ARN()), "") // attached already: no new attachment
		wantCode(t, reg.AttachPolicy(ctx, scope, "one-too-many", group), "")
	})
	t.Run("ok/detach", func(t *testing.T) {
		head := len(changes(t, reg))
		for _, target := range []string{cert.ARN(), group} {
			if err := reg.DetachPolicy(ctx, scope, "p", target); err != nil {
				t.Fatal(err)
			}
		}
		if err := reg.DetachPolicy(ctx, scope, "p", cert.ARN()); err != nil {
			t.Fatalf("detaching again: %v", err)
		}
		chs := changes(t, reg)[head:]
		if len(chs) != 2 || chs[0].Kind != fleetcert.ChangeLinkDeleted || chs[0].Target != cert.ARN() || chs[0].Resource != "policy-target/p" {
			t.Fatalf("changes %+v", chs)
		}
		wantCode(t, reg.DetachPolicy(ctx, scope, "nope", cert.ARN()), fleetcert.EResourceNotFound)
		wantCode(t, reg.DetachPolicy(ctx, scope, "p", "us-east-1:cognito"), fleetcert.EInvalidRequest)
		if err := reg.DeletePolicy(ctx, scope, "p"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/principal-forms", func(t *testing.T) {
		mustCreatePolicy(t, reg, scope, "old", allowAll)
		// The limit above is reached: detach one first.
		if err := reg.DetachPolicy(ctx, scope, "extra1", cert.ARN()); err != nil {
			t.Fatal(err)
		}
		if err := reg.AttachPrincipalPolicy(ctx, scope, "old", cert.ARN()); err != nil {
			t.Fatal(err)
		}
		page, err := reg.ListPrincipalPolicies(ctx, scope, cert.ARN(), fleetcert.ListOptions{})
		if err != nil || !slices.ContainsFunc(page.Policies, func(p *fleetcert.Policy) bool { return p.Name == "old" }) {
			t.Fatalf("principal policies %+v %v", page, err)
		}
		if err := reg.DetachPrincipalPolicy(ctx, scope, "old", cert.ARN()); err != nil {
			t.Fatal(err)
		}
		wantCode(t, reg.AttachPrincipalPolicy(ctx, scope, "old", ""), fleetcert.EInvalidRequest)
	})
}

func TestListPoliciesPaging(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	ctx := context.Background()
	var want []string
	for _, n := range []string{"e", "a", "c", "b", "d"} {
		mustCreatePolicy(t, reg, scope, n, allowAll)
	}
	mustCreatePolicy(t, reg, otherAccount, "zz-theirs", allowAll)
	want = []string{"a", "b", "c", "d", "e"}
	var got []string
	size, marker, pages := 2, "", 0
	for {
		page, err := reg.ListPolicies(ctx, scope, fleetcert.ListOptions{PageSize: &size, Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page.Policies {
			got = append(got, p.Name)
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("listed %v in %d pages, want %v in 3", got, pages, want)
	}
	for _, tt := range []struct {
		name string
		opts fleetcert.ListOptions
	}{
		{"fail/marker", fleetcert.ListOptions{Marker: "not a marker"}},
		{"fail/time-marker", fleetcert.ListOptions{Marker: fleetcert.EncodeMarker(fleetcert.Cursor{Seq: 1})}},
		{"fail/page-size-0", fleetcert.ListOptions{PageSize: new(int)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reg.ListPolicies(ctx, scope, tt.opts)
			wantCode(t, err, fleetcert.EInvalidRequest)
		})
	}
}

// groupTree makes thing groups root > mid > leaf, with a policy attached
// to root and one to leaf.
func groupTree(t *testing.T, reg *fleetcert.Registry) (root, mid, leaf string) {
	t.Helper()
	ctx := context.Background()
	root = mustCreateThingGroup(t, reg, scope, "root", "")
	mid = mustCreateThingGroup(t, reg, scope, "mid", "root")
	leaf = mustCreateThingGroup(t, reg, scope, "leaf", "mid")
	mustCreatePolicy(t, reg, scope, "p-root", docAllow("iot:Subscribe", "*"))
	mustCreatePolicy(t, reg, scope, "p-leaf", docAllow("iot:Receive", "*"))
	if err := reg.AttachPolicy(ctx, scope, "p-root", root); err != nil {
		t.Fatal(err)
	}
	if err := reg.AttachPolicy(ctx, scope, "p-leaf", leaf); err != nil {
		t.Fatal(err)
	}
	return root, mid, leaf
}

func TestListAttachedPoliciesRecursive(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	ctx := context.Background()
	_, mid, leaf := groupTree(t, reg)
	tests := []struct {
		name      string
		target    string
		recursive bool
		want      []string
	}{
		{"ok/leaf", leaf, false, []string{"p-leaf"}},
		{"ok/leaf-recursive", leaf, true, []string{"p-leaf", "p-root"}},
		{"ok/mid", mid, false, nil},
		{"ok/mid-recursive", mid, true, []string{"p-root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := reg.ListAttachedPolicies(ctx, scope, tt.target, tt.recursive, fleetcert.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range page.Policies {
				got = append(got, p.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("ok/paged", func(t *testing.T) {
		one := 1
		page, err := reg.ListAttachedPolicies(ctx, scope, leaf, true, fleetcert.ListOptions{PageSize: &one})
		if err != nil || len(page.Policies) != 1 || page.Policies[0].Name != "p-leaf" || page.NextMarker == "" {
			t.Fatalf("first page %+v %v", page, err)
		}
		page, err = reg.ListAttachedPolicies(ctx, scope, leaf, true, fleetcert.ListOptions{PageSize: &one, Marker: page.NextMarker})
		if err != nil || len(page.Policies) != 1 || page.Policies[0].Name != "p-root" || page.NextMarker != "" {
			t.Fatalf("second page %+v %v", page, err)
		}
	})
}

func policyNames(ps []fleetcert.PolicyRef) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestConnectionPolicies(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	ctx := context.Background()
	_, _, leaf := groupTree(t, reg)
	cert := mustRegisterCert(t, reg, scope)
	other := mustRegisterCert(t, reg, scope)
	mustCreatePolicy(t, reg, scope, "p-cert", docAllow("iot:Connect", "*"))
	for _, target := range []string{cert.ARN(), leaf} {
		if err := reg.AttachPolicy(ctx, scope, "p-cert", target); err != nil {
			t.Fatal(err)
		}
	}
	mustCreateThing(t, reg, scope, "dev1", "sensor", []string{"leaf"}, cert.ARN())
	mustCreateThing(t, reg, scope, "dev2", "", []string{"leaf"}, other.ARN())

	tests := []struct {
		name, clientID string
		thing          string
		want           []string
	}{
		// The group's policies reach the device once, after the
		// certificate's, nearest group first.
		{"ok/thing-of-certificate", "dev1", "dev1", []string{"p-cert", "p-leaf", "p-root"}},
		{"ok/no-client-id", "", "", []string{"p-cert"}},
		{"ok/client-id-no-thing", "somebody", "", []string{"p-cert"}},
		{"ok/thing-not-attached-to-certificate", "dev2", "", []string{"p-cert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := reg.ConnectionPolicies(ctx, scope, cert.ID, tt.clientID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range cp.Policies {
				if p.Doc == nil || p.ARN != fleetcert.PolicyARN(scope, p.Name) {
					t.Fatalf("policy %+v", p)
				}
				got = append(got, p.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("policies %v, want %v", got, tt.want)
			}
			if tt.thing == "" && cp.Thing != nil || tt.thing != "" && (cp.Thing == nil || cp.Thing.Name != tt.thing || cp.Thing.TypeName != "sensor" || cp.Thing.Attributes["color"] != "blue") {
				t.Fatalf("thing %+v, want %q", cp.Thing, tt.thing)
			}
		})
	}
	t.Run("ok/default-version", func(t *testing.T) {
		if _, _, err := reg.CreatePolicyVersion(ctx, scope, "p-cert", docAllow("iot:Publish", "*"), true); err != nil {
			t.Fatal(err)
		}
		cp, err := reg.ConnectionPolicies(ctx, scope, cert.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if d := cp.Policies[0].Doc; len(d.Statements) != 1 || d.Statements[0].Actions[0] != "iot:Publish" {
			t.Fatalf("document in effect %+v, want the new default version", d)
		}
	})
	t.Run("fail/certificate-of-other-account", func(t *testing.T) {
		_, err := reg.ConnectionPolicies(ctx, otherAccount, cert.ID, "dev1")
		wantCode(t, err, fleetcert.EResourceNotFound)
		_, err = reg.ConnectionPolicies(ctx, scope, "zz", "dev1")
		wantCode(t, err, fleetcert.EInvalidRequest)
	})
}

func TestTestAuthorization(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	ctx := context.Background()
	cert := mustRegisterCert(t, reg, scope)
	topic := func(s string) string { return "arn:aws:iot:us-east-1:123456789012:topic/" + s }
	mustCreatePolicy(t, reg, scope, "pub", docAllow("iot:Publish", topic("*")))
	mustCreatePolicy(t, reg, scope, "deny-secret", docDeny("iot:Publish", topic("secret")))
	mustCreatePolicy(t, reg, scope, "thing-connect", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"}]}`)
	mustCreatePolicy(t, reg, scope, "spare", docAllow("iot:Subscribe", "*"))
	mustCreatePolicy(t, reg, scope, "attr", docAllow("iot:Publish", topic("${iot:Connection.Thing.Attributes[color]}")))
	for _, p := range []string{"pub", "deny-secret", "thing-connect"} {
		if err := reg.AttachPolicy(ctx, scope, p, cert.ARN()); err != nil {
			t.Fatal(err)
		}
	}
	mustCreateThing(t, reg, scope, "dev1", "", nil, cert.ARN())
	mustCreateThing(t, reg, scope, "dev2", "", nil)

	type want struct {
		decision string
		policies []string
	}
	tests := []struct {
		name string
		in   fleetcert.TestAuthorizationInput
		want want
		code string
	}{
		{"ok/allowed", fleetcert.TestAuthorizationInput{AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("a")}}}},
			want{fleetcert.AuthAllowed, []string{"pub"}}, ""},
		{"ok/explicit-deny", fleetcert.TestAuthorizationInput{AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("a"), topic("secret")}}}},
			want{fleetcert.AuthExplicitDeny, []string{"deny-secret"}}, ""},
		{"ok/implicit-deny", fleetcert.TestAuthorizationInput{AuthInfos: []fleetcert.AuthInfo{{ActionType: "SUBSCRIBE", Resources: []string{"arn:aws:iot:us-east-1:123456789012:topicfilter/a"}}}},
			want{fleetcert.AuthImplicitDeny, []string{"deny-secret", "pub", "thing-connect"}}, ""},
		{"ok/policy-to-add", fleetcert.TestAuthorizationInput{PolicyNamesToAdd: []string{"spare"}, AuthInfos: []fleetcert.AuthInfo{{ActionType: "SUBSCRIBE", Resources: []string{"arn:aws:iot:us-east-1:123456789012:topicfilter/a"}}}},
			want{fleetcert.AuthAllowed, []string{"spare"}}, ""},
		{"ok/policy-to-skip", fleetcert.TestAuthorizationInput{PolicyNamesToSkip: []string{"pub"}, AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("a")}}}},
			want{fleetcert.AuthImplicitDeny, []string{"deny-secret", "thing-connect"}}, ""},
		{"ok/thing-variable", fleetcert.TestAuthorizationInput{ClientID: "dev1", AuthInfos: []fleetcert.AuthInfo{{ActionType: "CONNECT", Resources: []string{"arn:aws:iot:us-east-1:123456789012:client/dev1"}}}},
			want{fleetcert.AuthAllowed, []string{"thing-connect"}}, ""},
		{"ok/thing-not-attached", fleetcert.TestAuthorizationInput{ClientID: "dev2", AuthInfos: []fleetcert.AuthInfo{{ActionType: "CONNECT", Resources: []string{"arn:aws:iot:us-east-1:123456789012:client/dev2"}}}},
			want{fleetcert.AuthImplicitDeny, []string{"deny-secret", "pub", "thing-connect"}}, ""},
		{"ok/thing-attribute", fleetcert.TestAuthorizationInput{ClientID: "dev1", PolicyNamesToAdd: []string{"attr"}, PolicyNamesToSkip: []string{"pub"}, AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("blue")}}}},
			want{fleetcert.AuthAllowed, []string{"attr"}}, ""},
		{"fail/policy-to-add-unknown", fleetcert.TestAuthorizationInput{PolicyNamesToAdd: []string{"nope"}, AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("a")}}}},
			want{}, fleetcert.EResourceNotFound},
		{"fail/action-type", fleetcert.TestAuthorizationInput{AuthInfos: []fleetcert.AuthInfo{{ActionType: "DELETE", Resources: []string{topic("a")}}}},
			want{}, fleetcert.EInvalidRequest},
		{"fail/no-resources", fleetcert.TestAuthorizationInput{AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH"}}},
			want{}, fleetcert.EInvalidRequest},
		{"fail/no-auth-infos", fleetcert.TestAuthorizationInput{}, want{}, fleetcert.EInvalidRequest},
		{"fail/11-auth-infos", fleetcert.TestAuthorizationInput{AuthInfos: make([]fleetcert.AuthInfo, 11)}, want{}, fleetcert.EInvalidRequest},
		{"fail/cognito", fleetcert.TestAuthorizationInput{CognitoIdentityPoolID: "us-east-1:x", AuthInfos: []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("a")}}}},
			want{}, fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Principal = cert.ARN()
			res, err := reg.TestAuthorization(ctx, scope, tt.in)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if len(res) != 1 || res[0].Decision != tt.want.decision {
				t.Fatalf("results %+v, want %s", res, tt.want.decision)
			}
			var got []string
			switch tt.want.decision {
			case fleetcert.AuthAllowed:
				got = policyNames(res[0].Allowed)
			case fleetcert.AuthExplicitDeny:
				got = policyNames(res[0].ExplicitDeny)
			default:
				got = policyNames(res[0].ImplicitDeny)
			}
			if !slices.Equal(got, tt.want.policies) {
				t.Fatalf("policies %v, want %v", got, tt.want.policies)
			}
		})
	}
	t.Run("fail/principal", func(t *testing.T) {
		infos := []fleetcert.AuthInfo{{ActionType: "PUBLISH", Resources: []string{topic("a")}}}
		for principal, code := range map[string]string{
			"": fleetcert.EInvalidRequest,
			"arn:aws:iot:us-east-1:123456789012:thinggroup/g":        fleetcert.EInvalidRequest,
			fleetcert.CertificateARN(otherAccount, cert.ID):          fleetcert.EResourceNotFound,
			fleetcert.CertificateARN(scope, strings.Repeat("0", 64)): fleetcert.EResourceNotFound,
		} {
			_, err := reg.TestAuthorization(ctx, scope, fleetcert.TestAuthorizationInput{Principal: principal, AuthInfos: infos})
			wantCode(t, err, code)
		}
	})
}

func TestGetEffectivePolicies(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	ctx := context.Background()
	_, _, leaf := groupTree(t, reg)
	cert := mustRegisterCert(t, reg, scope)
	mustCreatePolicy(t, reg, scope, "p-cert", allowAll)
	if err := reg.AttachPolicy(ctx, scope, "p-cert", cert.ARN()); err != nil {
		t.Fatal(err)
	}
	mustCreateThing(t, reg, scope, "dev1", "", []string{"leaf"}, cert.ARN())
	tests := []struct {
		name, principal, thing, cognito string
		want                            []string
		code                            string
	}{
		{"ok/certificate", cert.ARN(), "", "", []string{"p-cert"}, ""},
		{"ok/certificate-and-thing", cert.ARN(), "dev1", "", []string{"p-cert", "p-leaf", "p-root"}, ""},
		{"ok/thing-group", leaf, "", "", []string{"p-leaf", "p-root"}, ""},
		{"fail/thing-name", cert.ARN(), "bad name", "", nil, fleetcert.EInvalidRequest},
		{"fail/cognito", cert.ARN(), "", "us-east-1:pool", nil, fleetcert.EInvalidRequest},
		{"fail/other-account", fleetcert.CertificateARN(otherAccount, cert.ID), "", "", nil, fleetcert.EResourceNotFound},
		{"fail/no-principal", "", "dev1", "", nil, fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := reg.GetEffectivePolicies(ctx, scope, tt.principal, tt.cognito, tt.thing)
			wantCode(t, err, tt.code)
			var got []string
			for _, p := range ps {
				if p.Document == "" || p.ARN != fleetcert.PolicyARN(scope, p.Name) {
					t.Fatalf("policy %+v", p)
				}
				got = append(got, p.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
