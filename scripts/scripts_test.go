// Package scripts_test tests the shell scripts of the test command with
// stand-ins for the system tools they call.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAptGet is an apt-get that another apt holds the lock from: like the
// real one, it fails at once unless told to wait for the lock
// (DPkg::Lock::Timeout), and records each call, and for an install
// whether a policy-rc.d (FLEETCERT_POLICY_RC_D) stops services starting.
const fakeAptGet = `#!/bin/sh
echo "$*" >> "$CALLS"
case "$*" in
*install*) [ -x "$FLEETCERT_POLICY_RC_D" ] && echo "policy-rc.d refuses: $("$FLEETCERT_POLICY_RC_D"; echo $?)" >> "$CALLS" ;;
esac
case "$*" in
*DPkg::Lock::Timeout=[1-9]*) exit 0 ;;
esac
echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
exit 100
`

// runInstallTools runs install-tools with only the given tools on PATH
// (besides sh), as root or not, and returns its output and apt-get's calls.
// No PostgreSQL, nginx or HAProxy is installed outside PATH unless env says where,
// and the policy-rc.d it may write is in a temp dir.
func runInstallTools(t *testing.T, root bool, tools ...string) (out string, calls []string, err error) {
	return runInstallToolsEnv(t, root, nil, tools...)
}

// runInstallToolsEnv is runInstallTools with variables env set too.
func runInstallToolsEnv(t *testing.T, root bool, env []string, tools ...string) (out string, calls []string, err error) {
	t.Helper()
	bin := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range tools {
		write(tool, "#!/bin/sh\n")
	}
	uid := "1000"
	if root {
		uid = "0"
	}
	write("id", "#!/bin/sh\necho "+uid+"\n")
	write("apt-get", fakeAptGet)
	for _, sh := range []string{"sh", "bash", "chmod", "rm"} {
		p, err := exec.LookPath(sh)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, sh)); err != nil {
			t.Fatal(err)
		}
	}
	callsFile := filepath.Join(t.TempDir(), "calls")
	cmd := exec.Command(filepath.Join(bin, "bash"), "install-tools")
	cmd.Env = append([]string{"PATH=" + bin, "CALLS=" + callsFile,
		"FLEETCERT_POSTGRES_BIN=" + filepath.Join(bin, "no-postgresql"), "FLEETCERT_NGINX=" + filepath.Join(bin, "no-nginx"),
		"FLEETCERT_HAPROXY=" + filepath.Join(bin, "no-haproxy"),
		"FLEETCERT_POLICY_RC_D=" + filepath.Join(bin, "policy-rc.d")}, env...)
	b, err := cmd.CombinedOutput()
	if _, statErr := os.Stat(filepath.Join(bin, "policy-rc.d")); statErr == nil {
		t.Errorf("install-tools left its policy-rc.d behind")
	}
	if c, readErr := os.ReadFile(callsFile); readErr == nil {
		calls = strings.Split(strings.TrimSpace(string(c)), "\n")
	}
	return string(b), calls, err
}

// The test command waits for another apt's lock instead of failing, and
// installs only the packages whose tools are missing.
func TestInstallTools(t *testing.T) {
	t.Run("ok/waits-for-the-lock-and-installs-only-what-is-missing", func(t *testing.T) {
		out, calls, err := runInstallTools(t, true, "aws", "mosquitto_pub")
		if err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(calls) != 3 || !strings.Contains(calls[0], "update") || !strings.HasSuffix(calls[1], "install -y mosquitto-clients chromium postgresql nginx haproxy") {
			t.Fatalf("apt-get calls %q, want an update and an install of mosquitto-clients, chromium, postgresql, nginx and haproxy only", calls)
		}
		// Debian would start the nginx (port 80) and HAProxy it installs:
		// a policy-rc.d refusing them (101) stood in during the install,
		// and is gone.
		if calls[2] != "policy-rc.d refuses: 101" {
			t.Fatalf("during the install: %q, want a policy-rc.d exiting 101", calls[2])
		}
		for _, c := range calls[:2] {
			if !strings.Contains(c, "DPkg::Lock::Timeout=600") {
				t.Errorf("apt-get %q does not wait for the lock", c)
			}
		}
	})
	t.Run("ok/nothing-missing", func(t *testing.T) {
		out, calls, err := runInstallTools(t, true, "aws", "mosquitto_pub", "mosquitto_sub", "chromium", "initdb", "nginx", "haproxy")
		if err != nil || len(calls) != 0 {
			t.Fatalf("err %v, apt-get calls %q, want none:\n%s", err, calls, out)
		}
	})
	t.Run("ok/postgresql-where-debian-puts-it", func(t *testing.T) {
		// Debian's postgresql keeps initdb out of PATH.
		pgBin := filepath.Join(t.TempDir(), "15", "bin")
		if err := os.MkdirAll(pgBin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pgBin, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		env := []string{"FLEETCERT_POSTGRES_BIN=" + filepath.Join(filepath.Dir(filepath.Dir(pgBin)), "*", "bin")}
		out, calls, err := runInstallToolsEnv(t, true, env, "aws", "mosquitto_pub", "mosquitto_sub", "chromium", "nginx", "haproxy")
		if err != nil || len(calls) != 0 {
			t.Fatalf("err %v, apt-get calls %q, want none:\n%s", err, calls, out)
		}
	})
	t.Run("ok/postgresql-not-needed-with-a-test-server", func(t *testing.T) {
		env := []string{"FLEETCERT_TEST_DATABASE_URL=postgres://127.0.0.1:5432/fleetcert"}
		out, calls, err := runInstallToolsEnv(t, true, env, "aws", "mosquitto_pub", "mosquitto_sub", "chromium", "nginx", "haproxy")
		if err != nil || len(calls) != 0 {
			t.Fatalf("err %v, apt-get calls %q, want none:\n%s", err, calls, out)
		}
	})
	t.Run("ok/an-operators-policy-rc.d-is-left-alone", func(t *testing.T) {
		policy := filepath.Join(t.TempDir(), "policy-rc.d")
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		env := []string{"FLEETCERT_POLICY_RC_D=" + policy}
		out, calls, err := runInstallToolsEnv(t, true, env, "aws", "mosquitto_pub", "mosquitto_sub", "chromium", "initdb")
		if err != nil || len(calls) != 3 || !strings.HasSuffix(calls[1], "install -y nginx haproxy") || calls[2] != "policy-rc.d refuses: 0" {
			t.Fatalf("err %v, apt-get calls %q, want nginx installed under the operator's policy-rc.d:\n%s", err, calls, out)
		}
		if b, err := os.ReadFile(policy); err != nil || string(b) != "#!/bin/sh\nexit 0\n" {
			t.Fatalf("the operator's policy-rc.d is now %q (%v)", b, err)
		}
	})
	t.Run("ok/not-root", func(t *testing.T) {
		out, calls, err := runInstallTools(t, false)
		if err != nil || len(calls) != 0 || !strings.Contains(out, "WARNING: awscli mosquitto-clients chromium postgresql nginx haproxy missing") {
			t.Fatalf("err %v, apt-get calls %q, output %q: want a warning and no apt-get", err, calls, out)
		}
	})
}
