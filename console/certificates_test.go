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
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func register(t *testing.T, e *env, scope fleetcert.Scope, status fleetcert.Status) *fleetcert.Certificate {
	t.Helper()
	c, err := e.Reg.RegisterCertificateWithoutCA(context.Background(), scope, testpki.Leaf(t).PEM, status)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// menuOf returns the HTML of the option menu of certificate id on a page.
func menuOf(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<summary[^>]*aria-label="Actions for certificate ` + regexp.QuoteMeta(id[:10]) + `…".*?</details>`).FindString(body)
	if m == "" {
		t.Fatalf("no option menu for %s", id)
	}
	return text(m)
}

func TestCertificatesPage(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	active := register(t, e, scope, fleetcert.StatusActive)
	inactive := register(t, e, scope, fleetcert.StatusInactive)
	revoked := register(t, e, scope, fleetcert.StatusRevoked)

	r := b.get("/console/certificates")
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "Certificate ID", "Status", "CA", "Created", "Expires", "Active", "Inactive", "Revoked", active.ID[:10]+"…")
	if !strings.Contains(r.Body, `title="`+active.ID+`"`) || !strings.Contains(r.Body, `data-copy="`+active.ID+`"`) {
		t.Error("the full id is not in the title and the copy button")
	}

	// The menus offer what the state machine allows, and nothing else.
	for _, tc := range []struct {
		c         *fleetcert.Certificate
		want, not []string
	}{
		{active, []string{"Deactivate", "Revoke"}, []string{"Activate", "Delete"}},
		{inactive, []string{"Activate", "Revoke", "Delete"}, []string{"Deactivate"}},
		{revoked, []string{"Delete"}, []string{"Activate", "Deactivate", "Revoke"}},
	} {
		menu := menuOf(t, r.Body, tc.c.ID)
		for _, w := range tc.want {
			if !strings.Contains(menu, w) {
				t.Errorf("menu of a %s certificate %q lacks %s", tc.c.Status, menu, w)
			}
		}
		for _, w := range tc.not {
			if regexp.MustCompile(`\b` + w + `\b`).MatchString(menu) {
				t.Errorf("menu of a %s certificate %q offers %s", tc.c.Status, menu, w)
			}
		}
	}
}

func TestCertificatesPagination(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	var ids []string // newest first, as listed
	for range 30 {
		ids = append([]string{register(t, e, scope, fleetcert.StatusActive).ID}, ids...)
	}
	first := b.get("/console/certificates")
	for i, id := range ids {
		if got, want := strings.Contains(first.Body, id), i < 25; got != want {
			t.Errorf("certificate %d on the first page: %v, want %v", i, got, want)
		}
	}
	next := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(first.Body)
	if next == nil {
		t.Fatal("no next link on the first page")
	}
	second := b.get("/console/certificates" + unescapeHref(next[1]))
	for i, id := range ids {
		if got, want := strings.Contains(second.Body, id), i >= 25; got != want {
			t.Errorf("certificate %d on the second page: %v, want %v", i, got, want)
		}
	}
	if regexp.MustCompile(`rel="next"`).MatchString(second.Body) {
		t.Error("the last page has a next link")
	}
	prev := regexp.MustCompile(`href="([^"]+)" rel="prev"`).FindStringSubmatch(second.Body)
	if prev == nil {
		t.Fatal("no previous link on the second page")
	}
	back := b.get("/console/certificates" + unescapeHref(prev[1]))
	for i, id := range ids {
		if got, want := strings.Contains(back.Body, id), i < 25; got != want {
			t.Errorf("certificate %d on the page back: %v, want %v", i, got, want)
		}
	}
	if regexp.MustCompile(`rel="prev"`).MatchString(back.Body) {
		t.Error("the first page, reached back, has a previous link")
	}
	// Another page size.
	big := b.get("/console/certificates?size=50")
	for _, id := range ids {
		if !strings.Contains(big.Body, id) {
			t.Errorf("%s missing with 50 per page", id)
		}
	}
}

func unescapeHref(s string) string { return strings.ReplaceAll(s, "&amp;", "&") }

func TestCertificatesFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, scope := e.signedIn("111111111111")
	active := register(t, e, scope, fleetcert.StatusActive)
	inactive := register(t, e, scope, fleetcert.StatusInactive)
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Filter CA"})
	ca, err := e.Reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := e.Reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM})
	if err != nil {
		t.Fatal(err)
	}
	only := func(t *testing.T, r response, want ...*fleetcert.Certificate) {
		t.Helper()
		wantStatus(t, r, http.StatusOK)
		for _, c := range []*fleetcert.Certificate{active, inactive, issued} {
			in := false
			for _, w := range want {
				in = in || w == c
			}
			if got := strings.Contains(r.Body, `href="/console/certificates/`+c.ID+`"`); got != in {
				t.Errorf("%s listed: %v, want %v", c.ID[:10], got, in)
			}
		}
	}
	t.Run("ok/status", func(t *testing.T) {
		only(t, b.get("/console/certificates?status=INACTIVE"), inactive, issued)
		only(t, b.get("/console/certificates?status=ACTIVE"), active)
	})
	t.Run("ok/CA", func(t *testing.T) {
		r := b.get("/console/certificates?ca=" + ca.ID)
		only(t, r, issued)
		wantText(t, r, "Filter CA")
	})
	t.Run("ok/id prefix", func(t *testing.T) {
		// Needs the store's IDPrefix filter (sqlite).
		only(t, b.get("/console/certificates?q="+strings.ToUpper(active.ID[:6])), active)
		only(t, b.get("/console/certificates?q="+inactive.ID), inactive)
	})
	t.Run("ok/nothing matches", func(t *testing.T) {
		r := b.get("/console/certificates?status=REVOKED")
		wantText(t, r, "No certificates match these filters.")
	})
	t.Run("ok/not hex is a common name", func(t *testing.T) {
		r := b.get("/console/certificates?q=xyz")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "No certificates match these filters.")
	})
	t.Run("fail/too long", func(t *testing.T) {
		r := b.get("/console/certificates?q=" + strings.Repeat("x", 65))
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "up to 64 characters")
	})
	t.Run("fail/bad CA id", func(t *testing.T) {
		wantStatus(t, b.get("/console/certificates?ca=abc"), http.StatusBadRequest)
	})
	t.Run("fail/bad marker", func(t *testing.T) {
		r := b.get("/console/certificates?after=bm90LWEtbWFya2Vy")
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "The marker is not valid")
	})
}

// device is a live session of the fake gateway; scope nil means the test
// account in testRegion.
type device struct {
	console.Session
	scope *fleetcert.Scope
}

// fakeSessions is a device gateway with fixed sessions.
type fakeSessions []device

func sessionsOf(d ...device) fakeSessions { return fakeSessions(d) }

func (f fakeSessions) in(scope fleetcert.Scope, d device) bool {
	s := fleetcert.Scope{AccountID: "111111111111", Region: testRegion}
	if d.scope != nil {
		s = *d.scope
	}
	return s == scope
}

func (f fakeSessions) ClientsOf(scope fleetcert.Scope, id string) []console.Session {
	var out []console.Session
	for _, d := range f {
		if f.in(scope, d) && d.CertificateID == id {
			out = append(out, d.Session)
		}
	}
	return out
}

func (f fakeSessions) Connected(scope fleetcert.Scope) []console.Session {
	var out []console.Session
	for _, d := range f {
		if f.in(scope, d) {
			out = append(out, d.Session)
		}
	}
	return out
}

func TestCertificateDetail(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	c := register(t, e, scope, fleetcert.StatusActive)
	r := b.get("/console/certificates/" + c.ID)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, c.ID, c.ARN(), "Active", "SNI only", "111111111111", c.GenerationID, "Customer version",
		"Created", "Last modified", "Valid from", "Valid until", "Subject", "Issuer",
		"The device gateway is not running", "Copy PEM", "Download", strings.TrimSpace(strings.Split(c.PEM, "\n")[1]))
	wantText(t, r, "Deactivate", "Revoke")
	noText(t, r, "Delete…")

	pem := b.get("/console/certificates/" + c.ID + "/pem")
	wantStatus(t, pem, http.StatusOK)
	if pem.Body != c.PEM || !strings.Contains(pem.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("PEM download: %q %v", pem.Body, pem.Header)
	}

	e.H.Sessions = sessionsOf(device{Session: console.Session{ClientID: "thermostat-7", CertificateID: c.ID, RemoteAddr: "192.0.2.7:50000", ConnectedAt: time.Now()}})
	r = b.get("/console/certificates/" + c.ID)
	wantText(t, r, "thermostat-7", "192.0.2.7:50000")

	wantStatus(t, b.get("/console/certificates/not-an-id"), http.StatusNotFound)
	wantStatus(t, b.get("/console/certificates/"+strings.Repeat("0", 64)), http.StatusNotFound)
}

func TestDevicesPage(t *testing.T) {
	e := newEnv(t)
	b, _ := e.signedIn("111111111111")
	wantText(t, b.get("/console/devices"), "The device gateway is not running")
	e.H.Sessions = sessionsOf(
		device{Session: console.Session{ClientID: "pump-1", CertificateID: strings.Repeat("a", 64), RemoteAddr: "192.0.2.1:1", ConnectedAt: time.Now()}},
		device{Session: console.Session{ClientID: "other-account", CertificateID: strings.Repeat("b", 64), ConnectedAt: time.Now()}, scope: &fleetcert.Scope{AccountID: "999999999999", Region: testRegion}},
	)
	r := b.get("/console/devices")
	wantText(t, r, "pump-1", "192.0.2.1:1")
	noText(t, r, "other-account")
}

func TestUpdateCertificate(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	c := register(t, e, scope, fleetcert.StatusActive)

	r := b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"INACTIVE"}, "return": {"/console/certificates?status=INACTIVE"}})
	wantStatus(t, r, http.StatusOK)
	if r.URL.RequestURI() != "/console/certificates?status=INACTIVE" || r.URL.Fragment != "c-"+c.ID {
		t.Errorf("came back to %s", r.URL.RequestURI())
	}
	wantText(t, r, "Certificate "+c.ID[:10]+"… ("+c.CommonName+") is now inactive.")
	if got := describe(t, e, scope, c.ID).Status; got != fleetcert.StatusInactive {
		t.Fatalf("status %s after Deactivate", got)
	}
	// The flash is shown once.
	noText(t, b.get("/console/certificates"), "is now inactive")

	r = b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"ACTIVE"}})
	wantText(t, r, "is now active.")
	if r.URL.Path != "/console/certificates/"+c.ID {
		t.Errorf("without a return page, came back to %s", r.URL.Path)
	}

	t.Run("fail/no open redirect", func(t *testing.T) {
		r := b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"ACTIVE"}, "return": {"//evil.example/console/"}})
		if r.URL.Host != strings.TrimPrefix(e.Srv.URL, "http://") {
			t.Errorf("redirected to %s", r.URL)
		}
	})
	t.Run("fail/status the form does not offer", func(t *testing.T) {
		wantStatus(t, b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"PENDING_TRANSFER"}}), http.StatusBadRequest)
		wantStatus(t, b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"REVOKED"}}), http.StatusBadRequest)
	})
}

func TestRevokeCertificate(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	c := register(t, e, scope, fleetcert.StatusActive)

	confirm := b.get("/console/certificates/" + c.ID + "/revoke?return=/console/certificates")
	wantStatus(t, confirm, http.StatusOK)
	wantText(t, confirm, "Revoke certificate "+c.ID[:10], "permanent", "can never be activated again", "Cancel")
	if got := describe(t, e, scope, c.ID).Status; got != fleetcert.StatusActive {
		t.Fatalf("the confirmation page changed the status to %s", got)
	}
	r := b.post("/console/certificates/"+c.ID+"/revoke", url.Values{"return": {"/console/certificates"}})
	wantText(t, r, "is now revoked.")
	if got := describe(t, e, scope, c.ID).Status; got != fleetcert.StatusRevoked {
		t.Fatalf("status %s after Revoke", got)
	}

	// Activating a revoked certificate: the state machine refuses, in words.
	r = b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"ACTIVE"}})
	wantText(t, r, "This certificate is revoked; a revoked certificate can never be activated again.")
	noText(t, r, "CertificateStateException", "{")
	// It cannot be revoked twice either: the confirmation page is not offered.
	r = b.get("/console/certificates/" + c.ID + "/revoke")
	wantText(t, r, "cannot be revoked now")
}

func TestDeleteCertificate(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	active := register(t, e, scope, fleetcert.StatusActive)
	inactive := register(t, e, scope, fleetcert.StatusInactive)

	r := b.get("/console/certificates/" + active.ID + "/delete")
	wantText(t, r, "Certificate must be deactivated (not ACTIVE) before deletion. Id: "+active.ID)
	r = b.post("/console/certificates/"+active.ID+"/delete", nil)
	wantText(t, r, "Certificate must be deactivated (not ACTIVE) before deletion. Id: "+active.ID)
	describe(t, e, scope, active.ID)

	r = b.get("/console/certificates/" + inactive.ID + "/delete?return=/console/certificates")
	wantText(t, r, "Delete certificate "+inactive.ID[:10], "This is permanent.", "can be registered again")
	r = b.post("/console/certificates/"+inactive.ID+"/delete", url.Values{"return": {"/console/certificates/" + inactive.ID}})
	if r.URL.Path != "/console/certificates" {
		t.Errorf("after deleting, at %s", r.URL.Path)
	}
	wantText(t, r, "was deleted.")
	if _, err := e.Reg.DescribeCertificate(context.Background(), scope, inactive.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Errorf("still there after delete: %v", err)
	}
}
