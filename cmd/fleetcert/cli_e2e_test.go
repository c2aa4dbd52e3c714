package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// runFleetcert runs the binary with args and env and returns its exit code
// and outputs.
func runFleetcert(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// Every command and subcommand answers --help with its flags on standard
// output and exit status 0.
func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"serve", "wait", "keys", "version", "FLEETCERT_"}},
		{[]string{"-h"}, []string{"serve", "keys"}},
		{[]string{"help"}, []string{"serve", "keys"}},
		{[]string{"help", "serve"}, []string{"--data-dir", "--mqtt-addr"}},
		{[]string{"serve", "--help"}, []string{"--data-dir", "FLEETCERT_DATA_DIR", "--api-addr", "--api-cert", "--api-key", "--mqtt-addr", "--mqtt-hostname", "--memory-limit", "default 127.0.0.1:8080"}},
		{[]string{"serve", "-h"}, []string{"--data-dir"}},
		{[]string{"keys", "--help"}, []string{"create", "list", "delete", "rotate"}},
		{[]string{"keys", "list", "--help"}, []string{"--account-id", "--data-dir", "--database-url"}},
		{[]string{"keys", "delete", "--help"}, []string{"--access-key-id", "--data-dir"}},
		{[]string{"keys", "rotate", "--help"}, []string{"--access-key-id", "--keep-old"}},
		{[]string{"keys", "create", "--help"}, []string{"--account-id", "--data-dir"}},
		{[]string{"wait", "--help"}, []string{"--api-addr", "--timeout"}},
		{[]string{"version", "--help"}, []string{"version"}},
	} {
		t.Run("ok/"+strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runFleetcert(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, want 0; stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("help has no %q:\n%s", w, stdout)
				}
			}
		})
	}
}

// fleetcert version prints the module version, the commit and the Go
// version, from the build information.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runFleetcert(t, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "fleetcert ") || !strings.Contains(stdout, runtime.Version()) {
			t.Errorf("%v: %q, want the version and %s", args, stdout, runtime.Version())
		}
		// TestMain builds from the repository: Go stamps the commit when
		// the checkout has a .git directory (not in a git worktree, whose
		// .git is a file, nor in an unpacked archive).
		top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
			continue
		}
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err == nil && !strings.Contains(stdout, "commit "+strings.TrimSpace(string(head))) {
			t.Errorf("%v: %q, want commit %s", args, stdout, head)
		}
	}
}

func TestBadInvocations(t *testing.T) {
	dir := t.TempDir()
	empty := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"no-command", nil, nil, 2, "no command"},
		{"unknown-command", []string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{"bad-flag", []string{"serve", "--no-such-flag"}, nil, 2, "no-such-flag"},
		{"extra-argument", []string{"serve", "now"}, nil, 2, `unexpected argument "now"`},
		{"keys-no-subcommand", []string{"keys"}, nil, 2, "no subcommand"},
		{"keys-unknown-subcommand", []string{"keys", "frob"}, nil, 2, `unknown subcommand "frob"`},
		{"database-unreachable", []string{"serve", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--database-url", "postgres://fleetcert@127.0.0.1:1/x"}, nil, 1, "the database cannot be reached"},
		{"keys-no-account", []string{"keys", "create", "--data-dir", dir}, nil, 2, "--account-id is required"},
		{"keys-no-data-dir", []string{"keys", "create", "--data-dir", dir + "/missing", "--account-id", "123456789012"}, nil, 1, "holds no fleetcert store"},
		// An empty directory is not a store: a key written there would
		// reach no server.
		{"keys-empty-data-dir", []string{"keys", "create", "--data-dir", empty, "--account-id", "123456789012"}, nil, 1, "holds no fleetcert store"},
		// A variable set but empty is an error that names it, unless the
		// flag gives the empty value a meaning (--mqtt-addr).
		{"empty-env-api-addr", []string{"serve", "--data-dir", dir}, []string{"FLEETCERT_API_ADDR="}, 2, "FLEETCERT_API_ADDR is set but empty"},
		{"empty-env-data-dir", []string{"serve"}, []string{"FLEETCERT_DATA_DIR="}, 2, "FLEETCERT_DATA_DIR is set but empty"},
		{"empty-env-region", []string{"serve", "--data-dir", dir}, []string{"FLEETCERT_REGION="}, 2, "FLEETCERT_REGION"},
		{"bad-env-value", []string{"wait"}, []string{"FLEETCERT_TIMEOUT=soon"}, 2, "FLEETCERT_TIMEOUT"},
		{"bad-default-account", []string{"serve", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--default-account", "acme"}, nil, 2, `--default-account "acme"`},
		{"bad-throttle", []string{"serve", "--data-dir", dir, "--throttle", "DescribeCertifcate=5"}, nil, 2, `--throttle: throttle item "DescribeCertifcate=5"`},
		{"bad-trusted-proxy", []string{"serve", "--data-dir", dir, "--trusted-proxy", "proxy.example"}, nil, 2, `"proxy.example" is neither an IP address nor a CIDR prefix`},
		{"api-cert-without-key", []string{"serve", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "", "--api-cert", "x.pem"}, nil, 1, "--api-key"},
	} {
		t.Run("fail/"+tt.name, func(t *testing.T) {
			code, _, stderr := runFleetcert(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, "fleetcert") || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(empty, "fleetcert.db")); err == nil {
		t.Error("keys create made a store in an empty directory")
	}
}

// An empty FLEETCERT_MQTT_ADDR disables the gateway, as --mqtt-addr ""
// does; a flag on the command line wins over an empty variable.
func TestEnvironment(t *testing.T) {
	s := &server{t: t, dataDir: t.TempDir(), env: []string{"FLEETCERT_MQTT_ADDR=", "FLEETCERT_DATA_DIR="}}
	s.start()
	t.Cleanup(s.stop)
	if !strings.Contains(s.stderr.String(), "mqtt gateway disabled") || strings.Contains(s.stderr.String(), "mqtt gateway ready") {
		t.Fatalf("FLEETCERT_MQTT_ADDR= did not disable the gateway:\n%s", s.stderr.String())
	}
}

// A start that fails on a taken port does not spend the one-time
// bootstrap key: the next start prints it.
func TestBootstrapKeyAfterFailedStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flag := range []string{"--api-addr", "--mqtt-addr"} {
		t.Run("ok/"+flag+"-taken", func(t *testing.T) {
			s := &server{t: t, dataDir: t.TempDir(), args: []string{flag, taken.Addr().String()}}
			s.launch()
			if code := s.exit(); code == 0 || !strings.Contains(s.stderr.String(), "address already in use") {
				t.Fatalf("exit %d with %s taken:\n%s", code, flag, s.stderr.String())
			}
			if strings.Contains(s.stdout.String(), "accessKeyId") {
				t.Fatal("a start that failed printed the bootstrap key")
			}
			s.args = nil
			s.start()
			defer s.stop()
			if !printedKey.MatchString(s.stdout.String()) {
				t.Fatalf("no bootstrap key printed after the failed start:\n%s", s.stdout.String())
			}
		})
	}
}

// writeServerCert writes a self-signed server certificate for 127.0.0.1
// and its key.
func writeServerCert(t *testing.T) (cert *testpki.Cert, certFile, keyFile string) {
	t.Helper()
	cert = testpki.New(t, testpki.Options{CommonName: "fleetcert api", Hosts: []string{"127.0.0.1", "localhost"}})
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(cert.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	os.WriteFile(certFile, []byte(cert.PEM), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return cert, certFile, keyFile
}

// With --api-cert and --api-key the API and the console serve HTTPS only;
// the SDK works over it, the console's cookies are Secure, and fleetcert
// wait finds the server.
func TestAPIOverTLS(t *testing.T) {
	cert, certFile, keyFile := writeServerCert(t)
	roots := x509.NewCertPool()
	roots.AddCert(cert.Cert)
	s := &server{t: t, dataDir: t.TempDir(),
		env:  []string{"FLEETCERT_ACCESS_KEY_ID=" + testKeyID, "FLEETCERT_SECRET_ACCESS_KEY=" + testSecret, "FLEETCERT_ACCOUNT_ID=" + testAccount},
		args: []string{"--api-cert", certFile, "--api-key", keyFile},
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}},
	}
	s.start()
	t.Cleanup(s.stop)
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("API URL %s, want https", s.url)
	}

	id := register(t, s.defaultClient(), testpki.Leaf(t).PEM, "")
	if describe(t, s.defaultClient(), id).CertificateId == nil {
		t.Fatal("no certificate over HTTPS")
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on an HTTPS port")
		}
	}
	resp, err := s.httpClient().Get(s.url + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) == 0 {
		t.Fatal("the sign-in page set no cookie")
	}
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s over HTTPS is not Secure", c.Name)
		}
	}

	if code, _, stderr := runFleetcert(t, nil, "wait", "--api-addr", s.addr, "--api-cert", certFile, "--timeout", "1m"); code != 0 {
		t.Fatalf("fleetcert wait over HTTPS: exit %d %s", code, stderr)
	}
}

var waitFailed = regexp.MustCompile(`not ready after 300ms`)

// fleetcert wait returns 0 once the server is ready, and 1 with the reason
// when nothing answers within --timeout.
func TestWaitCommand(t *testing.T) {
	s := startServer(t)
	if code, _, stderr := runFleetcert(t, []string{"FLEETCERT_API_ADDR=" + s.addr}, "wait"); code != 0 {
		t.Fatalf("wait for a ready server: exit %d %s", code, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0") // a port where no HTTP server answers
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, _, stderr := runFleetcert(t, nil, "wait", "--api-addr", l.Addr().String(), "--timeout", "300ms")
	if code != 1 || !waitFailed.MatchString(stderr) {
		t.Fatalf("wait for nothing: exit %d %q, want 1 and a message", code, stderr)
	}
}
