package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// awsCLIPath returns the aws CLI, or skips.
func awsCLIPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("aws"); err == nil {
		return p
	}
	if _, err := os.Stat("/root/.pyenv/shims/aws"); err == nil {
		return "/root/.pyenv/shims/aws"
	}
	t.Skip("aws CLI not installed (scripts/test installs it)")
	return ""
}

// Just-in-time provisioning the AWS way, against the binary: the CA is
// registered with the aws CLI and a provisioning template in the form of
// AWS's example (https://docs.aws.amazon.com/iot/latest/developerguide/jit-provisioning.html);
// the device, a mosquitto client presenting its certificate and its CA's,
// is refused on its first connection, connects on its retry as the thing
// the template made, and may use its own topics only.
func TestJustInTimeProvisioningCLI(t *testing.T) {
	cli := awsCLIPath(t)
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("mosquitto_pub not installed (Debian package mosquitto-clients; scripts/test installs it)")
	}
	s, addr, caFile := startGatewayServer(t)
	dir := t.TempDir()
	aws := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"iot", "--endpoint-url", "http://" + s.addr, "--region", testRegion, "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+testKeyID, "AWS_SECRET_ACCESS_KEY="+testSecret,
			"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
			"AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	template, err := json.Marshal(map[string]any{
		"Parameters": map[string]any{
			"AWS::IoT::Certificate::CommonName": map[string]string{"Type": "String"},
			"AWS::IoT::Certificate::Id":         map[string]string{"Type": "String"},
		},
		"Resources": map[string]any{
			"thing": map[string]any{"Type": "AWS::IoT::Thing", "Properties": map[string]any{
				"ThingName": map[string]string{"Ref": "AWS::IoT::Certificate::CommonName"}}},
			"certificate": map[string]any{"Type": "AWS::IoT::Certificate", "Properties": map[string]any{
				"CertificateId": map[string]string{"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
			"policy": map[string]any{"Type": "AWS::IoT::Policy", "Properties": map[string]any{"PolicyDocument": thingTopicsPolicy}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	config, _ := json.Marshal(map[string]string{"templateBody": string(template), "roleArn": "arn:aws:iam::123456789012:role/JITPRole"})
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Greenhouse CA"})
	aws("register-ca-certificate", "--ca-certificate", "file://"+write("ca.pem", ca.PEM), "--certificate-mode", "SNI_ONLY",
		"--set-as-active", "--allow-auto-registration", "--registration-config", "file://"+write("config.json", string(config)))

	leaf := testpki.New(t, testpki.Options{Parent: ca, CommonName: "greenhouse-7"})
	_, keyFile := deviceFiles(t, leaf)
	chain := write("chain.pem", leaf.PEM+ca.PEM) // the device presents its CA's certificate too
	pub := func(clientID, topic string) (string, error) {
		args := append(mosquittoArgs(addr, caFile, chain, keyFile), "-i", clientID, "-t", topic, "-m", "hi", "-q", "1")
		out, err := exec.Command("mosquitto_pub", args...).CombinedOutput()
		return string(out), err
	}
	if out, err := pub("greenhouse-7", "things/greenhouse-7/temperature"); err == nil {
		t.Fatalf("the first connection was admitted: %s", out)
	}
	if out, err := pub("greenhouse-7", "things/greenhouse-7/temperature"); err != nil {
		t.Fatalf("the retry after provisioning: %v %s", err, out)
	}
	// The template's thing and policy are there, through the API.
	if out := aws("list-thing-principals", "--thing-name", "greenhouse-7"); !strings.Contains(out, ":cert/") {
		t.Fatalf("thing greenhouse-7 has no certificate: %s", out)
	}
	if out, err := pub("greenhouse-8", "things/greenhouse-8/temperature"); err == nil {
		t.Fatalf("connected as another thing: %s", out)
	}
	if out, err := pub("greenhouse-7", "things/greenhouse-8/temperature"); err == nil {
		t.Fatalf("published to another thing's topic: %s", out)
	}
}
