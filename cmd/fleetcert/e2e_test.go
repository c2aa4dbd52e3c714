package main_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/smithy-go"

	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// binary is the fleetcert binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetcert-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fleetcert")
	// -buildvcs=true: fleetcert version reports the commit (GOFLAGS may turn it off).
	build := exec.Command("go", "build", "-buildvcs=true", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fleetcert:", err)
		os.Exit(1)
	}
	code := testpg.Main(m) // and stops the PostgreSQL servers the tests started
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testAccount = "111122223333"
	testKeyID   = "AKIAFLEETCERTTEST001"
	testSecret  = "fleetcert-test-secret-0123456789abcdefgh"
	testRegion  = "eu-west-1"
)

// server is one fleetcert process on loopback ports.
type server struct {
	t       *testing.T
	dataDir string
	env     []string
	args    []string     // more flags for fleetcert serve
	http    *http.Client // how the test reaches the API (nil: http.DefaultClient)
	cmd     *exec.Cmd
	addr    string // API host:port
	url     string // API base URL
	stdout  *testwait.Buffer
	stderr  *testwait.Buffer
	exited  chan error
}

// startServer starts fleetcert serve on a new data dir with the test
// account's bootstrap key, and waits until /healthz answers 200.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), env: []string{
		"FLEETCERT_ACCESS_KEY_ID=" + testKeyID,
		"FLEETCERT_SECRET_ACCESS_KEY=" + testSecret,
		"FLEETCERT_ACCOUNT_ID=" + testAccount,
	}}
	s.start()
	t.Cleanup(s.stop)
	return s
}

var readyLine = regexp.MustCompile(`msg="fleetcert ready" api=(\S+) url=(\S+)`)

// launch runs the binary without waiting for it.
func (s *server) launch() {
	s.t.Helper()
	s.stdout, s.stderr = &testwait.Buffer{}, &testwait.Buffer{}
	args := []string{"serve", "--data-dir", s.dataDir, "--api-addr", "127.0.0.1:0"}
	if !slices.ContainsFunc(s.env, func(v string) bool { return strings.HasPrefix(v, "FLEETCERT_MQTT_ADDR=") }) {
		args = append(args, "--mqtt-addr", "127.0.0.1:0") // unless the test's environment sets it
	}
	s.cmd = exec.Command(binary, append(args, s.args...)...)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout = s.stdout
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
}

// start runs the binary and waits for readiness, bounded in time.
func (s *server) start() {
	s.t.Helper()
	s.launch()
	deadline := testwait.Deadline()
	for {
		if m := readyLine.FindStringSubmatch(s.stderr.String()); m != nil {
			s.addr, s.url = m[1], m[2]
			break
		}
		select {
		case err := <-s.exited:
			s.t.Fatalf("fleetcert exited before ready: %v\n%s", err, s.stderr.String())
		case <-time.After(testwait.Poll):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("fleetcert not ready after %s:\n%s", testwait.Hang, s.stderr.String())
		}
	}
	resp, err := s.httpClient().Get(s.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// exit waits for a process that is to end by itself, and returns its exit
// code.
func (s *server) exit() int {
	s.t.Helper()
	select {
	case err := <-s.exited:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		} else if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(testwait.Hang):
		s.cmd.Process.Kill()
		s.t.Fatalf("fleetcert still running after %s:\n%s", testwait.Hang, s.stderr.String())
		return -1
	}
}

func (s *server) httpClient() *http.Client {
	if s.http != nil {
		return s.http
	}
	return http.DefaultClient
}

// stop sends SIGTERM and waits for a clean exit, then kills by PID if
// needed.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(testwait.Hang):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// kill stops the process with SIGKILL, as a crash would.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

func (s *server) client(keyID, secret, region string) *iot.Client {
	return iot.New(iot.Options{
		Region:       region,
		BaseEndpoint: aws.String(s.url),
		HTTPClient:   s.httpClient(),
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		Retryer:      aws.NopRetryer{},
	})
}

func (s *server) defaultClient() *iot.Client { return s.client(testKeyID, testSecret, testRegion) }

// errorCode returns the AWS error code of err ("" for nil).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "not an API error: " + err.Error()
	}
	return ""
}

// httpStatus returns the HTTP status of the response that produced err.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func wantError(t *testing.T, err error, code string, status int) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %s", got, err, code)
	}
	if got := httpStatus(err); got != status {
		t.Fatalf("HTTP status = %d, want %d (%v)", got, status, err)
	}
}
