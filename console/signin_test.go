package console_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func TestSignIn(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		b := e.browser()
		r := b.signIn(k.ID, k.Secret, testRegion)
		wantStatus(t, r, http.StatusOK)
		if r.URL.Path != "/console/certificates" {
			t.Errorf("signed in to %s, want the certificates page", r.URL.Path)
		}
		wantText(t, r, "Certificates", "111111111111", testRegion, "Sign out")
		if strings.Contains(e.Log.String(), k.Secret) {
			t.Error("the secret was logged")
		}
	})
	t.Run("ok/cookie attributes", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		b := e.browser()
		page := b.get("/console/signin")
		token := signInField.FindStringSubmatch(page.Body)[1]
		form := url.Values{"signin_token": {token}, "access_key_id": {k.ID}, "secret_access_key": {k.Secret}, "region": {""}}
		req, _ := http.NewRequest("POST", e.Srv.URL+"/console/signin", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := (&http.Client{Jar: b.c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "fleetcert_console" {
				session = c
			}
		}
		if session == nil {
			t.Fatalf("no session cookie: %v", resp.Header["Set-Cookie"])
		}
		if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console/" || session.Secure {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/, not Secure over plain HTTP", session)
		}
		// The region defaults to us-east-1.
		r := b.get("/console/certificates")
		wantText(t, r, "us-east-1")
	})
	t.Run("ok/secure cookie over TLS", func(t *testing.T) {
		e := newEnv(t)
		req := httptest.NewRequest("GET", "/console/signin", nil)
		req.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		e.H.ServeHTTP(w, req)
		cookies := w.Result().Cookies()
		if len(cookies) == 0 || !cookies[0].Secure {
			t.Errorf("cookies over TLS %v: want Secure", cookies)
		}
	})
	t.Run("ok/back to the page asked for", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		b := e.browser()
		r := b.get("/console/cas")
		if r.URL.Path != "/console/signin" {
			t.Fatalf("signed out GET went to %s, want the sign-in page", r.URL.Path)
		}
		token := signInField.FindStringSubmatch(r.Body)[1]
		r = b.post("/console/signin", url.Values{"signin_token": {token}, "access_key_id": {k.ID},
			"secret_access_key": {k.Secret}, "region": {testRegion}, "next": {r.URL.Query().Get("next")}, "csrf": nil})
		if r.URL.Path != "/console/cas" {
			t.Errorf("after sign-in at %s, want /console/cas", r.URL.Path)
		}
	})
	t.Run("fail/wrong secret and unknown key say the same", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		wrong := e.browser().signIn(k.ID, k.Secret+"x", testRegion)
		unknown := e.browser().signIn("AKIAUNKNOWNUNKNOWN00", k.Secret, testRegion)
		for _, r := range []response{wrong, unknown} {
			wantStatus(t, r, http.StatusUnauthorized)
			wantText(t, r, "The access key ID or secret access key is not correct.")
			noText(t, r, "Sign out")
		}
		if text(wrong.Body) != text(unknown.Body) {
			t.Errorf("the pages differ:\n%s\n%s", text(wrong.Body), text(unknown.Body))
		}
	})
	t.Run("fail/bad region", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		r := e.browser().signIn(k.ID, k.Secret, "Not A Region")
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "Choose a Region from the list.")
	})
	t.Run("fail/no sign-in token", func(t *testing.T) {
		e := newEnv(t)
		k := e.key("111111111111")
		b := e.browser()
		r := b.post("/console/signin", url.Values{"access_key_id": {k.ID}, "secret_access_key": {k.Secret}, "csrf": nil})
		wantStatus(t, r, http.StatusForbidden)
		noText(t, r, "Sign out")
	})
	t.Run("fail/rate limited per key id and address", func(t *testing.T) {
		e := newEnv(t)
		e.H.MaxFailedSignIns = 3
		k := e.key("111111111111")
		b := e.browser()
		for range 3 {
			wantStatus(t, b.signIn(k.ID, "wrong", testRegion), http.StatusUnauthorized)
		}
		r := b.signIn(k.ID, k.Secret, testRegion)
		wantStatus(t, r, http.StatusTooManyRequests)
		wantText(t, r, "Too many failed sign-ins")
		// The window passes.
		e.H.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
		wantStatus(t, b.signIn(k.ID, k.Secret, testRegion), http.StatusOK)
	})
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	b, _ := e.signedIn("111111111111")
	r := b.post("/console/signout", nil)
	if r.URL.Path != "/console/signin" {
		t.Fatalf("after sign-out at %s", r.URL.Path)
	}
	if r := b.get("/console/certificates"); r.URL.Path != "/console/signin" {
		t.Errorf("after sign-out the certificates page answered at %s", r.URL.Path)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	now := time.Now()
	e.H.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, _ := e.signedIn("111111111111")
	mu.Lock()
	now = now.Add(e.H.IdleTimeout + time.Second)
	mu.Unlock()
	if r := b.get("/console/certificates"); r.URL.Path != "/console/signin" {
		t.Errorf("an idle session still answered %s", r.URL.Path)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	c, err := e.Reg.RegisterCertificateWithoutCA(context.Background(), scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string][]string{"fail/missing": nil, "fail/wrong": {"not-the-token"}, "fail/empty": {""}} {
		t.Run(name, func(t *testing.T) {
			r := b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"INACTIVE"}, "csrf": token})
			wantStatus(t, r, http.StatusForbidden)
			wantText(t, r, "Request refused")
			r = b.postMultipart("/console/certificates/register", url.Values{"csrf": token}, []file{{"certificates", "a.pem", testpki.Leaf(t).PEM}})
			wantStatus(t, r, http.StatusForbidden)
			if got := describe(t, e, scope, c.ID).Status; got != fleetcert.StatusActive {
				t.Errorf("status changed to %s without a CSRF token", got)
			}
		})
	}
	t.Run("fail/another session's token", func(t *testing.T) {
		other, _ := e.signedIn("111111111111")
		other.csrfToken()
		r := b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"INACTIVE"}, "csrf": {other.csrf}})
		wantStatus(t, r, http.StatusForbidden)
	})
	t.Run("fail/signed out", func(t *testing.T) {
		r := e.browser().post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"INACTIVE"}, "csrf": {"x"}})
		wantStatus(t, r, http.StatusForbidden)
	})
}

func TestAccountIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, scopeA := e.signedIn("111111111111")
	b, _ := e.signedIn("222222222222")
	leaf := testpki.Leaf(t)
	c, err := e.Reg.RegisterCertificateWithoutCA(ctx, scopeA, leaf.PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Isolated CA"})
	ca, err := e.Reg.RegisterCACertificate(ctx, scopeA, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, a.get("/console/certificates"), c.ID[:10])

	r := b.get("/console/certificates")
	if strings.Contains(r.Body, c.ID) {
		t.Error("another account's certificate is listed")
	}
	wantStatus(t, b.get("/console/certificates/"+c.ID), http.StatusNotFound)
	wantStatus(t, b.get("/console/certificates/"+c.ID+"/pem"), http.StatusNotFound)
	wantStatus(t, b.get("/console/cas/"+ca.ID), http.StatusNotFound)
	if strings.Contains(b.get("/console/cas").Body, ca.ID) {
		t.Error("another account's CA is listed")
	}
	r = b.post("/console/certificates/"+c.ID+"/status", url.Values{"status": {"INACTIVE"}})
	wantText(t, r, "does not exist in this account and region")
	b.post("/console/certificates/"+c.ID+"/revoke", nil)
	b.post("/console/certificates/"+c.ID+"/delete", nil)
	b.post("/console/cas/"+ca.ID+"/status", url.Values{"status": {"INACTIVE"}})
	if got := describe(t, e, scopeA, c.ID).Status; got != fleetcert.StatusActive {
		t.Errorf("another account changed the certificate to %s", got)
	}
	if got, _ := e.Reg.DescribeCACertificate(ctx, scopeA, ca.ID); got.Status != fleetcert.CAStatusActive {
		t.Errorf("another account changed the CA to %s", got.Status)
	}

	// The same account in another region is another scope too.
	k := e.key("111111111111")
	other := e.browser()
	other.signIn(k.ID, k.Secret, "us-west-2")
	if strings.Contains(other.get("/console/certificates").Body, c.ID) {
		t.Error("a certificate of eu-west-1 is listed in us-west-2")
	}
}

// panickingSessions stands in for a device gateway that panics.
type panickingSessions struct{}

func (panickingSessions) ClientsOf(fleetcert.Scope, string) []console.Session { panic("gateway bug") }
func (panickingSessions) Connected(fleetcert.Scope) []console.Session         { panic("gateway bug") }

// A panic under a page is a 500 page and a log line, never a dropped
// connection.
func TestPanicIsAnErrorPage(t *testing.T) {
	e := newEnv(t)
	e.H.Sessions = panickingSessions{}
	b, _ := e.signedIn("111111111111")
	r := b.get("/console/devices")
	wantStatus(t, r, http.StatusInternalServerError)
	wantText(t, r, "Something went wrong inside fleetcert")
	if !strings.Contains(e.Log.String(), "console: panic") || !strings.Contains(e.Log.String(), "gateway bug") {
		t.Errorf("no log line for the panic:\n%s", e.Log.String())
	}
}
