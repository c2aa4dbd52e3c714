package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func TestCreateChoice(t *testing.T) {
	e := newEnv(t)
	b, _ := e.signedIn("111111111111")
	r := b.get("/console/certificates/create")
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "Use my certificate", "Create certificate", "Create with CSR")
}

func TestRegisterCertificates(t *testing.T) {
	t.Run("ok/several files, one bad, per-file status", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		r := b.get("/console/certificates/register")
		wantText(t, r, "Select a CA", "up to 10", "Activate", "Leave inactive", "Revoke", "Register certificates")
		one, two, three := testpki.Leaf(t), testpki.Leaf(t), testpki.Leaf(t)
		r = b.postMultipart("/console/certificates/register", url.Values{"status_all": {"ACTIVE"}, "status_2": {"REVOKED"}}, []file{
			{"certificates", "one.pem", one.PEM},
			{"certificates", "garbage.pem", "this is not a certificate"},
			{"certificates", "three.pem", three.PEM},
			{"certificates", "empty.pem", ""},
			{"certificates", "two.pem", two.PEM},
		})
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "3 of 5 certificates registered; 2 failed",
			"one.pem", fleetcert.CertificateID(one.Cert.Raw),
			"garbage.pem", "The file is neither a PEM certificate nor a DER one.",
			"empty.pem", "The file is empty.",
			"two.pem", fleetcert.CertificateID(two.Cert.Raw))
		for cert, want := range map[*testpki.Cert]fleetcert.Status{one: fleetcert.StatusActive, three: fleetcert.StatusRevoked, two: fleetcert.StatusActive} {
			c := describe(t, e, scope, fleetcert.CertificateID(cert.Cert.Raw))
			if c.Status != want || c.Mode != fleetcert.ModeSNIOnly || c.CACertificateID != "" {
				t.Errorf("%s: status %s mode %s CA %q, want %s SNI_ONLY without CA", cert.Cert.Subject.CommonName, c.Status, c.Mode, c.CACertificateID, want)
			}
		}
	})
	t.Run("ok/leave inactive is the default", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		leaf := testpki.Leaf(t)
		b.postMultipart("/console/certificates/register", nil, []file{{"certificates", "a.pem", leaf.PEM}})
		if got := describe(t, e, scope, fleetcert.CertificateID(leaf.Cert.Raw)).Status; got != fleetcert.StatusInactive {
			t.Errorf("status %s, want INACTIVE", got)
		}
	})
	t.Run("ok/under a CA", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Factory CA"})
		ca, err := e.Reg.RegisterCACertificate(context.Background(), scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
		if err != nil {
			t.Fatal(err)
		}
		wantText(t, b.get("/console/certificates/register"), "Factory CA")
		issued, stranger := testpki.New(t, testpki.Options{Parent: caCert}), testpki.Leaf(t)
		r := b.postMultipart("/console/certificates/register", url.Values{"ca": {ca.ID}, "status_all": {"ACTIVE"}}, []file{
			{"certificates", "issued.pem", issued.PEM}, {"certificates", "stranger.pem", stranger.PEM},
		})
		wantText(t, r, "1 of 2 certificates registered", "not signed by the given CA certificate")
		c := describe(t, e, scope, fleetcert.CertificateID(issued.Cert.Raw))
		if c.CACertificateID != ca.ID || c.Status != fleetcert.StatusActive {
			t.Errorf("registered under %q with status %s", c.CACertificateID, c.Status)
		}
	})
	t.Run("ok/already registered", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		c := register(t, e, scope, fleetcert.StatusActive)
		r := b.postMultipart("/console/certificates/register", nil, []file{{"certificates", "again.pem", c.PEM}})
		wantText(t, r, "0 of 1 certificates registered", "already provisioned or registered", c.ID)
	})
	t.Run("fail/more than 10 files", func(t *testing.T) {
		e := newEnv(t)
		b, _ := e.signedIn("111111111111")
		var files []file
		for i := range 11 {
			files = append(files, file{"certificates", fmt.Sprintf("d%d.pem", i), testpki.Leaf(t).PEM})
		}
		r := b.postMultipart("/console/certificates/register", url.Values{"status_all": {"ACTIVE"}}, files)
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "You chose 11 files, but at most 10 certificates can be registered at a time. Nothing was registered")
		page, err := e.Reg.ListCertificates(context.Background(), fleetcert.Scope{AccountID: "111111111111", Region: testRegion}, fleetcert.ListOptions{})
		if err != nil || len(page.Certificates) != 0 {
			t.Errorf("registered %d certificates (%v)", len(page.Certificates), err)
		}
	})
	t.Run("fail/no file", func(t *testing.T) {
		e := newEnv(t)
		b, _ := e.signedIn("111111111111")
		r := b.postMultipart("/console/certificates/register", nil, nil)
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "Choose at least one certificate file")
	})
	t.Run("fail/unknown CA", func(t *testing.T) {
		e := newEnv(t)
		b, _ := e.signedIn("111111111111")
		r := b.postMultipart("/console/certificates/register", url.Values{"ca": {strings.Repeat("a", 64)}}, []file{{"certificates", "a.pem", testpki.Leaf(t).PEM}})
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "The selected CA is not registered")
	})
}

func TestCreateKeysAndCertificate(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	wantText(t, b.get("/console/certificates/create-keys"), "only once")
	r := b.post("/console/certificates/create-keys", url.Values{"activate": {"1"}})
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "Download the private key now.", "never", "Download private key", "-----BEGIN RSA PRIVATE KEY-----")
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q on the page with the private key", r.Header.Get("Cache-Control"))
	}
	if !strings.Contains(r.Body, `href="data:application/x-pem-file;base64,`) {
		t.Error("no data: download links")
	}
	id := regexp.MustCompile(`href="/console/certificates/([0-9a-f]{64})"`).FindStringSubmatch(r.Body)
	if id == nil {
		t.Fatal("no link to the new certificate")
	}
	if c := describe(t, e, scope, id[1]); c.Status != fleetcert.StatusActive {
		t.Errorf("status %s", c.Status)
	}
	// The private key is in no file of the store.
	key := regexp.MustCompile(`(?s)-----BEGIN RSA PRIVATE KEY-----\n(.*?)\n`).FindStringSubmatch(r.Body)[1]
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(dbPath(t, e)), "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), key) {
			t.Errorf("the private key is stored in %s", f)
		}
	}
	if strings.Contains(e.Log.String(), key) {
		t.Error("the private key was logged")
	}
}

func dbPath(t *testing.T, e *env) string { return e.DB.Path }

func TestCreateFromCSR(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	csr, _ := testpki.CSR(t, "sensor-42")
	r := b.postMultipart("/console/certificates/from-csr", url.Values{"csr": {csr}, "activate": {"1"}}, nil)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "(sensor-42) was created from your CSR.", "CN=sensor-42")
	id := strings.TrimPrefix(r.URL.Path, "/console/certificates/")
	if c := describe(t, e, scope, id); c.Status != fleetcert.StatusActive {
		t.Errorf("status %s", c.Status)
	}
	// From a file, left inactive.
	csr2, _ := testpki.CSR(t, "sensor-43")
	r = b.postMultipart("/console/certificates/from-csr", nil, []file{{"csr_file", "device.csr", csr2}})
	wantText(t, r, "CN=sensor-43", "Inactive")

	r = b.postMultipart("/console/certificates/from-csr", url.Values{"csr": {"-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----"}}, nil)
	wantStatus(t, r, http.StatusBadRequest)
	wantText(t, r, "The certificate signing request could not be parsed")
	r = b.postMultipart("/console/certificates/from-csr", nil, nil)
	wantText(t, r, "Paste a certificate signing request")
}
