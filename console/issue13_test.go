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

// noFollow returns b's client answering redirects to the caller, to check
// what a POST answers.
func (b *browser) noFollow() *http.Client {
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// postStatus sends form to path and returns the status and Location of
// the answer itself.
func (b *browser) postStatus(path string, form url.Values) (int, string) {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrfToken())
	}
	resp, err := b.noFollow().PostForm(b.e.Srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestEveryFormRedirects: post/redirect/get (issue 13, item 3) — a POST
// answers 303, refused or not, so a reload never sends a form again.
func TestEveryFormRedirects(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	c := register(t, e, scope, fleetcert.StatusActive)
	ca, _ := registerCA(t, e, scope, true)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		location   string // a prefix of where it leads
	}{
		{"ok/deactivate", "/console/certificates/" + c.ID + "/status", url.Values{"status": {"INACTIVE"}, "return": {"/console/certificates"}}, "/console/certificates#c-" + c.ID},
		{"fail/stale revoke of a deleted certificate", "/console/certificates/" + strings.Repeat("a", 64) + "/revoke", url.Values{}, "/console/certificates/"},
		{"fail/CSR refused", "/console/certificates/from-csr", url.Values{"csr": {"not a CSR"}}, "/console/certificates/from-csr?form="},
		{"fail/register CA refused", "/console/cas/register", url.Values{"ca_pem": {""}}, "/console/cas/register?form="},
		{"ok/create keys", "/console/certificates/create-keys", url.Values{}, "/console/certificates/create-keys/result/"},
		{"ok/CA status", "/console/cas/" + ca.ID + "/status", url.Values{"status": {"INACTIVE"}, "return": {"/console/cas"}}, "/console/cas#ca-" + ca.ID},
		{"ok/auto-registration", "/console/cas/" + ca.ID + "/auto-registration", url.Values{"auto": {"ENABLE"}}, "/console/cas/" + ca.ID},
		{"ok/region", "/console/region", url.Values{"region": {testRegion}}, "/console/certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, loc := b.postStatus(tc.path, tc.form)
			if status != http.StatusSeeOther || !strings.HasPrefix(loc, tc.location) {
				t.Errorf("POST %s: %d to %q, want 303 to %s…", tc.path, status, loc, tc.location)
			}
		})
	}
	t.Run("fail/sign-in refused", func(t *testing.T) {
		k := e.key("111111111111")
		anon := e.browser()
		m := signInField.FindStringSubmatch(anon.get("/console/signin").Body)
		resp, err := anon.noFollow().PostForm(e.Srv.URL+"/console/signin", url.Values{"signin_token": {m[1]},
			"access_key_id": {k.ID}, "secret_access_key": {"wrong-secret"}, "region": {testRegion}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/signin?failed=credentials") ||
			strings.Contains(loc, k.ID) || strings.Contains(loc, "wrong-secret") {
			t.Errorf("a refused sign-in: %d to %q", resp.StatusCode, loc)
		}
		r := anon.get(loc)
		wantStatus(t, r, http.StatusUnauthorized)
		wantText(t, r, "The access key ID or secret access key is not correct.")
	})
	t.Run("fail/refused form is shown again from its GET", func(t *testing.T) {
		_, loc := b.postStatus("/console/certificates/from-csr", url.Values{"csr": {"not a CSR"}})
		r := b.get(loc)
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "not a CSR")
		// Another session does not see it.
		other, _ := e.signedIn("111111111111")
		noText(t, other.get(loc), "not a CSR")
	})
}

// TestRegisterResultsKeptPerSession: the results have their own address,
// a reload shows them again without registering again, and another
// session cannot read them.
func TestRegisterResultsKeptPerSession(t *testing.T) {
	e := newEnv(t)
	b, _ := e.signedIn("111111111111")
	leaf := testpki.New(t, testpki.Options{CommonName: "sensor-00001"})
	r := b.postMultipart("/console/certificates/register", url.Values{"status_all": {"ACTIVE"}}, []file{{"certificates", "one.pem", leaf.PEM}})
	if !regexp.MustCompile(`^/console/certificates/register/results/[0-9a-f]{16}$`).MatchString(r.URL.Path) {
		t.Fatalf("results at %s", r.URL.Path)
	}
	wantText(t, r, "1 of 1 certificates registered", "sensor-00001")
	again := b.get(r.URL.Path)
	wantText(t, again, "1 of 1 certificates registered")
	noText(t, again, "already")
	other, _ := e.signedIn("111111111111")
	o := other.get(r.URL.Path)
	wantStatus(t, o, http.StatusNotFound)
	noText(t, o, "sensor-00001")
}

// TestCreateKeysShownOnce: the private key is shown by the GET after the
// POST, once.
func TestCreateKeysShownOnce(t *testing.T) {
	e := newEnv(t)
	b, _ := e.signedIn("111111111111")
	r := b.post("/console/certificates/create-keys", url.Values{"activate": {"1"}})
	wantText(t, r, "PRIVATE KEY", "Download the private key now")
	again := b.get(r.URL.Path)
	wantStatus(t, again, http.StatusNotFound)
	noText(t, again, "PRIVATE KEY")
}

// TestConfirmActivateDeactivate: the menu's Activate and Deactivate lead to
// a confirmation naming the certificate; nothing changes before its POST;
// a refusal names the certificate (a stale row).
func TestConfirmActivateDeactivate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, scope := e.signedIn("111111111111")
	c := register(t, e, scope, fleetcert.StatusActive)
	list := b.get("/console/certificates")
	menu := menuOf(t, list.Body, c.ID)
	if !strings.Contains(list.Body, `href="/console/certificates/`+c.ID+`/status?to=INACTIVE&amp;return=%2fconsole%2fcertificates"`) || !strings.Contains(menu, "Deactivate…") {
		t.Errorf("the menu does not lead to a confirmation: %s", menu)
	}
	if strings.Contains(list.Body, `<button type="submit" name="status"`) {
		t.Errorf("a menu changes a status with one click")
	}
	r := b.get("/console/certificates/" + c.ID + "/status?to=INACTIVE&return=/console/certificates")
	wantText(t, r, "Deactivate certificate "+c.ID[:10]+"… ("+c.CommonName+")?", "disconnected at once")
	if got := describe(t, e, scope, c.ID).Status; got != fleetcert.StatusActive {
		t.Fatalf("the confirmation page changed the status to %s", got)
	}
	// Someone revokes it meanwhile: the POST is refused, naming it.
	if err := e.Reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	r = b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"INACTIVE"}, "return": {"/console/certificates"}})
	wantText(t, r, "Certificate "+c.ID[:10]+"… ("+c.CommonName+") is revoked")
	// The CA's Activate/Deactivate ask too.
	ca, _ := registerCA(t, e, scope, true)
	wantText(t, b.get("/console/cas/"+ca.ID+"/status?to=INACTIVE"), "Deactivate CA Line 3 CA?")
	r = b.post("/console/cas/"+ca.ID+"/status", url.Values{"status": {"INACTIVE"}})
	wantText(t, r, "CA Line 3 CA is now inactive")
}

// TestCertificateListForThousands: search by common name, no-CA filter,
// CA names, a bounded count, sorting by expiry with correct pages.
func TestCertificateListForThousands(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, scope := e.signedIn("111111111111")
	ca, caCert := registerCA(t, e, scope, true)
	now := time.Now()
	var byExpiry []string
	for i := range 30 {
		// Expiry in the reverse order of creation.
		leaf := testpki.New(t, testpki.Options{CommonName: "sensor-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), NotAfter: now.Add(time.Duration(60-i) * time.Hour)})
		c, err := e.Reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusActive)
		if err != nil {
			t.Fatal(err)
		}
		byExpiry = append([]string{c.ID}, byExpiry...)
	}
	issued, err := e.Reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{
		CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert, CommonName: "pump-1", NotAfter: now.Add(1000 * time.Hour)}).PEM, Status: fleetcert.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	byExpiry = append(byExpiry, issued.ID)

	r := b.get("/console/certificates?q=sensor-e")
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "sensor-e", "1 certificate match")
	noText(t, r, "sensor-f")

	r = b.get("/console/certificates")
	wantText(t, r, "31 certificates", "Line 3 CA")
	if strings.Contains(text(r.Body), ca.ID[:10]+"…") && !strings.Contains(r.Body, `>Line 3 CA</a>`) {
		t.Errorf("the CA column shows the hex id, not the name")
	}
	r = b.get("/console/certificates?ca=none")
	wantText(t, r, "30 certificates match")
	noText(t, r, "pump-1")

	// Expiring first, in pages of 25: every certificate once, in order.
	var got []string
	for path := "/console/certificates?sort=expiry"; path != ""; {
		r := b.get(path)
		wantStatus(t, r, http.StatusOK)
		for _, m := range regexp.MustCompile(`<tr id="c-([0-9a-f]{64})"`).FindAllStringSubmatch(r.Body, -1) {
			got = append(got, m[1])
		}
		path = ""
		if m := regexp.MustCompile(`href="(\?[^"]*)" rel="next"`).FindStringSubmatch(r.Body); m != nil {
			path = "/console/certificates" + strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if strings.Join(got, ",") != strings.Join(byExpiry, ",") {
		t.Errorf("by expiry: %d certificates in another order than their expiry:\n got %v\nwant %v", len(got), got, byExpiry)
	}
}

// TestUploadChainDERBOM: a file with the device certificate and its chain
// registers the leaf under the registered CA of the chain; DER files and a
// UTF-8 byte order mark are accepted; a certificate of an inactive
// registered CA is registered without it, with a warning offering the CA.
func TestUploadChainDERBOM(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	ca, caCert := registerCA(t, e, scope, true)
	chained := testpki.New(t, testpki.Options{Parent: caCert, CommonName: "chained"})
	der := testpki.New(t, testpki.Options{CommonName: "der"})
	bom := testpki.New(t, testpki.Options{CommonName: "bom"})
	r := b.postMultipart("/console/certificates/register", url.Values{"status_all": {"ACTIVE"}}, []file{
		{"certificates", "chain.pem", chained.PEM + caCert.PEM},
		{"certificates", "device.der", string(der.Cert.Raw)},
		{"certificates", "bom.pem", "\xef\xbb\xbf" + bom.PEM},
	})
	wantText(t, r, "3 of 3 certificates registered", "under CA Line 3 CA")
	if got := describe(t, e, scope, fleetcert.CertificateID(chained.Cert.Raw)); got.CACertificateID != ca.ID {
		t.Errorf("the chained certificate is under CA %q", got.CACertificateID)
	}

	if err := e.Reg.UpdateCACertificate(context.Background(), scope, ca.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	page := b.get("/console/certificates/register")
	wantText(t, page, "Line 3 CA", "inactive: activate it to register under it")
	late := testpki.New(t, testpki.Options{Parent: caCert, CommonName: "late"})
	r = b.postMultipart("/console/certificates/register", url.Values{"status_all": {"ACTIVE"}}, []file{{"certificates", "late.pem", late.PEM}})
	wantText(t, r, "1 of 1 certificates registered", "Its issuer is the registered CA Line 3 CA (inactive)", "Open CA Line 3 CA")
}

// TestCAPageListsWhatItSigned: the CA page lists, marked, the certificates
// its key signed that were registered without it, and the bulk actions
// change them too; one job per CA at a time; the page links to the job.
func TestCAPageListsWhatItSigned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b, scope := e.signedIn("111111111111")
	ca, caCert := registerCA(t, e, scope, true)
	loose, err := e.Reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{Parent: caCert, CommonName: "loose"}).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	stranger := register(t, e, scope, fleetcert.StatusActive)
	r := b.get("/console/cas/" + ca.ID)
	wantText(t, r, "Signed by this CA, registered without it", "loose")
	noText(t, r, stranger.ID[:10])
	confirm := b.get("/console/cas/" + ca.ID + "/bulk?action=revoke")
	wantText(t, confirm, "Revoke 1 certificates issued by CA Line 3 CA?", "1 of them are registered without this CA")

	r = b.post("/console/cas/"+ca.ID+"/bulk", url.Values{"action": {"revoke"}})
	progress := r.URL.Path + "/progress"
	testwait.For(t, "the bulk action to finish", func() bool {
		f := b.get(progress)
		if f.Status != http.StatusOK || strings.Contains(f.Body, "<html") {
			t.Fatalf("progress fragment: %d %s", f.Status, f.Body)
		}
		return strings.Contains(text(f.Body), "Finished:")
	})
	if got := describe(t, e, scope, loose.ID).Status; got != fleetcert.StatusRevoked {
		t.Errorf("the certificate signed by the CA but registered without it is %s", got)
	}
	if got := describe(t, e, scope, stranger.ID).Status; got != fleetcert.StatusActive {
		t.Errorf("another certificate is %s", got)
	}
	wantText(t, b.get("/console/cas/"+ca.ID), "The last bulk action (revoke all) finished", "See its summary")

	// A job still running: a second one is refused, pointing to it.
	// (Started, and run by nobody: no runner takes it up here.)
	running, err := e.Reg.StartJob(ctx, scope, fleetcert.JobInput{CACertificateID: ca.ID, Action: fleetcert.StatusInactive})
	if err != nil {
		t.Fatal(err)
	}
	r = b.post("/console/cas/"+ca.ID+"/bulk", url.Values{"action": {"deactivate"}})
	if !strings.HasSuffix(r.URL.Path, "/bulk/"+running.ID) {
		t.Errorf("a second job went to %s", r.URL.Path)
	}
	wantText(t, r, "already running")
	intruder, _ := e.signedIn("222222222222")
	wantStatus(t, intruder.get("/console/cas/"+ca.ID+"/bulk/"+running.ID+"/progress"), http.StatusNotFound)
}

// TestRegionAndNoJavaScript: the Region is chosen from a list (no pattern
// attribute) and switched from the header; menus cannot stack open without
// JavaScript; help that names a control only JavaScript makes is hidden
// without it.
func TestRegionAndNoJavaScript(t *testing.T) {
	e := newEnv(t)
	anon := e.browser()
	signin := anon.get("/console/signin")
	if strings.Contains(signin.Body, "pattern=") || !strings.Contains(signin.Body, `<select id="region" name="region"`) {
		t.Errorf("the Region is not a list on the sign-in page")
	}
	b, scope := e.signedIn("111111111111")
	register(t, e, scope, fleetcert.StatusActive)
	list := b.get("/console/certificates")
	if n, named := strings.Count(list.Body, `<details class="menu"`), strings.Count(list.Body, `<details class="menu" name="row-menu">`); n == 0 || n != named {
		t.Errorf("%d of %d menus are grouped by name", named, n)
	}
	reg := b.get("/console/certificates/register")
	if !strings.Contains(reg.Body, `<span data-js-only hidden> Each file's own choice`) {
		t.Errorf("the per-file help is not hidden without JavaScript")
	}
	if strings.Index(reg.Body, `name="status_all"`) > strings.Index(reg.Body, `id="file-list"`) {
		t.Errorf("the choice for all files comes after the per-file choices")
	}
	r := b.post("/console/region", url.Values{"region": {"eu-central-1"}})
	wantText(t, r, "You are now in Region eu-central-1")
	if !strings.Contains(r.Body, `<option value="eu-central-1" selected>`) {
		t.Errorf("the header does not show the new Region")
	}
	wantText(t, r, "No certificates yet") // the other Region's certificate is not listed
	wantStatus(t, b.post("/console/region", url.Values{"region": {"mars-1"}}), http.StatusBadRequest)
}
