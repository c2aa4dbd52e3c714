package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// TestDurableAcrossKill registers and updates certificates, kills the
// process with SIGKILL right after the last acknowledgement, and finds
// every acknowledged write after a restart.
func TestDurableAcrossKill(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	var mu sync.Mutex
	acked := map[string]types.CertificateStatus{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				id := register(t, c, testpki.Leaf(t).PEM, types.CertificateStatusActive)
				st := types.CertificateStatusActive
				if i%2 == 0 {
					if _, err := c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked}); err != nil {
						t.Error(err)
						return
					}
					st = types.CertificateStatusRevoked
				}
				mu.Lock()
				acked[id] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.kill()
	s.start()
	c = s.defaultClient()
	for id, st := range acked {
		if got := describe(t, c, id).Status; got != st {
			t.Fatalf("%s: status %s after kill -9, acknowledged %s", id, got, st)
		}
	}
	if n := len(listAll(t, c, 250, true)); n != len(acked) {
		t.Fatalf("%d certificates after restart, %d acknowledged", n, len(acked))
	}
}

func TestServeLifecycle(t *testing.T) {
	s := startServer(t)

	// One log line per request, without secrets or bodies.
	c := s.defaultClient()
	register(t, c, testpki.Leaf(t).PEM, "")
	testwait.For(t, "the request's log line", func() bool {
		return strings.Contains(s.stderr.String(), "RegisterCertificateWithoutCA")
	})
	if strings.Contains(s.stderr.String(), testSecret) || strings.Contains(s.stderr.String(), "BEGIN CERTIFICATE") {
		t.Fatal("the log holds a secret or a request body")
	}

	// Request bodies are limited.
	body := bytes.Repeat([]byte("a"), 1<<20)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/certificate/register-no-ca", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}, req, hex.EncodeToString(sum[:]), "iot", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("X-Amzn-Errortype") == "" {
		t.Fatalf("1 MiB body: %s type=%q", resp.Status, resp.Header.Get("X-Amzn-Errortype"))
	}

	// Unknown routes answer AWS error JSON, not an HTML 404.
	resp, err = http.Get("http://" + s.addr + "/no-such-route")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Amzn-Errortype") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("unknown route: %s %v", resp.Status, resp.Header)
	}

	// SIGTERM: a graceful exit with status 0.
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(testwait.Hang):
		t.Fatalf("no exit %s after SIGTERM", testwait.Hang)
	}
}

var printedKey = regexp.MustCompile(`\{"accessKeyId":.*\}`)

// TestBootstrapKeyGenerated starts without FLEETCERT_ACCESS_KEY_ID: a key
// is generated, printed once, works, and is not printed again on restart.
func TestBootstrapKeyGenerated(t *testing.T) {
	s := &server{t: t, dataDir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	line := printedKey.FindString(s.stdout.String())
	var key struct{ AccessKeyID, SecretAccessKey, AccountID string }
	if err := json.Unmarshal([]byte(line), &key); err != nil || key.AccountID != "123456789012" {
		t.Fatalf("printed key %q: %v", s.stdout.String(), err)
	}
	if strings.Contains(s.stderr.String(), key.SecretAccessKey) {
		t.Fatal("generated secret logged")
	}
	c := s.client(key.AccessKeyID, key.SecretAccessKey, "us-east-1")
	register(t, c, testpki.Leaf(t).PEM, "")
	s.stop()
	s.start()
	if strings.Contains(s.stdout.String(), "accessKeyId") {
		t.Fatal("bootstrap key printed again on restart")
	}
	c = s.client(key.AccessKeyID, key.SecretAccessKey, "us-east-1")
	if n := len(listAll(t, c, 10, false)); n != 1 {
		t.Fatalf("%d certificates after restart", n)
	}
}

// TestAWSCLI runs the README's quick start with the real aws CLI.
func TestAWSCLI(t *testing.T) {
	awsPath, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("aws CLI not installed; the test command installs it")
	}
	s := startServer(t)
	dir := t.TempDir()
	leaf := testpki.Leaf(t)
	if err := os.WriteFile(dir+"/device.pem", []byte(leaf.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(awsPath, append([]string{"iot", "--endpoint-url", "http://" + s.addr, "--region", testRegion, "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+testKeyID, "AWS_SECRET_ACCESS_KEY="+testSecret,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
		return out
	}
	var reg struct{ CertificateID, CertificateArn string }
	json.Unmarshal(run("register-certificate-without-ca", "--certificate-pem", "file://"+dir+"/device.pem", "--status", "ACTIVE"), &reg)
	if len(reg.CertificateID) != 64 {
		t.Fatalf("register output: %+v", reg)
	}
	run("update-certificate", "--certificate-id", reg.CertificateID, "--new-status", "INACTIVE")
	var d struct{ CertificateDescription struct{ Status string } }
	json.Unmarshal(run("describe-certificate", "--certificate-id", reg.CertificateID), &d)
	if d.CertificateDescription.Status != "INACTIVE" {
		t.Fatalf("status via CLI: %+v", d)
	}
	var l struct {
		Certificates []struct{ CertificateID string }
	}
	json.Unmarshal(run("list-certificates"), &l)
	if len(l.Certificates) != 1 {
		t.Fatalf("list via CLI: %+v", l)
	}
	// An error reaches the CLI as the named exception.
	cmd := exec.Command(awsPath, "iot", "--endpoint-url", "http://"+s.addr, "--region", testRegion, "delete-certificate", "--certificate-id", strings.Repeat("0", 64))
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+testKeyID, "AWS_SECRET_ACCESS_KEY="+testSecret, "AWS_CONFIG_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ResourceNotFoundException") {
		t.Fatalf("CLI error: %v %s", err, out)
	}
	// The data plane is not served: the CLI shows what is not supported,
	// not a signature problem.
	cmd = exec.Command(awsPath, "iot-data", "--endpoint-url", "http://"+s.addr, "--region", testRegion, "publish", "--topic", "fleet/x", "--payload", "aGk=")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+testKeyID, "AWS_SECRET_ACCESS_KEY="+testSecret, "AWS_CONFIG_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "UnknownOperationException") || !strings.Contains(string(out), "does not support the AWS IoT data plane") {
		t.Fatalf("aws iot-data publish: %v %s", err, out)
	}
}
