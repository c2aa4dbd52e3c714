package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

func TestRegisterCA(t *testing.T) {
	t.Run("ok/with verification certificate", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		r := b.get("/console/cas/register")
		wantStatus(t, r, http.StatusOK)
		code, err := e.Reg.GetRegistrationCode(context.Background(), scope)
		if err != nil {
			t.Fatal(err)
		}
		wantText(t, r, code, "openssl genrsa", `-subj "/CN=`+code+`"`, "openssl x509 -req", "-CA rootCA.pem", "SNI only")

		caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Fleet Root CA"})
		verification := testpki.New(t, testpki.Options{Parent: caCert, CommonName: code})
		r = b.postMultipart("/console/cas/register", url.Values{"mode": {"DEFAULT"}, "activate": {"1"}, "auto_registration": {"1"}},
			[]file{{"ca_file", "rootCA.pem", caCert.PEM}, {"verification_file", "verification_cert.pem", verification.PEM}})
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "CA certificate Fleet Root CA registered.", "Active", "Enabled", "Default")
		ca, err := e.Reg.DescribeCACertificate(context.Background(), scope, fleetcert.CertificateID(caCert.Cert.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if ca.Status != fleetcert.CAStatusActive || ca.AutoRegistrationStatus != fleetcert.AutoRegistrationEnable || ca.Mode != fleetcert.ModeDefault {
			t.Errorf("registered %+v", ca)
		}
	})
	t.Run("ok/SNI only, pasted", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		caCert := testpki.New(t, testpki.Options{IsCA: true})
		r := b.postMultipart("/console/cas/register", url.Values{"mode": {"SNI_ONLY"}, "ca_pem": {caCert.PEM}}, nil)
		wantText(t, r, "registered. Certificates it issued", "once you activate it", "Inactive")
		ca, err := e.Reg.DescribeCACertificate(context.Background(), scope, fleetcert.CertificateID(caCert.Cert.Raw))
		if err != nil || ca.Mode != fleetcert.ModeSNIOnly || ca.Status != fleetcert.CAStatusInactive {
			t.Errorf("registered %+v %v", ca, err)
		}
	})
	t.Run("fail/wrong common name", func(t *testing.T) {
		e := newEnv(t)
		b, _ := e.signedIn("111111111111")
		b.get("/console/cas/register") // makes the registration code
		caCert := testpki.New(t, testpki.Options{IsCA: true})
		verification := testpki.New(t, testpki.Options{Parent: caCert, CommonName: "not-the-code"})
		r := b.postMultipart("/console/cas/register", url.Values{"mode": {"DEFAULT"}, "ca_pem": {caCert.PEM}, "verification_pem": {verification.PEM}}, nil)
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "The verification certificate's common name is not this account's registration code.")
		noText(t, r, "RegistrationCodeValidationException")
		// The form keeps what was given.
		if !strings.Contains(r.Body, "-----BEGIN CERTIFICATE-----") {
			t.Error("the form lost the pasted PEM")
		}
	})
	t.Run("fail/not signed by the CA", func(t *testing.T) {
		e := newEnv(t)
		b, scope := e.signedIn("111111111111")
		code, _ := e.Reg.GetRegistrationCode(context.Background(), scope)
		caCert := testpki.New(t, testpki.Options{IsCA: true})
		verification := testpki.New(t, testpki.Options{CommonName: code})
		r := b.postMultipart("/console/cas/register", url.Values{"ca_pem": {caCert.PEM}, "verification_pem": {verification.PEM}}, nil)
		wantText(t, r, "The verification certificate is not signed by the CA certificate's private key.")
	})
	t.Run("fail/missing verification", func(t *testing.T) {
		e := newEnv(t)
		b, _ := e.signedIn("111111111111")
		r := b.postMultipart("/console/cas/register", url.Values{"mode": {"DEFAULT"}, "ca_pem": {testpki.New(t, testpki.Options{IsCA: true}).PEM}}, nil)
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "Choose the verification certificate")
	})
	t.Run("fail/not a CA", func(t *testing.T) {
		e := newEnv(t)
		b, _ := e.signedIn("111111111111")
		r := b.postMultipart("/console/cas/register", url.Values{"mode": {"SNI_ONLY"}, "ca_pem": {testpki.Leaf(t).PEM}}, nil)
		wantText(t, r, "not a CA certificate")
	})
}

// registerCA registers an SNI-only CA in scope and returns it with its
// certificate.
func registerCA(t *testing.T, e *env, scope fleetcert.Scope, active bool) (*fleetcert.CACertificate, *testpki.Cert) {
	t.Helper()
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Line 3 CA"})
	ca, err := e.Reg.RegisterCACertificate(context.Background(), scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: active})
	if err != nil {
		t.Fatal(err)
	}
	return ca, caCert
}

func TestCAPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, scope := e.signedIn("111111111111")
	ca, caCert := registerCA(t, e, scope, true)
	issued, err := e.Reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM, Status: fleetcert.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	caState := func() *fleetcert.CACertificate {
		t.Helper()
		got, err := e.Reg.DescribeCACertificate(ctx, scope, ca.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	r := b.get("/console/cas")
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, ca.ID[:10], "Line 3 CA", "Active", "Disabled", "SNI only", "Register CA")

	r = b.get("/console/cas/" + ca.ID)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, ca.ID, ca.ARN(), "Certificates issued by this CA", issued.ID[:10], "Deactivate all", "Revoke all", "Deactivate", "Enable auto-registration")
	noText(t, r, "Delete…")

	r = b.post("/console/cas/"+ca.ID+"/auto-registration", url.Values{"auto": {"ENABLE"}})
	wantText(t, r, "Auto-registration is now enabled")
	if caState().AutoRegistrationStatus != fleetcert.AutoRegistrationEnable {
		t.Error("auto-registration not enabled")
	}
	r = b.post("/console/cas/"+ca.ID+"/auto-registration", url.Values{"auto": {"DISABLE"}, "return": {"/console/cas"}})
	wantText(t, r, "Auto-registration is now disabled")
	if r.URL.Path != "/console/cas" {
		t.Errorf("came back to %s", r.URL.Path)
	}

	// Deleting needs an inactive CA.
	r = b.post("/console/cas/"+ca.ID+"/delete", nil)
	wantText(t, r, "deactivate it before deleting it")
	r = b.post("/console/cas/"+ca.ID+"/status", url.Values{"status": {"INACTIVE"}})
	wantText(t, r, "is now inactive", "keep working")
	if caState().Status != fleetcert.CAStatusInactive {
		t.Fatal("CA not deactivated")
	}
	// Certificates it issued keep working (deactivate-ca-cert.md).
	if describe(t, e, scope, issued.ID).Status != fleetcert.StatusActive {
		t.Error("deactivating the CA changed its certificates")
	}
	r = b.get("/console/cas/" + ca.ID + "/delete")
	wantText(t, r, "Delete CA certificate", "Certificates it issued stay registered")
	r = b.post("/console/cas/"+ca.ID+"/delete", nil)
	wantText(t, r, "was deleted.")
	if _, err := e.Reg.DescribeCACertificate(ctx, scope, ca.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Errorf("CA still there: %v", err)
	}
	wantStatus(t, b.get("/console/cas/"+ca.ID), http.StatusNotFound)
}

func TestBulkActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, scope := e.signedIn("111111111111")
	ca, caCert := registerCA(t, e, scope, true)
	var ids []string
	for _, st := range []fleetcert.Status{fleetcert.StatusActive, fleetcert.StatusActive, fleetcert.StatusInactive, fleetcert.StatusRevoked} {
		c, err := e.Reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM, Status: st})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	other := register(t, e, scope, fleetcert.StatusActive) // not issued by the CA

	run := func(t *testing.T, action string) response {
		t.Helper()
		confirm := b.get("/console/cas/" + ca.ID + "/bulk?action=" + action)
		wantStatus(t, confirm, http.StatusOK)
		r := b.post("/console/cas/"+ca.ID+"/bulk", url.Values{"action": {action}})
		wantStatus(t, r, http.StatusOK)
		if !regexp.MustCompile(`^/console/cas/` + ca.ID + `/bulk/\w+$`).MatchString(r.URL.Path) {
			t.Fatalf("bulk action answered at %s", r.URL.Path)
		}
		deadline := testwait.Deadline()
		for {
			// The progress page follows the job until it finishes: its
			// script polls the progress fragment, and without JavaScript it
			// reloads itself.
			finished := strings.Contains(text(r.Body), "Finished:")
			refresh := strings.Contains(r.Body, `<noscript><meta http-equiv="refresh" content="2"></noscript>`)
			if poll := strings.Contains(r.Body, `data-poll="/console/cas/`+ca.ID+`/bulk/`); refresh == finished || poll != refresh {
				t.Fatalf("progress page: finished %v, reloads itself %v", finished, refresh)
			}
			if finished {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bulk action not finished: %s", text(r.Body))
			}
			time.Sleep(20 * time.Millisecond)
			r = b.get(r.URL.Path)
		}
		return r
	}

	t.Run("ok/deactivate all", func(t *testing.T) {
		confirm := b.get("/console/cas/" + ca.ID + "/bulk?action=deactivate")
		wantText(t, confirm, "Deactivate 2 certificates issued by CA", "2 Active: become Inactive", "1 Inactive: are Inactive already",
			"disconnected at once", "Revoked certificates stay revoked")
		r := run(t, "deactivate")
		wantText(t, r, "Finished: 2 changed, 1 already inactive, 1 skipped, 0 failed.")
		for i, want := range []fleetcert.Status{fleetcert.StatusInactive, fleetcert.StatusInactive, fleetcert.StatusInactive, fleetcert.StatusRevoked} {
			if got := describe(t, e, scope, ids[i]).Status; got != want {
				t.Errorf("certificate %d: %s, want %s", i, got, want)
			}
		}
	})
	t.Run("ok/revoke all", func(t *testing.T) {
		confirm := b.get("/console/cas/" + ca.ID + "/bulk?action=revoke")
		wantText(t, confirm, "Revoke 3 certificates issued by CA", "3 Inactive: become Revoked", "permanent")
		r := run(t, "revoke")
		wantText(t, r, "Finished: 3 changed, 1 already revoked, 0 skipped, 0 failed.")
		for i := range ids {
			if got := describe(t, e, scope, ids[i]).Status; got != fleetcert.StatusRevoked {
				t.Errorf("certificate %d: %s", i, got)
			}
		}
		if got := describe(t, e, scope, other.ID).Status; got != fleetcert.StatusActive {
			t.Errorf("a certificate of no CA was changed to %s", got)
		}
	})
	t.Run("fail/another account cannot see the job", func(t *testing.T) {
		r := b.post("/console/cas/"+ca.ID+"/bulk", url.Values{"action": {"deactivate"}})
		intruder, _ := e.signedIn("222222222222")
		wantStatus(t, intruder.get(r.URL.Path), http.StatusNotFound)
		e.H.Close() // wait for the job
	})
	t.Run("fail/unknown action", func(t *testing.T) {
		wantStatus(t, b.get("/console/cas/"+ca.ID+"/bulk?action=delete"), http.StatusBadRequest)
		wantStatus(t, b.post("/console/cas/"+ca.ID+"/bulk", url.Values{"action": {"activate"}}), http.StatusBadRequest)
	})
}

func TestNotFoundAndStatic(t *testing.T) {
	e := newEnv(t)
	b, _ := e.signedIn("111111111111")
	wantStatus(t, b.get("/console/nope"), http.StatusNotFound)
	css := b.get("/console/static/console.css")
	wantStatus(t, css, http.StatusOK)
	if !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("CSS served as %s", css.Header.Get("Content-Type"))
	}
	r := b.get("/console/")
	if r.URL.Path != "/console/certificates" {
		t.Errorf("/console/ went to %s", r.URL.Path)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}
