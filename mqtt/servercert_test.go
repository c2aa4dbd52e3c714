package mqtt_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert/mqtt"
)

// Two nodes given one CA (as a cluster's store gives it) serve server
// certificates that a device trusting that CA accepts.
func TestInstallServerCA(t *testing.T) {
	now := time.Now()
	first, second := t.TempDir(), t.TempDir()
	caPEM, err := mqtt.ServerCAPEM(first, now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := mqtt.ServerCAPEM(first, now)
	if err != nil || string(again) != string(caPEM) {
		t.Fatalf("a second ServerCAPEM made another CA (%v)", err)
	}
	// The second node had made a CA of its own before it joined.
	if _, err := mqtt.LoadOrCreateServerFiles(second, nil, "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	if err := mqtt.InstallServerCA(second, caPEM); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in the PEM")
	}
	for _, dir := range []string{first, second} {
		files, err := mqtt.LoadOrCreateServerFiles(dir, nil, "us-east-1", now)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
			t.Fatalf("%s: server certificate does not chain to the shared CA: %v", dir, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "mqtt-ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: CA key file: %v, mode %v", dir, err, fi.Mode())
		}
	}
	if err := mqtt.InstallServerCA(second, []byte("not a CA")); err == nil {
		t.Fatal("InstallServerCA accepted garbage")
	}
}
