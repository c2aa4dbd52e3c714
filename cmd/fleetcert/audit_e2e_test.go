package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// auditLines runs `fleetcert audit args…` and returns its JSON lines.
func auditLines(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	code, out, errOut := runFleetcert(t, nil, append([]string{"audit"}, args...)...)
	if code != 0 {
		t.Fatalf("fleetcert audit %v: exit %d: %s", args, code, errOut)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestAuditCommand: API calls against the running binary are in the audit
// log that `fleetcert audit` prints beside it, with the access key id, the
// account and the client's address; filters by certificate, time and
// count.
func TestAuditCommand(t *testing.T) {
	s := startServer(t)
	c := s.client(testKeyID, testSecret, testRegion)
	id := register(t, c, testpki.Leaf(t).PEM, types.CertificateStatusActive)
	if _, err := c.UpdateCertificate(context.Background(), &iot.UpdateCertificateInput{CertificateId: aws.String(id),
		NewStatus: types.CertificateStatusRevoked}); err != nil {
		t.Fatal(err)
	}
	register(t, c, testpki.Leaf(t).PEM, types.CertificateStatusActive) // another certificate
	k := keysPrinted(t, keysCommand(t, []string{"--data-dir", s.dataDir}, "create", "--account-id", "210987654321"))

	lines := auditLines(t, "--data-dir", s.dataDir, "--certificate", id, "--since", "1h")
	if len(lines) != 2 {
		t.Fatalf("%d lines for the certificate, want 2: %v", len(lines), lines)
	}
	for i, want := range []map[string]any{
		{"operation": "RegisterCertificateWithoutCA", "kind": "certificate.created", "newStatus": "ACTIVE"},
		{"operation": "UpdateCertificate", "kind": "certificate.updated", "oldStatus": "ACTIVE", "newStatus": "REVOKED"},
	} {
		want["certificateId"], want["accountId"], want["region"] = id, testAccount, testRegion
		want["actor"], want["actorAccountId"], want["sourceIp"] = testKeyID, testAccount, "127.0.0.1"
		for f, v := range want {
			if lines[i][f] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, f, lines[i][f], v, lines[i])
			}
		}
		if ts, _ := lines[i]["time"].(string); !strings.HasSuffix(ts, "Z") || len(ts) != len("2026-12-01T00:00:00.000Z") {
			t.Errorf("line %d: time %q", i, ts)
		}
	}
	if _, ok := lines[0]["oldStatus"]; ok {
		t.Errorf("a creation has an old status: %v", lines[0])
	}

	// Every account's entries, oldest first: the key made on the command
	// line is the last, by the cli.
	all := auditLines(t, "--data-dir", s.dataDir)
	last := all[len(all)-1]
	if last["operation"] != "CreateAccessKey" || last["resource"] != k.AccessKeyID || last["actor"] != "cli" || last["accountId"] != "210987654321" {
		t.Errorf("last entry %v, want CreateAccessKey of %s by cli", last, k.AccessKeyID)
	}
	if n := len(auditLines(t, "--data-dir", s.dataDir, "--account-id", testAccount, "--limit", "2")); n != 2 {
		t.Errorf("--limit 2 printed %d lines", n)
	}
	if n := len(auditLines(t, "--data-dir", s.dataDir, "--since", "2999-01-01")); n != 0 {
		t.Errorf("--since in the future printed %d lines", n)
	}
	if code, _, errOut := runFleetcert(t, nil, "audit", "--data-dir", s.dataDir, "--since", "yesterday"); code != 2 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("--since yesterday: exit %d, %s", code, errOut)
	}
}
