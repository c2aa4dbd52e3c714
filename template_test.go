package fleetcert_test

import (
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// awsJITPTemplate is the example template body of
// https://docs.aws.amazon.com/iot/latest/developerguide/jit-provisioning.html
// ("Example template body"), with its thing type and groups, and a policy
// document of its own.
const awsJITPTemplate = `{
   "Parameters":{
      "AWS::IoT::Certificate::CommonName":{ "Type":"String" },
      "AWS::IoT::Certificate::SerialNumber":{ "Type":"String" },
      "AWS::IoT::Certificate::Country":{ "Type":"String" },
      "AWS::IoT::Certificate::Id":{ "Type":"String" }
   },
   "Resources":{
      "thing":{
         "Type":"AWS::IoT::Thing",
         "Properties":{
            "ThingName":{ "Ref":"AWS::IoT::Certificate::CommonName" },
            "AttributePayload":{ "version":"v1", "serialNumber":{ "Ref":"AWS::IoT::Certificate::SerialNumber" } },
            "ThingTypeName":"lightBulb-versionA",
            "ThingGroups":[ "v1-lightbulbs", { "Ref":"AWS::IoT::Certificate::Country" } ]
         },
         "OverrideSettings":{
            "AttributePayload":"MERGE",
            "ThingTypeName":"REPLACE",
            "ThingGroups":"DO_NOTHING"
         }
      },
      "certificate":{
         "Type":"AWS::IoT::Certificate",
         "Properties":{
            "CertificateId":{ "Ref":"AWS::IoT::Certificate::Id" },
            "Status":"ACTIVE"
         }
      },
      "policy":{
         "Type":"AWS::IoT::Policy",
         "Properties":{
            "PolicyDocument":"{ \"Version\": \"2012-10-17\", \"Statement\": [{ \"Effect\": \"Allow\", \"Action\":[\"iot:Publish\"], \"Resource\": [\"arn:aws:iot:us-east-1:123456789012:topic/foo/bar\"] }] }"
         }
      }
   }
}`

const policyDoc = `{ \"Version\": \"2012-10-17\", \"Statement\": [{ \"Effect\": \"Allow\", \"Action\":[\"iot:Connect\"], \"Resource\": [\"*\"] }] }`

// tmpl wraps resources (and extra sections) in a template declaring the
// parameters P1, P2 (default "d2") and the certificate's id and name.
func tmpl(resources string, extra ...string) string {
	sections := append([]string{`"Parameters": {"P1": {"Type": "String"}, "P2": {"Type": "String", "Default": "d2"},
		"AWS::IoT::Certificate::Id": {"Type": "String"}, "AWS::IoT::Certificate::CommonName": {"Type": "String"}}`,
		`"Resources": {` + resources + `}`}, extra...)
	return "{" + strings.Join(sections, ",") + "}"
}

// thingNamed is a thing resource whose name is expr.
func thingNamed(expr string) string {
	return `"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": ` + expr + `}}`
}

func TestParseProvisioningTemplate(t *testing.T) {
	for _, tt := range []struct {
		name, body, want string // want: "" or a part of the message
	}{
		{"ok/aws-jitp-example", awsJITPTemplate, ""},
		{"ok/policy-by-name", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "fleet"}}`), ""},
		{"ok/policy-document-object", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}}}`), ""},
		{"ok/all-functions", tmpl(thingNamed(`{"Fn::Join": ["-", [{"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "P1"}]}]}, {"Fn::Sub": "${P2}"}, {"Fn::FindInMap": ["m", "k", "v"]}]]}`),
			`"Mappings": {"m": {"k": {"v": "x"}}}`), ""},
		{"ok/device-configuration-ignored", tmpl(thingNamed(`"t"`), `"DeviceConfiguration": {"Foo": "Bar"}`), ""},
		{"fail/not-json", `{"Resources": `, "not JSON"},
		{"fail/two-values", `{"Resources": {}} {}`, "more than one JSON value"},
		{"fail/array", `[]`, "not a JSON object"},
		{"fail/unknown-section", `{"Resources": {}, "Conditions": {}}`, `unknown section "Conditions"`},
		{"fail/no-resources", `{"Parameters": {}}`, "no Resources section"},
		{"fail/parameter-type", `{"Parameters": {"P": {"Type": "Number"}}, "Resources": {}}`, `"Type": "String"`},
		{"fail/parameter-default-not-string", `{"Parameters": {"P": {"Type": "String", "Default": 3}}, "Resources": {}}`, "Default"},
		{"fail/parameter-unknown-member", `{"Parameters": {"P": {"Type": "String", "AllowedValues": []}}, "Resources": {}}`, "AllowedValues"},
		{"fail/resource-no-type", tmpl(`"x": {"Properties": {}}`), "has no Type"},
		{"fail/resource-unknown-type", tmpl(`"x": {"Type": "AWS::IoT::ThingGroup", "Properties": {}}`), `type "AWS::IoT::ThingGroup"`},
		{"fail/resource-unknown-member", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "DependsOn": "y"}`), "DependsOn"},
		{"fail/thing-unknown-property", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a", "Color": "red"}}`), `"Color"`},
		{"fail/thing-no-name", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {}}`), "no ThingName"},
		{"fail/two-things", tmpl(thingNamed(`"a"`) + `, "thing2": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "b"}}`), "one thing"},
		{"fail/billing-group", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a", "BillingGroup": "b"}}`), "billing groups"},
		{"fail/certificate-csr", tmpl(`"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateSigningRequest": {"Ref": "P1"}}}`), "device's own"},
		{"fail/certificate-no-id", tmpl(`"c": {"Type": "AWS::IoT::Certificate", "Properties": {"Status": "ACTIVE"}}`), "no CertificateId"},
		{"fail/certificate-status", tmpl(`"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "REVOKED"}}`), "ACTIVE or INACTIVE"},
		{"fail/two-certificates", tmpl(`"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "a"}}, "d": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "b"}}`), "one certificate"},
		{"fail/policy-name-and-document", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "a", "PolicyDocument": "` + policyDoc + `"}}`), "not both"},
		{"fail/policy-neither", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {}}`), "not both and not neither"},
		{"fail/policy-malformed", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": "{\"Statement\": []}"}}`), "malformed"},
		{"fail/policy-bad-name", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "a b"}}`), "PolicyName"},
		{"fail/policy-override", tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "a"}, "OverrideSettings": {}}`), "not available for policy"},
		{"fail/override-unknown-property", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"ThingName": "REPLACE"}}`), "cannot be overridden"},
		{"fail/override-unknown-action", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"ThingGroups": "UPSERT"}}`), "DO_NOTHING, REPLACE, FAIL or MERGE"},
		{"fail/override-merge-type", tmpl(`"x": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"THING_TYPE_NAME": "MERGE"}}`), "MERGE is valid only"},
		{"fail/ref-undeclared", tmpl(thingNamed(`{"Ref": "Nope"}`)), `"Nope"`},
		{"fail/ref-not-string", tmpl(thingNamed(`{"Ref": ["P1"]}`)), "Ref takes"},
		{"fail/unknown-function", tmpl(thingNamed(`{"Fn::If": ["c", "a", "b"]}`)), "unknown intrinsic function Fn::If"},
		{"fail/getatt", tmpl(thingNamed(`{"Fn::GetAtt": ["c", "Arn"]}`)), "Fn::GetAtt"},
		{"fail/join-form", tmpl(thingNamed(`{"Fn::Join": ["-"]}`)), "Fn::Join takes"},
		{"fail/select-form", tmpl(thingNamed(`{"Fn::Select": [0]}`)), "Fn::Select takes"},
		{"fail/split-empty-delimiter", tmpl(thingNamed(`{"Fn::Split": ["", "a"]}`)), "non-empty"},
		{"fail/findinmap-unknown-map", tmpl(thingNamed(`{"Fn::FindInMap": ["m", "k", "v"]}`)), `mapping "m"`},
		{"fail/sub-undeclared", tmpl(thingNamed(`{"Fn::Sub": "x-${Nope}"}`)), "${Nope}"},
		{"fail/sub-unterminated", tmpl(thingNamed(`{"Fn::Sub": "x-${P1"}`)), "unterminated"},
		{"fail/nested-undeclared", tmpl(thingNamed(`{"Fn::Join": ["", [{"Ref": "Nope"}]]}`)), `"Nope"`},
		{"fail/mapping-function", tmpl(thingNamed(`"a"`), `"Mappings": {"m": {"k": {"v": {"Ref": "P1"}}}}`), "literal values only"},
		{"fail/too-long", `{"Resources": {}, "x": "` + strings.Repeat("a", 10240) + `"}`, "longer than 10240"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fleetcert.ParseProvisioningTemplate(tt.body)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, fleetcert.EInvalidRequest)
			if !strings.Contains(fleetcert.ErrorMessage(err), tt.want) {
				t.Fatalf("message %q does not say %q", fleetcert.ErrorMessage(err), tt.want)
			}
		})
	}
}

func TestResolveProvisioningTemplate(t *testing.T) {
	params := map[string]string{"P1": "a,b,c", "AWS::IoT::Certificate::Id": "abc", "AWS::IoT::Certificate::CommonName": "dev-1"}
	name := func(t *testing.T, expr string, extra ...string) (string, error) {
		t.Helper()
		tp, err := fleetcert.ParseProvisioningTemplate(tmpl(thingNamed(expr), extra...))
		if err != nil {
			t.Fatal(err)
		}
		plan, err := tp.Resolve(params)
		if err != nil {
			return "", err
		}
		return plan.Thing.Name, nil
	}
	for _, tt := range []struct{ name, expr, want string }{
		{"ok/literal", `"lamp"`, "lamp"},
		{"ok/ref", `{"Ref": "AWS::IoT::Certificate::CommonName"}`, "dev-1"},
		{"ok/ref-default", `{"Ref": "P2"}`, "d2"},
		{"ok/join", `{"Fn::Join": ["_", ["ThingPrefix", {"Ref": "AWS::IoT::Certificate::CommonName"}]]}`, "ThingPrefix_dev-1"},
		{"ok/join-empty-delimiter", `{"Fn::Join": ["", ["a", "b"]]}`, "ab"},
		{"ok/join-number", `{"Fn::Join": ["-", ["a", 7]]}`, "a-7"},
		{"ok/select-split", `{"Fn::Select": [1, {"Fn::Split": [",", {"Ref": "P1"}]}]}`, "b"},
		{"ok/select-string-index", `{"Fn::Select": ["2", ["x", "y", "z"]]}`, "z"},
		{"ok/sub", `{"Fn::Sub": "${AWS::IoT::Certificate::CommonName}-${P2}"}`, "dev-1-d2"},
		{"ok/sub-variables", `{"Fn::Sub": ["${a}-${P2}", {"a": {"Ref": "AWS::IoT::Certificate::CommonName"}}]}`, "dev-1-d2"},
		{"ok/findinmap", `{"Fn::FindInMap": ["m", {"Ref": "P2"}, "v"]}`, "mapped"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := name(t, tt.expr, `"Mappings": {"m": {"d2": {"v": "mapped"}}}`)
			if err != nil || got != tt.want {
				t.Fatalf("got %q %v, want %q", got, err, tt.want)
			}
		})
	}
	for _, tt := range []struct{ name, expr, want string }{
		{"fail/select-out-of-bounds", `{"Fn::Select": [3, ["x"]]}`, "not an index"},
		{"fail/select-negative", `{"Fn::Select": [-1, ["x"]]}`, "not an index"},
		{"fail/select-null", `{"Fn::Select": [0, [null]]}`, "null"},
		{"fail/select-not-list", `{"Fn::Select": [0, "x"]}`, "needs a list"},
		{"fail/join-not-list", `{"Fn::Join": ["-", "x"]}`, "needs a list"},
		{"fail/join-of-list", `{"Fn::Join": ["-", [["x"]]]}`, "a string is needed"},
		{"fail/name-is-list", `{"Fn::Split": [",", "a,b"]}`, "a string is needed"},
		{"fail/findinmap-missing-key", `{"Fn::FindInMap": ["m", "nokey", "v"]}`, "no key"},
		{"fail/bad-thing-name", `"a b"`, "ThingName"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := name(t, tt.expr, `"Mappings": {"m": {"d2": {"v": "mapped"}}}`)
			wantCode(t, err, fleetcert.EInvalidRequest)
			if !strings.Contains(fleetcert.ErrorMessage(err), tt.want) {
				t.Fatalf("message %q does not say %q", fleetcert.ErrorMessage(err), tt.want)
			}
		})
	}
	t.Run("fail/parameter-missing", func(t *testing.T) {
		// jit-provisioning.html: "The certificate must contain values for
		// all of the parameters in the template body."
		tp, err := fleetcert.ParseProvisioningTemplate(awsJITPTemplate)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tp.Resolve(map[string]string{"AWS::IoT::Certificate::Id": "x", "AWS::IoT::Certificate::CommonName": "dev"})
		wantCode(t, err, fleetcert.EInvalidRequest)
		if !strings.Contains(fleetcert.ErrorMessage(err), "AWS::IoT::Certificate::") {
			t.Fatal(err)
		}
	})
	t.Run("ok/aws-jitp-example", func(t *testing.T) {
		tp, err := fleetcert.ParseProvisioningTemplate(awsJITPTemplate)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := tp.Resolve(map[string]string{"AWS::IoT::Certificate::Id": "abc", "AWS::IoT::Certificate::CommonName": "bulb-7",
			"AWS::IoT::Certificate::SerialNumber": "SN7", "AWS::IoT::Certificate::Country": "WA"})
		if err != nil {
			t.Fatal(err)
		}
		th := plan.Thing
		if th.Name != "bulb-7" || th.TypeName != "lightBulb-versionA" || !reflect.DeepEqual(th.Groups, []string{"v1-lightbulbs", "WA"}) ||
			!maps.Equal(th.Attributes, map[string]string{"version": "v1", "serialNumber": "SN7"}) ||
			th.Overrides["AttributePayload"] != "MERGE" || th.Overrides["ThingTypeName"] != "REPLACE" || th.Overrides["ThingGroups"] != "DO_NOTHING" {
			t.Errorf("thing %+v", th)
		}
		if plan.Certificate.ID != "abc" || plan.Certificate.Status != fleetcert.StatusActive {
			t.Errorf("certificate %+v", plan.Certificate)
		}
		// provision-template.html: PolicyName "Defaults to a hash of the
		// policy document."
		doc := `{ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action":["iot:Publish"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/foo/bar"] }] }`
		sum := sha256.Sum256([]byte(doc))
		if len(plan.Policies) != 1 || plan.Policies[0].Document != doc || plan.Policies[0].Name != hex.EncodeToString(sum[:]) {
			t.Errorf("policies %+v", plan.Policies)
		}
	})
	t.Run("ok/certificate-status", func(t *testing.T) {
		for status, want := range map[string]fleetcert.Status{`"Active"`: fleetcert.StatusActive, `"INACTIVE"`: fleetcert.StatusInactive, `{"Ref": "P1"}`: ""} {
			tp, err := fleetcert.ParseProvisioningTemplate(tmpl(`"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": ` + status + `}}`))
			if err != nil {
				t.Fatal(err)
			}
			plan, err := tp.Resolve(params)
			if want == "" {
				wantCode(t, err, fleetcert.EInvalidRequest) // "a,b,c" is no status
				continue
			}
			if err != nil || plan.Certificate.Status != want {
				t.Errorf("%s: %+v %v", status, plan, err)
			}
		}
	})
	t.Run("fail/policy-document-from-parameter", func(t *testing.T) {
		tp, err := fleetcert.ParseProvisioningTemplate(tmpl(`"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": {"Ref": "P1"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = tp.Resolve(params)
		wantCode(t, err, fleetcert.EMalformedPolicy)
	})
}

func TestJITPParameters(t *testing.T) {
	cert := testpki.New(t, testpki.Options{Subject: &pkix.Name{
		CommonName: "dev-9", Country: []string{"FR"}, Organization: []string{"Acme"}, OrganizationalUnit: []string{"Lamps"},
		Province: []string{"Bretagne"}, Locality: []string{"Rennes"}, SerialNumber: "SN-9",
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 46}, Value: "q1"}},
	}})
	got := fleetcert.JITPParameters(cert.Cert, "id-9")
	want := map[string]string{
		fleetcert.ParamCommonName: "dev-9", fleetcert.ParamCountry: "FR", fleetcert.ParamOrganization: "Acme",
		fleetcert.ParamOrganizationalUnit: "Lamps", fleetcert.ParamStateName: "Bretagne", fleetcert.ParamSerialNumber: "SN-9",
		fleetcert.ParamDistinguishedNameQualifier: "q1", fleetcert.ParamCertificateID: "id-9",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// A field the subject lacks is no parameter (and a template that
	// declares it without a Default cannot be applied).
	bare := fleetcert.JITPParameters(testpki.New(t, testpki.Options{CommonName: "only-cn"}).Cert, "id")
	if len(bare) != 2 || bare[fleetcert.ParamCommonName] != "only-cn" {
		t.Fatalf("bare: %v", bare)
	}
}
