package main_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// thingTopicsPolicy is AWS's "topics specific to each device" example
// (https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html):
// a device connects as its thing name and uses the topics under it.
const thingTopicsPolicy = `{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
  {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/things/${iot:Connection.Thing.ThingName}/*"},
  {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/things/${iot:Connection.Thing.ThingName}/*"}]}`

// onboardThing registers a new device certificate ACTIVE, makes it thing
// name and attaches thingTopicsPolicy, with the SDK, as an AWS onboarding
// script does.
func onboardThing(t *testing.T, c *iot.Client, name string) *testpki.Cert {
	t.Helper()
	ctx := context.Background()
	cert := testpki.Leaf(t)
	out, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(cert.PEM), Status: types.CertificateStatusActive,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String(name), Principal: out.CertificateArn}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("thing-topics"), PolicyDocument: aws.String(thingTopicsPolicy)})
	if exists := new(types.ResourceAlreadyExistsException); err != nil && !errors.As(err, &exists) {
		t.Fatal(err)
	}
	if _, err := c.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("thing-topics"), Target: out.CertificateArn}); err != nil {
		t.Fatal(err)
	}
	return cert
}

// With mosquitto's clients against the real binary: a device allowed only
// its own topics cannot subscribe to, publish to or read another's.
func TestGatewayPoliciesMosquitto(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Skip("mosquitto_sub not installed (Debian package mosquitto-clients; scripts/test installs it)")
	}
	s, addr, caFile := startGatewayServer(t)
	c := s.defaultClient()
	one, two := onboardThing(t, c, "device-1"), onboardThing(t, c, "device-2")
	operator, _ := registerDevice(t, c, types.CertificateStatusActive) // the open "devices" policy
	args := func(cert *testpki.Cert, clientID string, extra ...string) []string {
		certFile, keyFile := deviceFiles(t, cert)
		return append(append(mosquittoArgs(addr, caFile, certFile, keyFile), "-i", clientID), extra...)
	}
	run := func(name string, a ...string) (string, error) {
		out, err := exec.Command(name, a...).CombinedOutput()
		return string(out), err
	}

	// device-1 listens on its own topics, for one message.
	out := &testwait.Buffer{}
	sub := exec.Command("mosquitto_sub", args(one, "device-1", "-t", "things/device-1/#", "-C", "1", "-v")...)
	sub.Stdout, sub.Stderr = out, out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sub.Wait() }()
	t.Cleanup(func() {
		if sub.ProcessState == nil {
			sub.Process.Kill()
			<-exited
		}
	})
	waitFor(t, "mosquitto_sub connected as device-1", func() bool {
		return strings.Contains(s.stderr.String(), `msg="device connected"`) && strings.Contains(s.stderr.String(), "clientId=device-1 ")
	})

	t.Run("refused/connect as another thing", func(t *testing.T) {
		if out, err := run("mosquitto_pub", args(two, "device-1", "-t", "things/device-2/x", "-m", "x")...); err == nil {
			t.Fatalf("device-2's certificate connected as device-1: %s", out)
		}
	})
	t.Run("refused/subscribe to another's topics", func(t *testing.T) {
		// SUBACK 0x80: mosquitto_sub says so and exits.
		out, _ := run("mosquitto_sub", args(two, "device-2", "-t", "things/device-1/#", "-C", "1", "-W", "10")...)
		if !strings.Contains(out, "All subscription requests were denied") {
			t.Fatalf("subscribed to device-1's topics: %s", out)
		}
	})
	t.Run("refused/publish to another's topics", func(t *testing.T) {
		// QoS 1: the gateway ends the connection (AUTH_ERROR), as AWS does.
		if out, err := run("mosquitto_pub", args(two, "device-2", "-t", "things/device-1/cmd", "-m", "forged", "-q", "1")...); err == nil {
			t.Fatalf("published to device-1's topic: %s", out)
		}
		// QoS 0: dropped; mosquitto_pub cannot tell.
		if out, err := run("mosquitto_pub", args(two, "device-2", "-t", "things/device-1/cmd", "-m", "forged-0")...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("ok/own topics", func(t *testing.T) {
		if out, err := run("mosquitto_pub", args(two, "device-2", "-t", "things/device-2/data", "-m", "own", "-q", "1")...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	})
	// The first message device-1 receives is the operator's, not a forged one.
	if out, err := run("mosquitto_pub", args(operator, "operator", "-t", "things/device-1/hello", "-m", "hello", "-q", "1")...); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	select {
	case err := <-exited:
		if err != nil || strings.TrimSpace(out.String()) != "things/device-1/hello hello" {
			t.Fatalf("device-1 received %q (exit %v), want only the operator's hello", out.String(), err)
		}
	case <-time.After(testwait.Hang):
		t.Fatalf("device-1 received nothing within %s: %s", testwait.Hang, out.String())
	}
}
