package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// jitpTemplate is a provisioning template in the form of AWS's JITP
// example (jit-provisioning.html): a thing named by the certificate's
// common name, the certificate activated, and thingPolicy by its document,
// with groups added.
func jitpTemplate(t *testing.T, groups ...string) string {
	t.Helper()
	thing := map[string]any{"ThingName": map[string]string{"Ref": "AWS::IoT::Certificate::CommonName"}}
	if groups != nil {
		thing["ThingGroups"] = groups
	}
	b, err := json.Marshal(map[string]any{
		"Parameters": map[string]any{
			"AWS::IoT::Certificate::CommonName": map[string]string{"Type": "String"},
			"AWS::IoT::Certificate::Id":         map[string]string{"Type": "String"},
		},
		"Resources": map[string]any{
			"thing": map[string]any{"Type": "AWS::IoT::Thing", "Properties": thing},
			"certificate": map[string]any{"Type": "AWS::IoT::Certificate", "Properties": map[string]any{
				"CertificateId": map[string]string{"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
			"policy": map[string]any{"Type": "AWS::IoT::Policy", "Properties": map[string]any{"PolicyDocument": thingPolicy}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) provisionCount(result string) int {
	return e.metric(fmt.Sprintf("fleetcert_mqtt_provision_thing_total{result=%q}", result))
}

// TestJustInTimeProvisioning: a device under a CA with a provisioning
// template is provisioned on its first CONNECT and refused, as on AWS; it
// connects on its retry, authorized by the template's policy through the
// normal policy check: its own topics and no one else's.
func TestJustInTimeProvisioning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	watcher := testpki.Leaf(t)
	e.register(watcher, scopeA, fleetcert.StatusActive)
	e.allow(scopeA, fleetcert.CertificateID(watcher.Cert.Raw))
	p := e.mustDial(watcher, dialOptions{})
	p.mustSubscribe(t, "$aws/events/certificates/registered/+", 1)

	registerCA := func(body string) (*testpki.Cert, *fleetcert.CACertificate) {
		ca := testpki.New(t, testpki.Options{IsCA: true})
		rec, err := e.reg.RegisterCACertificate(ctx, scopeA, fleetcert.RegisterCAInput{
			CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true, AllowAutoRegistration: true,
			RegistrationConfig: fleetcert.RegistrationConfig{TemplateBody: body, RoleARN: "arn:aws:iam::111111111111:role/JITPRole"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return ca, rec
	}

	t.Run("ok", func(t *testing.T) {
		ca, caRec := registerCA(jitpTemplate(t))
		leaf := testpki.New(t, testpki.Options{Parent: ca, CommonName: "lamp-1"})
		id := fleetcert.CertificateID(leaf.Cert.Raw)
		opts := dialOptions{clientID: "lamp-1", chain: []*testpki.Cert{ca}}
		if _, err := e.dial(leaf, opts); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Fatalf("first connection: %v, want CONNACK not authorized", err)
		}
		m := p.next(t, "$aws/events/certificates/registered/"+caRec.ID)
		var ev map[string]any
		if err := json.Unmarshal(m.Payload(), &ev); err != nil || ev["certificateId"] != id || ev["certificateStatus"] != "PENDING_ACTIVATION" {
			t.Errorf("event %s (%v)", m.Payload(), err)
		}
		if c, err := e.reg.DescribeCertificate(ctx, scopeA, id); err != nil || c.Status != fleetcert.StatusActive {
			t.Fatalf("certificate %+v %v", c, err)
		}
		if n := e.provisionCount("success"); n != 1 {
			t.Errorf("provisioned %d, want 1", n)
		}
		// The retry connects, as the thing the template made.
		d := e.mustDial(leaf, opts)
		if rc := d.mustSubscribe(t, "things/lamp-1/#", 1); rc != 1 {
			t.Fatalf("own filter: SUBACK %#x, want granted QoS 1", rc)
		}
		if rc := d.mustSubscribe(t, "things/lamp-2/#", 1); rc != 0x80 {
			t.Errorf("another thing's filter: SUBACK %#x, want 0x80", rc)
		}
		d.mustPublish(t, "things/lamp-1/state", 1, false, "on")
		d.expect(t, "things/lamp-1/state", "on")
		// Its policy names its thing: another client id is refused.
		if _, err := e.dial(leaf, dialOptions{clientID: "lamp-2", chain: []*testpki.Cert{ca}}); err == nil {
			t.Error("connected with a client id that is not its thing's name")
		}
	})

	t.Run("fail/template-error", func(t *testing.T) {
		ca, _ := registerCA(jitpTemplate(t, "no-such-group"))
		leaf := testpki.New(t, testpki.Options{Parent: ca, CommonName: "lamp-9"})
		before := e.provisionCount("client_error")
		for range 2 {
			if _, err := e.dial(leaf, dialOptions{clientID: "lamp-9", chain: []*testpki.Cert{ca}}); err == nil {
				t.Fatal("admitted")
			}
		}
		if n := e.provisionCount("client_error") - before; n != 2 {
			t.Errorf("client errors: %d, want 2 (one per attempt)", n)
		}
		if _, err := e.reg.DescribeCertificate(ctx, scopeA, fleetcert.CertificateID(leaf.Cert.Raw)); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("registered anyway: %v", err)
		}
		if _, err := e.reg.DescribeThing(ctx, scopeA, "lamp-9"); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("thing made anyway: %v", err)
		}
	})
}
