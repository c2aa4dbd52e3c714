package awsapi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
)

// awsCLI returns the path of the aws CLI (v1, botocore), or skips.
func awsCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the aws CLI takes about a second per call")
	}
	if p, err := exec.LookPath("aws"); err == nil {
		return p
	}
	if _, err := os.Stat("/root/.pyenv/shims/aws"); err == nil {
		return "/root/.pyenv/shims/aws"
	}
	t.Skip("aws CLI not installed")
	return ""
}

// TestAWSCLI drives the handler with botocore's signer and parser: the
// aws CLI pointed at the handler with --endpoint-url.
func TestAWSCLI(t *testing.T) {
	cli := awsCLI(t)
	e := newEnv(t)
	url := e.URL()
	dir := t.TempDir()
	run := func(key *fleetcert.AccessKey, args ...string) (map[string]any, string, error) {
		t.Helper()
		return runCLI(t, cli, url, dir, key, args...)
	}
	must := func(args ...string) map[string]any {
		t.Helper()
		out, stderr, err := run(e.KeyA, args...)
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, stderr)
		}
		return out
	}

	pemText, _, id := selfSignedPEM(t, "cli")
	file := filepath.Join(dir, "cli.pem")
	if err := os.WriteFile(file, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	out := must("register-certificate-without-ca", "--certificate-pem", "file://"+file, "--status", "ACTIVE")
	if out["certificateId"] != id {
		t.Fatalf("registered %v, want %s", out, id)
	}
	ids := []string{id, e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)}

	// --page-size is a member of this operation, so the CLI leaves paging
	// to the caller: follow nextMarker (base64, so '+', '/' and '=' travel
	// URI-encoded in the signed query).
	page1 := must("list-certificates", "--page-size", "1", "--ascending-order")
	marker, _ := page1["nextMarker"].(string)
	if certs, _ := page1["certificates"].([]any); len(certs) != 1 || marker == "" {
		t.Fatalf("page 1: %v", page1)
	}
	page2 := must("list-certificates", "--page-size", "1", "--ascending-order", "--marker", marker)
	certs, _ := page2["certificates"].([]any)
	if _, more := page2["nextMarker"]; len(certs) != 1 || more || certs[0].(map[string]any)["certificateId"] != ids[1] {
		t.Fatalf("page 2: %v", page2)
	}

	d := must("describe-certificate", "--certificate-id", ids[0])["certificateDescription"].(map[string]any)
	if d["status"] != "ACTIVE" || d["certificateId"] != ids[0] || d["creationDate"] == nil {
		t.Errorf("described %v", d)
	}

	must("update-certificate", "--certificate-id", ids[0], "--new-status", "INACTIVE")
	must("delete-certificate", "--certificate-id", ids[0], "--force-delete")

	for _, tt := range []struct {
		name string
		key  *fleetcert.AccessKey
		args []string
		code string
	}{
		{"fail/deleted certificate", e.KeyA, []string{"describe-certificate", "--certificate-id", ids[0]}, "ResourceNotFoundException"},
		{"fail/delete ACTIVE", e.KeyA, []string{"delete-certificate", "--certificate-id", ids[1]}, "CertificateStateException"},
		{"fail/wrong secret", &fleetcert.AccessKey{ID: e.KeyA.ID, Secret: strings.Repeat("x", 40)}, []string{"list-certificates"}, "InvalidSignatureException"},
		{"fail/unknown key", &fleetcert.AccessKey{ID: unknownKeyID, Secret: e.KeyA.Secret}, []string{"list-certificates"}, "UnrecognizedClientException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := run(tt.key, tt.args...)
			if err == nil || !strings.Contains(stderr, tt.code) {
				t.Errorf("aws %v: %v, stderr %q; want %s", tt.args, err, stderr, tt.code)
			}
		})
	}
}

// runCLI runs the aws CLI's iot command against url as key, with a
// private config dir, and returns its JSON output, its stderr and its error.
func runCLI(t *testing.T, cli, url, dir string, key *fleetcert.AccessKey, args ...string) (map[string]any, string, error) {
	t.Helper()
	cmd := exec.Command(cli, append([]string{"iot", "--endpoint-url", url, "--region", testRegion, "--output", "json"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"AWS_ACCESS_KEY_ID="+key.ID,
		"AWS_SECRET_ACCESS_KEY="+key.Secret,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_MAX_ATTEMPTS=1",
		"AWS_PAGER=",
	)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var out map[string]any
	if err == nil && strings.TrimSpace(stdout.String()) != "" {
		if jerr := json.Unmarshal([]byte(stdout.String()), &out); jerr != nil {
			t.Fatalf("aws %v: output %q: %v", args, stdout.String(), jerr)
		}
	}
	return out, stderr.String(), err
}

// TestAWSCLI_Things runs the onboarding steps of every AWS IoT script with
// the aws CLI: a thing, its certificate attached, listed, and the
// certificate refused deletion while attached.
func TestAWSCLI_Things(t *testing.T) {
	cli := awsCLI(t)
	e := newEnv(t)
	url, dir := e.URL(), t.TempDir()
	must := func(args ...string) map[string]any {
		t.Helper()
		out, stderr, err := runCLI(t, cli, url, dir, e.KeyA, args...)
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
	arn := fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountA, Region: testRegion}, id)

	out := must("create-thing", "--thing-name", "cli-thing", "--attribute-payload", `{"attributes":{"serial":"42"}}`)
	if out["thingArn"] != "arn:aws:iot:us-east-1:111111111111:thing/cli-thing" || out["thingId"] == "" {
		t.Fatalf("create-thing: %v", out)
	}
	must("attach-thing-principal", "--thing-name", "cli-thing", "--principal", arn)
	principals, _ := must("list-thing-principals", "--thing-name", "cli-thing")["principals"].([]any)
	if len(principals) != 1 || principals[0] != arn {
		t.Fatalf("list-thing-principals: %v", principals)
	}
	_, stderr, err := runCLI(t, cli, url, dir, e.KeyA, "delete-certificate", "--certificate-id", id)
	if err == nil || !strings.Contains(stderr, "DeleteConflictException") {
		t.Fatalf("delete-certificate of an attached certificate: %v, stderr %q", err, stderr)
	}
}
