package awsapi_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
)

// TestAWSCLI_Policies drives the policy lifecycle with the aws CLI
// (botocore's serializer for the policy operations): create a policy,
// attach it to a certificate, test the authorization it grants, see the
// certificate's deletion refused while attached, detach, delete.
func TestAWSCLI_Policies(t *testing.T) {
	cli := awsCLI(t)
	e := newEnv(t)
	url := e.URL()
	dir := t.TempDir()
	run := func(args ...string) (map[string]any, string, error) {
		t.Helper()
		return runCLI(t, cli, url, dir, e.KeyA, args...)
	}
	must := func(args ...string) map[string]any {
		t.Helper()
		out, stderr, err := run(args...)
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	mustFail := func(code string, args ...string) {
		t.Helper()
		_, stderr, err := run(args...)
		if err == nil || !strings.Contains(stderr, code) {
			t.Fatalf("aws %v: %v, stderr %q; want %s", args, err, stderr, code)
		}
	}

	docFile := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(docFile, []byte(testPolicyDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	out := must("create-policy", "--policy-name", "devices", "--policy-document", "file://"+docFile)
	if out["policyArn"] != "arn:aws:iot:us-east-1:111111111111:policy/devices" || out["policyVersionId"] != "1" {
		t.Fatalf("created %v", out)
	}
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	certARN := fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountA, Region: testRegion}, id)
	must("attach-policy", "--policy-name", "devices", "--target", certARN)

	decide := func(topic string) map[string]any {
		t.Helper()
		infos := `[{"actionType":"PUBLISH","resources":["arn:aws:iot:us-east-1:111111111111:topic/` + topic + `"]}]`
		out := must("test-authorization", "--principal", certARN, "--client-id", "device-1", "--auth-infos", infos)
		results, _ := out["authResults"].([]any)
		if len(results) != 1 {
			t.Fatalf("test-authorization: %v", out)
		}
		return results[0].(map[string]any)
	}
	if r := decide("a/b"); r["authDecision"] != "ALLOWED" ||
		r["allowed"].(map[string]any)["policies"].([]any)[0].(map[string]any)["policyName"] != "devices" {
		t.Fatalf("a/b: %v", r)
	}
	if r := decide("b"); r["authDecision"] != "IMPLICIT_DENY" {
		t.Fatalf("b: %v", r)
	}

	must("update-certificate", "--certificate-id", id, "--new-status", "INACTIVE")
	mustFail("DeleteConflictException", "delete-certificate", "--certificate-id", id)
	mustFail("DeleteConflictException", "delete-policy", "--policy-name", "devices")
	must("detach-policy", "--policy-name", "devices", "--target", certARN)
	must("delete-certificate", "--certificate-id", id)
	must("delete-policy", "--policy-name", "devices")
	mustFail("ResourceNotFoundException", "get-policy", "--policy-name", "devices")
}
