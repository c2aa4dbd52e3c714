package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// cliKey is what keys create and keys rotate print.
type cliKey struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	AccountID       string `json:"accountId"`
}

// keysCommand runs `fleetcert keys args… store…` and fails the test unless
// it succeeds; it returns its standard output.
func keysCommand(t *testing.T, store []string, args ...string) string {
	t.Helper()
	code, out, errOut := runFleetcert(t, nil, append(append([]string{"keys"}, args...), store...)...)
	if code != 0 {
		t.Fatalf("fleetcert keys %v: exit %d: %s", args, code, errOut)
	}
	return out
}

func keysPrinted(t *testing.T, out string) cliKey {
	t.Helper()
	var k cliKey
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.AccessKeyID == "" || k.SecretAccessKey == "" {
		t.Fatalf("printed key %q: %v", out, err)
	}
	return k
}

// works reports whether a request signed by c is accepted (any answer but
// an authentication refusal).
func works(c *iot.Client) bool {
	_, err := c.ListCertificates(context.Background(), &iot.ListCertificatesInput{})
	return err == nil
}

func wantRefused(t *testing.T, what string, c *iot.Client) {
	t.Helper()
	var err error
	testwait.For(t, what, func() bool {
		_, err = c.ListCertificates(context.Background(), &iot.ListCertificatesInput{})
		return err != nil
	})
	wantError(t, err, "UnrecognizedClientException", 403)
}

// TestKeysCommands: list, rotate and delete beside a running server on the
// embedded store. A deleted key, though the server had just verified (and
// cached) it, is refused once the server reads the change feed (a quarter
// of a second), not after the key cache's 10 seconds.
func TestKeysCommands(t *testing.T) {
	s := startServer(t)
	store := []string{"--data-dir", s.dataDir}
	k1 := keysPrinted(t, keysCommand(t, store, "create", "--account-id", "210987654321"))
	c1 := s.client(k1.AccessKeyID, k1.SecretAccessKey, testRegion)
	if !works(c1) {
		t.Fatal("new key refused")
	}

	var listed struct {
		AccessKeys []map[string]string `json:"accessKeys"`
	}
	out := keysCommand(t, store, "list", "--account-id", "210987654321")
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.AccessKeys) != 1 || listed.AccessKeys[0]["accessKeyId"] != k1.AccessKeyID ||
		listed.AccessKeys[0]["accountId"] != "210987654321" || listed.AccessKeys[0]["createDate"] == "" {
		t.Fatalf("keys list --account-id: %s", out)
	}
	all := keysCommand(t, store, "list")
	if !strings.Contains(all, testKeyID) || !strings.Contains(all, k1.AccessKeyID) ||
		strings.Contains(all, k1.SecretAccessKey) || strings.Contains(all, testSecret) || strings.Contains(all, "ecret") {
		t.Fatalf("keys list: %s", all)
	}

	// Rotation with a grace period: both keys work.
	k2 := keysPrinted(t, keysCommand(t, store, "rotate", "--access-key-id", k1.AccessKeyID, "--keep-old"))
	c2 := s.client(k2.AccessKeyID, k2.SecretAccessKey, testRegion)
	if k2.AccountID != k1.AccountID || !works(c2) || !works(c1) {
		t.Fatalf("rotate --keep-old: %+v", k2)
	}
	keysCommand(t, store, "delete", "--access-key-id", k1.AccessKeyID)
	wantRefused(t, "the deleted key is refused", c1)
	if !works(c2) {
		t.Fatal("the rotated key is refused after the old one's deletion")
	}

	// Rotation without one: the old key is refused.
	k3 := keysPrinted(t, keysCommand(t, store, "rotate", "--access-key-id", k2.AccessKeyID))
	wantRefused(t, "the rotated-out key is refused", c2)
	if !works(s.client(k3.AccessKeyID, k3.SecretAccessKey, testRegion)) {
		t.Fatal("the new key is refused")
	}

	code, _, errOut := runFleetcert(t, nil, append([]string{"keys", "delete", "--access-key-id", k1.AccessKeyID}, store...)...)
	if code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("deleting a deleted key: exit %d: %s", code, errOut)
	}
	code, _, errOut = runFleetcert(t, nil, "keys", "rotate", "--data-dir", s.dataDir)
	if code != 2 || !strings.Contains(errOut, "--access-key-id is required") {
		t.Fatalf("rotate without a key: exit %d: %s", code, errOut)
	}
	// FLEETCERT_ACCESS_KEY_ID names the bootstrap key (serve's
	// environment, often an EnvironmentFile): delete and rotate never take
	// their key from it.
	for _, verb := range []string{"delete", "rotate"} {
		code, _, errOut = runFleetcert(t, []string{"FLEETCERT_ACCESS_KEY_ID=" + testKeyID}, "keys", verb, "--data-dir", s.dataDir)
		if code != 2 || !strings.Contains(errOut, "--access-key-id is required") {
			t.Fatalf("%s with only FLEETCERT_ACCESS_KEY_ID set: exit %d: %s", verb, code, errOut)
		}
	}
}

// TestClusterKeyDelete: a key verified by two nodes on PostgreSQL is
// refused by both as soon as they hear of its deletion (LISTEN/NOTIFY).
func TestClusterKeyDelete(t *testing.T) {
	dbURL := testpg.NewDatabase(t)
	a := startNode(t, dbURL)
	b := startNode(t, dbURL)
	store := []string{"--database-url", dbURL}
	k := keysPrinted(t, keysCommand(t, store, "create", "--account-id", "210987654321"))
	ca := a.client(k.AccessKeyID, k.SecretAccessKey, testRegion)
	cb := b.client(k.AccessKeyID, k.SecretAccessKey, testRegion)
	if !works(ca) || !works(cb) {
		t.Fatal("new key refused")
	}
	keysCommand(t, store, "delete", "--access-key-id", k.AccessKeyID)
	wantRefused(t, "node a refuses the deleted key", ca)
	wantRefused(t, "node b refuses the deleted key", cb)
	if !works(a.defaultClient()) || !works(b.defaultClient()) {
		t.Fatal("another key is refused")
	}
}
