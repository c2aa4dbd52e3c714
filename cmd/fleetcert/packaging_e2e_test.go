package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// The systemd unit parses cleanly and keeps its sandbox: systemd-analyze
// verify reports nothing, and its security exposure stays "OK" (below 2.0
// of 10).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: packaging/fleetcert.service is not verified here")
	}
	unit, err := os.ReadFile("../../packaging/fleetcert.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's program exists: the binary built for
	// these tests stands in for /usr/local/bin/fleetcert.
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/fleetcert serve --data-dir /var/lib/fleetcert")) {
		t.Fatal("ExecStart no longer runs /usr/local/bin/fleetcert serve on /var/lib/fleetcert, as README.md says")
	}
	path := filepath.Join(t.TempDir(), "fleetcert.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/fleetcert"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 even for a directive it cannot parse and ignores, so
	// anything it says is a failure.
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if bytes.Contains(out, []byte("--offline")) || bytes.Contains(out, []byte("unrecognized option")) {
		t.Logf("this systemd-analyze cannot rate a unit file offline; exposure not checked: %s", out)
		return
	}
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}

// The Dockerfile builds an image whose container becomes healthy by its own
// HEALTHCHECK, serves the API on the published port, takes an online backup
// into its volume as its non-root user, and stops on docker stop. It needs
// docker with a daemon that answers, and the network to pull the base
// images; elsewhere it skips, saying why.
func TestDockerImage(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker is not installed: the Dockerfile is not built here")
	}
	if out, err := exec.Command(docker, "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Skipf("docker's daemon does not answer, so the Dockerfile is not built here: %v: %s", err, firstLine(out))
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(docker, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	tag := "fleetcert-test:" + hex.EncodeToString(suffix)
	commit, _ := exec.Command("git", "rev-parse", "HEAD").Output()
	build := exec.Command(docker, "build", "-t", tag, "--build-arg", "VERSION=v0.0.0-dockertest",
		"--build-arg", "COMMIT="+strings.TrimSpace(string(commit)), "../..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(docker, "rmi", "-f", tag).Run() })
	if user := run("image", "inspect", "--format", "{{.Config.User}}", tag); user != "nonroot:nonroot" {
		t.Errorf("image user %q, want nonroot:nonroot", user)
	}

	// Published on loopback only, on ports docker picks.
	id := run("run", "-d", "-p", "127.0.0.1::8080", "-p", "127.0.0.1::8883",
		"-e", "FLEETCERT_ACCESS_KEY_ID="+testKeyID, "-e", "FLEETCERT_SECRET_ACCESS_KEY="+testSecret,
		"-e", "FLEETCERT_ACCOUNT_ID="+testAccount, tag)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(docker, "logs", id).CombinedOutput()
			t.Logf("container logs:\n%s", out)
		}
		exec.Command(docker, "rm", "-f", "-v", id).Run() // this container, by its id
	})

	// Its own HEALTHCHECK (fleetcert wait against /healthz) turns it healthy.
	deadline := testwait.Deadline()
	for tick := time.NewTicker(250 * time.Millisecond); ; <-tick.C {
		state := run("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", id)
		if state == "running healthy" {
			tick.Stop()
			break
		}
		if strings.HasPrefix(state, "exited") || strings.HasSuffix(state, "unhealthy") {
			t.Fatalf("container %s", state)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container not healthy after %s: %s", testwait.Hang, state)
		}
	}

	api := "http://" + run("port", id, "8080/tcp")
	c := iot.New(iot.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(api),
		Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, testSecret, ""),
		Retryer:      aws.NopRetryer{},
	})
	certID := register(t, c, testpki.Leaf(t).PEM, types.CertificateStatusActive)
	if got := describe(t, c, certID); got.Status != types.CertificateStatusActive {
		t.Fatalf("registered certificate: %s", got.Status)
	}
	if v := run("exec", id, "/fleetcert", "version"); !strings.Contains(v, "v0.0.0-dockertest") {
		t.Errorf("fleetcert version in the image: %q, want the build argument's version", v)
	}
	// The volume is the non-root user's: the store is there, and a backup
	// can be written beside it while the server runs.
	if out := run("exec", id, "/fleetcert", "backup", "--to", "/data/backup.db"); !strings.Contains(out, "1 certificates") {
		t.Errorf("backup in the container: %q", out)
	}

	run("stop", id) // SIGTERM, then the container's exit
	if code := run("inspect", "--format", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("exit code after docker stop: %s", code)
	}
}

// firstLine is the first line of out.
func firstLine(out []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
