package fleetcert_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// jitpCA registers an ACTIVE CA with auto-registration and template body,
// and returns a device query for a certificate it issues with subject.
func jitpCA(t *testing.T, reg *fleetcert.Registry, body string) (*testpki.Cert, func(subject pkix.Name) (*testpki.Cert, fleetcert.DeviceQuery)) {
	t.Helper()
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "JITP CA"})
	registerCA(t, reg, scope, caCert, fleetcert.RegisterCAInput{SetAsActive: true, AllowAutoRegistration: true,
		RegistrationConfig: fleetcert.RegistrationConfig{TemplateBody: body, RoleARN: "arn:aws:iam::123456789012:role/JITPRole"}})
	return caCert, func(subject pkix.Name) (*testpki.Cert, fleetcert.DeviceQuery) {
		device := testpki.New(t, testpki.Options{Parent: caCert, Subject: &subject})
		return device, fleetcert.DeviceQuery{Chain: []*x509.Certificate{device.Cert, caCert.Cert}, Region: scope.Region, DefaultAccountID: scope.AccountID}
	}
}

// withP1 gives tmpl's parameter P1 a default: the certificates of these
// tests have no value for it.
func withP1(body string) string {
	return strings.Replace(body, `"P1": {"Type": "String"}`, `"P1": {"Type": "String", "Default": "d1"}`, 1)
}

// TestJustInTimeProvisioning applies AWS's example JITP template
// (jit-provisioning.html) on a device's first connection: one transaction
// registers the certificate, creates the thing in its type and groups,
// attaches the certificate to it, creates the policy from its document and
// attaches it, and activates the certificate, each with its change.
func TestJustInTimeProvisioning(t *testing.T) {
	ctx := context.Background()
	reg, rec := mustOpenRecordingRegistry(t)
	_, device := jitpCA(t, reg, awsJITPTemplate)
	// AWS's example names a thing type and groups; provisioning adds the
	// thing to them, it does not create them.
	_, err := reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "lightBulb-versionA"})
	must(t, err)
	for _, g := range []string{"v1-lightbulbs", "WA"} {
		_, err := reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: g})
		must(t, err)
	}
	before := len(rec.changes)
	leaf, q := device(pkix.Name{CommonName: "bulb-1", Country: []string{"WA"}, SerialNumber: "SN-1"})
	id := fleetcert.CertificateID(leaf.Cert.Raw)

	ar, err := reg.AutoRegisterDevice(ctx, q)
	if err != nil || ar == nil {
		t.Fatalf("provision: %+v %v", ar, err)
	}
	if !ar.Provisioned || ar.Status != fleetcert.StatusActive || ar.Certificate.Status != fleetcert.StatusPendingActivation || ar.Certificate.ID != id {
		t.Fatalf("result %+v, certificate %+v", ar, ar.Certificate)
	}
	c, err := reg.DescribeCertificate(ctx, scope, id)
	if err != nil || c.Status != fleetcert.StatusActive || c.CACertificateID != ar.CA.ID {
		t.Fatalf("certificate %+v %v", c, err)
	}
	th, err := reg.DescribeThing(ctx, scope, "bulb-1")
	if err != nil || th.TypeName != "lightBulb-versionA" || !maps.Equal(th.Attributes, map[string]string{"version": "v1", "serialNumber": "SN-1"}) {
		t.Fatalf("thing %+v %v", th, err)
	}
	groups, err := reg.ListThingGroupsForThing(ctx, scope, "bulb-1", fleetcert.RegistryListOptions{})
	must(t, err)
	if !slices.Equal(groups.Names, []string{"WA", "v1-lightbulbs"}) {
		t.Errorf("groups %v", groups.Names)
	}
	principals, err := reg.ListThingPrincipals(ctx, scope, "bulb-1", "", fleetcert.RegistryListOptions{})
	must(t, err)
	if len(principals.Principals) != 1 || principals.Principals[0].Principal != c.ARN() {
		t.Errorf("principals %+v", principals.Principals)
	}
	policies, err := reg.ListAttachedPolicies(ctx, scope, c.ARN(), false, fleetcert.ListOptions{})
	must(t, err)
	if len(policies.Policies) != 1 || len(policies.Policies[0].Name) != 64 {
		t.Fatalf("policies %+v", policies.Policies)
	}
	if _, err := reg.AdmitDevice(ctx, q); err != nil {
		t.Fatalf("admit after provisioning: %v", err)
	}
	// The certificate and the thing are registered and then changed, as
	// the Registry's own operations record them.
	var kinds []string
	for _, ch := range rec.changes[before:] {
		kinds = append(kinds, string(ch.Kind)+" "+ch.Resource)
	}
	want := []string{
		"certificate.created ", "object.created thing/bulb-1",
		"link.created thing-group/bulb-1", "link.created thing-group/bulb-1",
		"link.created thing-principal/bulb-1",
		"object.created policy/" + policies.Policies[0].Name, "link.created policy-target/" + policies.Policies[0].Name,
		"certificate.updated ",
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("changes\n%s\nwant\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"))
	}
	if again, err := reg.AutoRegisterDevice(ctx, q); err != nil || again != nil {
		t.Fatalf("an ACTIVE certificate was provisioned again: %+v %v", again, err)
	}

	// A second device of the same template reuses the policy made from
	// the same document.
	_, q2 := device(pkix.Name{CommonName: "bulb-2", Country: []string{"WA"}, SerialNumber: "SN-2"})
	ar2, err := reg.AutoRegisterDevice(ctx, q2)
	if err != nil || ar2 == nil || ar2.Status != fleetcert.StatusActive {
		t.Fatalf("second device: %+v %v", ar2, err)
	}
	targets, err := reg.ListTargetsForPolicy(ctx, scope, policies.Policies[0].Name, fleetcert.ListOptions{})
	must(t, err)
	if len(targets.Targets) != 2 {
		t.Errorf("policy targets %v", targets.Targets)
	}
}

// TestJustInTimeProvisioningFails: a template that cannot be applied
// leaves nothing (no certificate, thing, policy, attachment or change),
// and says why in AWS's terms.
func TestJustInTimeProvisioningFails(t *testing.T) {
	ctx := context.Background()
	policyResource := `"policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": "` + policyDoc + `"}}`
	thing := func(props string, overrides string) string {
		s := `"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}` + props + `}`
		if overrides != "" {
			s += `, "OverrideSettings": {` + overrides + `}`
		}
		return s + "}"
	}
	cert := `"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}}}`
	for _, tt := range []struct {
		name, resources, code string
		setup                 func(t *testing.T, reg *fleetcert.Registry)
	}{
		{"fail/group-missing", thing(`, "ThingGroups": ["nowhere"]`, "") + "," + policyResource + "," + cert, fleetcert.ERegistrationFailure, nil},
		{"fail/thing-type-missing", policyResource + "," + thing(`, "ThingTypeName": "nope"`, ""), fleetcert.ERegistrationFailure, nil},
		{"fail/policy-name-missing", thing("", "") + `, "p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "never-made"}}`, fleetcert.ERegistrationFailure, nil},
		{"fail/parameter-missing", thing(`, "AttributePayload": {"o": {"Ref": "P1"}}`, "") + "," + policyResource, fleetcert.EInvalidRequest, nil},
		{"fail/certificate-id-not-the-device", `"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "P2"}}`, fleetcert.EInvalidRequest, nil},
		{"fail/override-fail", policyResource + "," + thing(`, "AttributePayload": {"v": "2"}`, `"AttributePayload": "FAIL"`), fleetcert.EResourceConflicts,
			func(t *testing.T, reg *fleetcert.Registry) {
				_, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "dev-x", AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"v": "1"}}})
				must(t, err)
			}},
		{"fail/too-many-principals", policyResource + "," + thing("", ""), fleetcert.ERegistrationFailure,
			func(t *testing.T, reg *fleetcert.Registry) {
				_, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "dev-x"})
				must(t, err)
				for range fleetcert.MaxPrincipalsPerThing {
					must(t, reg.AttachThingPrincipal(ctx, scope, "dev-x", mustCert(t, reg, scope).ARN(), ""))
				}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg, _ := mustOpenRegistry(t)
			reg.Now = time.Now
			body := tmpl(tt.resources)
			if tt.code != fleetcert.EInvalidRequest {
				body = withP1(body)
			}
			_, device := jitpCA(t, reg, body)
			if tt.setup != nil {
				tt.setup(t, reg)
			}
			head, err := reg.ChangesHead(ctx)
			must(t, err)
			things, err := reg.ListThings(ctx, scope, fleetcert.ThingFilter{}, fleetcert.RegistryListOptions{})
			must(t, err)
			leaf, q := device(pkix.Name{CommonName: "dev-x"})
			ar, err := reg.AutoRegisterDevice(ctx, q)
			var pf *fleetcert.ProvisioningFailure
			if ar != nil || !errors.As(err, &pf) || pf.CertificateID != fleetcert.CertificateID(leaf.Cert.Raw) {
				t.Fatalf("got %+v %v, want a ProvisioningFailure", ar, err)
			}
			wantCode(t, err, tt.code)
			if after, _ := reg.ChangesHead(ctx); after != head {
				t.Errorf("the feed moved from %d to %d", head, after)
			}
			if _, err := reg.DescribeCertificate(ctx, scope, pf.CertificateID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
				t.Errorf("certificate registered: %v", err)
			}
			after, err := reg.ListThings(ctx, scope, fleetcert.ThingFilter{}, fleetcert.RegistryListOptions{})
			must(t, err)
			if len(after.Things) != len(things.Things) {
				t.Errorf("things %d → %d", len(things.Things), len(after.Things))
			}
			if p, err := reg.ListPolicies(ctx, scope, fleetcert.ListOptions{}); err != nil || len(p.Policies) != 0 {
				t.Errorf("policies %+v %v", p, err)
			}
		})
	}
}

// TestJustInTimeProvisioningOverrides applies a template to a thing that
// exists, by its OverrideSettings (provision-template.html).
func TestJustInTimeProvisioningOverrides(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	reg.Now = time.Now
	for _, g := range []string{"old", "new"} {
		_, err := reg.CreateThingGroup(ctx, scope, fleetcert.CreateThingGroupInput{Name: g})
		must(t, err)
	}
	_, err := reg.CreateThingType(ctx, scope, fleetcert.CreateThingTypeInput{Name: "lamp"})
	must(t, err)
	mk := func(name string) {
		_, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: name, AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"a": "1", "b": "1"}}})
		must(t, err)
		must(t, reg.AddThingToThingGroup(ctx, scope, fleetcert.ThingGroupMember{GroupName: "old", ThingName: name}))
	}
	for _, tt := range []struct {
		name, overrides string
		attrs           map[string]string
		typ             string
		groups          []string
	}{
		{"ok/default-does-nothing", ``, map[string]string{"a": "1", "b": "1"}, "", []string{"old"}},
		{"ok/merge", `"AttributePayload": "MERGE", "ThingGroups": "MERGE", "ThingTypeName": "REPLACE"`, map[string]string{"a": "2", "b": "1", "c": "3"}, "lamp", []string{"new", "old"}},
		{"ok/replace", `"ATTRIBUTE_PAYLOAD": "REPLACE", "THING_GROUPS": "REPLACE", "THING_TYPE_NAME": "DO_NOTHING"`, map[string]string{"a": "2", "c": "3"}, "", []string{"new"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, "/", "-")
			mk(name)
			body := withP1(tmpl(`"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
				"AttributePayload": {"a": "2", "c": "3"}, "ThingTypeName": "lamp", "ThingGroups": ["new"]},
				"OverrideSettings": {` + tt.overrides + `}}`))
			_, device := jitpCA(t, reg, body)
			_, q := device(pkix.Name{CommonName: name})
			if ar, err := reg.AutoRegisterDevice(ctx, q); err != nil || ar == nil || !ar.Provisioned {
				t.Fatalf("provision: %+v %v", ar, err)
			}
			th, err := reg.DescribeThing(ctx, scope, name)
			must(t, err)
			groups, err := reg.ListThingGroupsForThing(ctx, scope, name, fleetcert.RegistryListOptions{})
			must(t, err)
			if !maps.Equal(th.Attributes, tt.attrs) || th.TypeName != tt.typ || !slices.Equal(groups.Names, tt.groups) {
				t.Errorf("thing %+v in %v", th, groups.Names)
			}
		})
	}
}
