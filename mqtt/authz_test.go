package mqtt_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// thingPolicy is AWS's example of a device policy: connect as your thing
// name, publish, subscribe and receive under it
// (https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html,
// "Policies to publish, subscribe and receive messages to/from topics
// specific to each device"; thing-policy-variables.html).
const thingPolicy = `{"Version": "2012-10-17", "Statement": [
	{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:111111111111:client/${iot:Connection.Thing.ThingName}"},
	{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:111111111111:topic/things/${iot:Connection.Thing.ThingName}/*"},
	{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:111111111111:topicfilter/things/${iot:Connection.Thing.ThingName}/*"},
	{"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:us-east-1:111111111111:topic/things/${iot:Connection.Thing.ThingName}/*"}]}`

// newThing registers an ACTIVE certificate, creates thing name and attaches
// the certificate to it, and attaches policy "thing" (thingPolicy) to the
// certificate: AWS's onboarding steps.
func (e *env) newThing(t *testing.T, name string) (*testpki.Cert, *fleetcert.Certificate) {
	t.Helper()
	ctx := context.Background()
	c := testpki.Leaf(t)
	cert, err := e.reg.RegisterCertificateWithoutCA(ctx, scopeA, c.PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.CreateThing(ctx, scopeA, fleetcert.CreateThingInput{Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.AttachThingPrincipal(ctx, scopeA, name, cert.ARN(), fleetcert.ExclusiveThing); err != nil {
		t.Fatal(err)
	}
	e.attach(scopeA, cert.ID, "thing", thingPolicy)
	return c, cert
}

// TestPolicyCertificateVariables: a policy naming the device by its
// certificate's subject (AWS's cert-policy-variables.html example,
// iot:Certificate.Subject.CommonName) is resolved at the door from the
// certificate the device presented.
func TestPolicyCertificateVariables(t *testing.T) {
	e := newEnv(t)
	c := testpki.New(t, testpki.Options{CommonName: "lamp-7"})
	cert := e.register(c, scopeA, fleetcert.StatusActive)
	if err := e.reg.DetachPolicy(context.Background(), scopeA, "open", cert.ARN()); err != nil {
		t.Fatal(err)
	}
	e.attach(scopeA, cert.ID, "by-cn", `{"Version": "2012-10-17", "Statement": [
	{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:111111111111:client/${iot:Certificate.Subject.CommonName}"}]}`)
	if _, err := e.dial(c, dialOptions{clientID: "lamp-7"}); err != nil {
		t.Fatalf("connect as the certificate's common name: %v", err)
	}
	if _, err := e.dial(c, dialOptions{clientID: "lamp-8"}); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Fatalf("connect as another name: %v, want CONNACK not authorized", err)
	}
}

func TestPolicyConnect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, _ := e.newThing(t, "sensor-1")

	// AWS IoT refuses a certificate without a policy: CONNACK "not
	// authorized" once the certificate itself is admitted.
	bare := testpki.Leaf(t)
	if _, err := e.reg.RegisterCertificateWithoutCA(ctx, scopeA, bare.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		cert     *testpki.Cert
		clientID string
		ok       bool
	}{
		{"ok/thing name", c, "sensor-1", true},
		{"refused/another client id", c, "sensor-2", false},
		{"refused/no policy", bare, "sensor-1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.dial(tc.cert, dialOptions{clientID: tc.clientID})
			if tc.ok != (err == nil) {
				t.Fatalf("connect as %s: %v, want ok %v", tc.clientID, err, tc.ok)
			}
			if !tc.ok && !strings.Contains(err.Error(), "not Authorized") {
				t.Fatalf("connect as %s: %v, want CONNACK not authorized", tc.clientID, err)
			}
			// MQTT 5: reason code 0x87, not authorized.
			if ack := e.connack5(t, tc.cert, tc.clientID); (ack.ReasonCode == 0) != tc.ok || (!tc.ok && ack.ReasonCode != 0x87) {
				t.Fatalf("MQTT 5 CONNACK reason %#x, want ok %v", ack.ReasonCode, tc.ok)
			}
		})
	}
	if n := e.refusedCount("NOT_AUTHORIZED_BY_POLICY"); n != 4 {
		t.Errorf("refused for policy: %d, want 4", n)
	}
}

// A device allowed only its own topics cannot publish to, subscribe to or
// receive another device's.
func TestPolicyTopics(t *testing.T) {
	e := newEnv(t)
	c1, _ := e.newThing(t, "sensor-1")
	c2, _ := e.newThing(t, "sensor-2")
	d1 := e.mustDial(c1, dialOptions{clientID: "sensor-1"})
	d2 := e.mustDial(c2, dialOptions{clientID: "sensor-2"})

	if rc := d1.mustSubscribe(t, "things/sensor-1/#", 1); rc != 1 {
		t.Fatalf("own filter: SUBACK %#x, want granted QoS 1", rc)
	}
	for _, f := range []string{"things/sensor-2/#", "things/#", "#"} {
		if rc := d1.mustSubscribe(t, f, 1); rc != 0x80 {
			t.Errorf("filter %s: SUBACK %#x, want 0x80 (failure)", f, rc)
		}
	}
	// d2 publishes to d1's topic at QoS 0 (dropped), then to its own; d1
	// subscribed to its own topics does not get the first.
	d2.mustPublish(t, "things/sensor-1/cmd", 0, false, "forged")
	if rc := d2.mustSubscribe(t, "things/sensor-2/#", 1); rc != 1 {
		t.Fatalf("own filter: SUBACK %#x", rc)
	}
	d2.mustPublish(t, "things/sensor-2/data", 1, false, "own")
	d2.expect(t, "things/sensor-2/data", "own")
	// d1 publishes to its own topic and receives it: the forged message
	// would have come before.
	d1.mustPublish(t, "things/sensor-1/data", 1, false, "hello")
	d1.expect(t, "things/sensor-1/data", "hello")
	// A retained message needs iot:RetainPublish, which thingPolicy does
	// not grant: it is dropped, and no later subscriber gets it.
	d1.mustPublish(t, "things/sensor-1/retained", 0, true, "kept?")
	d1.mustPublish(t, "things/sensor-1/after", 1, false, "after")
	d1.expect(t, "things/sensor-1/after", "after")
	d3 := e.mustDial(c1, dialOptions{clientID: "sensor-1"}) // takes over d1's session
	d3.mustSubscribe(t, "things/sensor-1/#", 1)
	d3.mustPublish(t, "things/sensor-1/after", 1, false, "again")
	d3.expect(t, "things/sensor-1/after", "again")
	if n := e.policyDenials(t, "iot:Publish"); n != 1 {
		t.Errorf("publish denials: %d, want 1", n)
	}
	// A denied QoS 1 publish of an MQTT 3.1.1 client ends its connection,
	// as AWS IoT does (its disconnected event says AUTH_ERROR).
	d2.Publish("things/sensor-1/cmd", 1, false, "forged").WaitTimeout(testwait.Hang)
	d2.waitLost(t)
}

// Policy changes reach live sessions at once: a new default version is
// applied to the next packet, and a detached policy disconnects.
func TestPolicyChangesApplyLive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, cert := e.newThing(t, "sensor-1")
	d := e.mustDial(c, dialOptions{clientID: "sensor-1"})
	d.mustSubscribe(t, "things/sensor-1/#", 1)
	d.mustPublish(t, "things/sensor-1/a", 1, false, "before")
	d.expect(t, "things/sensor-1/a", "before")

	// Version 2 allows connecting and the "b" topics only.
	v2 := strings.ReplaceAll(thingPolicy, "${iot:Connection.Thing.ThingName}/*", "${iot:Connection.Thing.ThingName}/b")
	epoch := e.gw.AuthzEpoch(scopeA)
	if _, _, err := e.reg.CreatePolicyVersion(ctx, scopeA, "thing", v2, true); err != nil {
		t.Fatal(err)
	}
	// The gateway has applied the change; the session's next packet is
	// checked against the new version. (A probe on "b" could not tell:
	// both versions allow it.)
	testwait.For(t, "the gateway to apply the new version", func() bool {
		return e.gw.AuthzEpoch(scopeA) > epoch
	})
	// "a" is no longer allowed: the sentinel on "b" arrives, "a" does not.
	d.mustPublish(t, "things/sensor-1/a", 0, false, "denied")
	d.mustPublish(t, "things/sensor-1/b", 1, false, "sentinel")
	for done := false; !done; {
		select {
		case m := <-d.messages:
			if string(m.Payload()) == "denied" {
				t.Fatal("a publish the new default version denies was delivered")
			}
			done = string(m.Payload()) == "sentinel"
		case <-time.After(testwait.Hang):
			t.Fatalf("no sentinel within %s", testwait.Hang)
		}
	}
	if !d.IsConnectionOpen() {
		t.Fatal("a policy change that still allows iot:Connect closed the session")
	}

	// Detaching the only policy: iot:Connect is denied, the session ends.
	if err := e.reg.DetachPolicy(ctx, scopeA, "thing", cert.ARN()); err != nil {
		t.Fatal(err)
	}
	d.waitLost(t)
	if _, err := e.dial(c, dialOptions{clientID: "sensor-1"}); err == nil {
		t.Fatal("connected again without a policy")
	}
}

// A device reconnecting costs no store read while its scope's
// authorization is unchanged; a change in the scope reads it again.
func TestPolicyReadsCached(t *testing.T) {
	e := newEnv(t)
	c, _ := e.newThing(t, "sensor-1")
	e.mustDial(c, dialOptions{clientID: "sensor-1"}).Disconnect(0)
	waitCaughtUp(t, e.gw)
	before := e.reads.Load()
	for i := 0; i < 3; i++ {
		e.mustDial(c, dialOptions{clientID: "sensor-1"}).Disconnect(0)
	}
	if n := e.reads.Load() - before; n != 0 {
		t.Errorf("%d store reads for 3 reconnections, want 0", n)
	}
}

// --device-policies off admits any ACTIVE certificate, as before policies.
func TestDevicePoliciesOff(t *testing.T) {
	e := newEnvWith(t, func(g *mqtt.Gateway) { g.DevicePoliciesOff = true })
	c := testpki.Leaf(t)
	if _, err := e.reg.RegisterCertificateWithoutCA(context.Background(), scopeA, c.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	d := e.mustDial(c, dialOptions{})
	d.mustSubscribe(t, "any/#", 1)
	d.mustPublish(t, "any/topic", 1, true, "x")
	d.expect(t, "any/topic", "x")
}

// policyDenials reads the gateway's count of denials of action.
func (e *env) policyDenials(t *testing.T, action string) int {
	return e.metric(fmt.Sprintf("fleetcert_mqtt_policy_denials_total{action=%q}", action))
}
