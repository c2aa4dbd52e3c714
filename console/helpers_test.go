package console_test

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

const testRegion = "eu-west-1"

// env is a console on a real SQLite store, served over loopback HTTP.
type env struct {
	t   *testing.T
	DB  *sqlite.DB
	Reg *fleetcert.Registry
	H   *console.Handler
	Srv *httptest.Server
	Log *testwait.Buffer
}

// MustOpenDB returns an open store in a new temporary directory, closed
// when the test ends.
func MustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db := sqlite.NewDB(filepath.Join(tb.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := MustOpenDB(t)
	iss, err := fleetcert.NewIssuer(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg := fleetcert.NewRegistry(db, iss)
	logs := &testwait.Buffer{}
	h := console.NewHandler(reg, slog.New(slog.NewTextHandler(logs, nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return &env{t: t, DB: db, Reg: reg, H: h, Srv: srv, Log: logs}
}

// key creates an access key for account.
func (e *env) key(account string) *fleetcert.AccessKey {
	e.t.Helper()
	k, err := e.Reg.CreateAccessKey(context.Background(), account)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// browser is one user agent with its own cookies.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	csrf string // from the last page that had a form
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, Timeout: testwait.Hang}}
}

// signedIn returns a browser signed in with a new key of account.
func (e *env) signedIn(account string) (*browser, fleetcert.Scope) {
	e.t.Helper()
	k := e.key(account)
	b := e.browser()
	resp := b.signIn(k.ID, k.Secret, testRegion)
	if resp.Status != http.StatusOK || !strings.Contains(resp.Body, "Sign out") {
		e.t.Fatalf("sign in: %d %s", resp.Status, resp.Body)
	}
	return b, fleetcert.Scope{AccountID: account, Region: testRegion}
}

type response struct {
	Status int
	Body   string
	URL    *url.URL
	Header http.Header
}

var (
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	signInField = regexp.MustCompile(`name="signin_token" value="([^"]+)"`)
)

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	s := string(body)
	if m := csrfField.FindStringSubmatch(s); m != nil {
		b.csrf = m[1]
	}
	return response{Status: resp.StatusCode, Body: s, URL: resp.Request.URL, Header: resp.Header}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.e.Srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a urlencoded form with the session's CSRF token unless form
// sets "csrf" itself.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrfToken())
	}
	req, err := http.NewRequest("POST", b.e.Srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// file is an upload of a multipart form.
type file struct {
	Field, Name, Content string
}

func (b *browser) postMultipart(path string, fields url.Values, files []file) response {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if fields == nil {
		fields = url.Values{}
	}
	if _, ok := fields["csrf"]; !ok {
		fields.Set("csrf", b.csrfToken())
	}
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	for _, f := range files {
		w, err := mw.CreateFormFile(f.Field, f.Name)
		if err != nil {
			b.t.Fatal(err)
		}
		io.WriteString(w, f.Content)
	}
	mw.Close()
	req, err := http.NewRequest("POST", b.e.Srv.URL+path, &buf)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

func (b *browser) csrfToken() string {
	b.t.Helper()
	if b.csrf == "" {
		b.get("/console/certificates")
	}
	if b.csrf == "" {
		b.t.Fatal("no CSRF token on the certificates page")
	}
	return b.csrf
}

func (b *browser) signIn(keyID, secret, region string) response {
	b.t.Helper()
	page := b.get("/console/signin")
	m := signInField.FindStringSubmatch(page.Body)
	if m == nil {
		b.t.Fatalf("no sign-in token on the sign-in page: %s", page.Body)
	}
	return b.post("/console/signin", url.Values{
		"signin_token": {m[1]}, "access_key_id": {keyID}, "secret_access_key": {secret},
		"region": {region}, "csrf": nil,
	})
}

// text is the page's text with tags removed and entities decoded, for
// checking what a person reads.
func text(body string) string {
	s := regexp.MustCompile(`(?s)<script.*?</script>|<[^>]*>`).ReplaceAllString(body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

func wantText(t *testing.T, r response, want ...string) {
	t.Helper()
	got := text(r.Body)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("page %s (status %d) does not say %q; it says:\n%s", r.URL, r.Status, w, got)
		}
	}
}

func noText(t *testing.T, r response, unwanted ...string) {
	t.Helper()
	got := text(r.Body)
	for _, w := range unwanted {
		if strings.Contains(got, w) {
			t.Errorf("page %s says %q, and should not:\n%s", r.URL, w, got)
		}
	}
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; page %s:\n%s", r.Status, status, r.URL, text(r.Body))
	}
}

func describe(t *testing.T, e *env, scope fleetcert.Scope, id string) *fleetcert.Certificate {
	t.Helper()
	c, err := e.Reg.DescribeCertificate(context.Background(), scope, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signInAttempt is the outcome of one sign-in sent by signInFrom or
// signInOver.
type signInAttempt struct {
	Status int
	Body   string
	Header http.Header
}

// signInForm is a sign-in request with its own sign-in token (the cookie
// and the form field match), so that many can be sent at once.
func signInForm(target, keyID, secret string, hdr http.Header) *http.Request {
	form := url.Values{"signin_token": {"test-token"}, "access_key_id": {keyID},
		"secret_access_key": {secret}, "region": {testRegion}}
	req := httptest.NewRequest("POST", target, strings.NewReader(form.Encode()))
	req.RequestURI = ""
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "fleetcert_console_signin", Value: "test-token"})
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	return req
}

// signInFrom sends a sign-in straight to the handler as if it came over a
// connection from remote ("ip:port"), with the extra headers hdr.
func (e *env) signInFrom(remote, keyID, secret string, hdr http.Header) signInAttempt {
	req := signInForm("/console/signin", keyID, secret, hdr)
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	e.H.ServeHTTP(w, req)
	// A refusal redirects to the form saying why (post/redirect/get);
	// the page it leads to has the refusal's status.
	if loc := w.Header().Get("Location"); w.Code == http.StatusSeeOther && strings.HasPrefix(loc, "/console/signin?failed=") {
		get := httptest.NewRequest("GET", loc, nil)
		get.RemoteAddr = remote
		w = httptest.NewRecorder()
		e.H.ServeHTTP(w, get)
	}
	return signInAttempt{Status: w.Code, Body: w.Body.String(), Header: w.Result().Header}
}

// client returns an HTTP client whose connections come from the loopback
// address local (any of 127.0.0.0/8 on Linux).
func (e *env) client(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext},
		Timeout:   testwait.Hang,
		// A sign-in answers with a redirect on success: report it as is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// signInOver sends a sign-in to the test server with c. It calls no
// t.Fatal, so that goroutines may use it.
func (e *env) signInOver(c *http.Client, keyID, secret string) (signInAttempt, error) {
	resp, err := c.Do(signInForm(e.Srv.URL+"/console/signin", keyID, secret, nil))
	if err != nil {
		return signInAttempt{}, err
	}
	// A refusal redirects to the form saying why; the page it leads to has
	// the refusal's status.
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/console/signin?failed=") {
		resp.Body.Close()
		if resp, err = c.Get(e.Srv.URL + loc); err != nil {
			return signInAttempt{}, err
		}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return signInAttempt{Status: resp.StatusCode, Body: string(body), Header: resp.Header}, err
}
