package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert/policy"
)

func newCertificate(t testing.TB, subject pkix.Name, dns []string, ips []net.IP) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x921285cb),
		Subject:      subject,
		NotBefore:    time.Date(2024, 3, 26, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2034, 3, 26, 0, 0, 0, 0, time.UTC),
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertificateVariables(t *testing.T) {
	cert := newCertificate(t, pkix.Name{
		CommonName:         "LightBulb Device Cert",
		OrganizationalUnit: []string{"LightBulb"},
		Country:            []string{"US"},
		// Separate RDNs keep their order; values within one RDN are a DER SET,
		// sorted by encoding.
		ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Example Corp"},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "AnyCompany"},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 42}, Value: "Bulb"},
		},
	}, []string{"bulb.example.com", "b2.example.com"}, []net.IP{net.ParseIP("10.0.0.7")})
	vars := policy.CertificateVariables(cert)
	for key, want := range map[string][]string{
		"Subject.CommonName":                []string{"LightBulb Device Cert"},
		"Subject.Organization":              []string{"Example Corp", "AnyCompany"},
		"Subject.GivenName":                 []string{"Bulb"},
		"Issuer.CommonName":                 []string{"LightBulb Device Cert"},
		"Subject.AlternativeName.DNSName":   []string{"bulb.example.com", "b2.example.com"},
		"Subject.AlternativeName.IPAddress": []string{"10.0.0.7"},
		"SerialNumber":                      []string{"921285cb"},
	} {
		if got := vars[key]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html:
	// the first value by default, ".N" from zero, an index out of range fails.
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":[
	  "arn:aws:iot:us-east-1:123456789012:topic/first/${iot:Certificate.Subject.Organization}",
	  "arn:aws:iot:us-east-1:123456789012:topic/second/${iot:Certificate.Subject.Organization.1}",
	  "arn:aws:iot:us-east-1:123456789012:topic/third/${iot:Certificate.Subject.Organization.2}",
	  "arn:aws:iot:us-east-1:123456789012:topic/list/${iot:Certificate.Subject.Organization.List}",
	  "arn:aws:iot:us-east-1:123456789012:topic/cn/${iot:Certificate.Subject.CommonName}"]}]}`
	// The same variables whether the caller built them (Certificate) or
	// the policy package reads them from the certificate when a policy
	// uses one (Leaf, the gateway's way).
	for _, ctx := range []policy.Context{{ClientID: "c", Certificate: vars}, {ClientID: "c", Leaf: cert}} {
		check(t, compile(t, ctx, doc), []request{
			{"iot:Publish", topic("first/Example Corp"), policy.Allowed},
			{"iot:Publish", topic("second/AnyCompany"), policy.Allowed},
			{"iot:Publish", topic("first/AnyCompany"), policy.ImplicitDeny},
			{"iot:Publish", topic("third/"), policy.ImplicitDeny},
			{"iot:Publish", topic("list/Example Corp"), policy.ImplicitDeny},
			{"iot:Publish", topic("cn/LightBulb Device Cert"), policy.Allowed},
		})
	}

	// Registered devices (2): ForAllValues:StringEquals over .List (same page).
	orgs := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]},
	  {"Effect":"Allow","Action":["iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:Connection.Thing.ThingName}"],
	   "Condition":{"ForAllValues:StringEquals":{"iot:Certificate.Subject.Organization.List":["Example Corp","AnyCompany"]}}}]}`
	ctx := thing("bulb")
	ctx.Leaf = cert
	check(t, compile(t, ctx, orgs), []request{
		{"iot:Connect", client("bulb"), policy.Allowed},
		{"iot:Publish", topic("my/topic/bulb"), policy.Allowed},
	})
	ctx.Certificate = map[string][]string{"Subject.Organization": {"Example Corp", "Evil Inc"}}
	check(t, compile(t, ctx, orgs), []request{{"iot:Publish", topic("my/topic/bulb"), policy.ImplicitDeny}})

	// "If wildcard characters are present in certificate attributes, the policy
	// variable is not replaced" (same page, "Limitations").
	ctx = policy.Context{ClientID: "c", Certificate: map[string][]string{"Subject.CommonName": {"a*"}}}
	check(t, compile(t, ctx, doc), []request{{"iot:Publish", topic("cn/a*"), policy.ImplicitDeny}})
}
