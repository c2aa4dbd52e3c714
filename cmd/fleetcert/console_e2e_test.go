package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/chromedp/chromedp"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// chromiumPath is Debian's chromium, as scripts/install-tools finds it;
// FLEETCERT_CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("FLEETCERT_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return "/usr/bin/chromium"
}

// screenshotDir is where screenshots go: docs/screenshots/ when
// FLEETCERT_UPDATE_SCREENSHOTS=1 (to refresh the README's pictures), a
// temporary directory otherwise.
func screenshotDir(t *testing.T) string {
	if os.Getenv("FLEETCERT_UPDATE_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// newBrowser starts headless Chromium and returns a tab's context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromiumPath()
	if _, err := os.Stat(exe); err != nil {
		t.Skipf("chromium not installed at %s (apt-get install chromium): %v", exe, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.WindowSize(1280, 860),
	}
	// Chromium's start can fail for a moment when the machine is short of
	// processes or memory (CI once saw "Zygote could not fork" while the
	// package's other tests ran their servers): a fresh browser is tried
	// three times before the test fails.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		// A profile of its own each time: a failed start may leave its lock.
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, chromedp.UserDataDir(t.TempDir()))...)
		ctx, cancelTab := chromedp.NewContext(allocCtx)
		ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
		stop := func() {
			cancelTimeout()
			cancelTab()
			cancelAlloc()
		}
		if err = chromedp.Do(ctx); err == nil {
			t.Cleanup(stop)
			return ctx
		}
		stop()
		t.Logf("start chromium, attempt %d: %v", attempt, err)
	}
	t.Fatalf("start chromium: %v", err)
	return nil
}

// TestConsoleInChromium drives the console in headless Chromium against the
// real binary: sign in, register two PEM files with activation, deactivate
// and revoke one from the option menu, register a CA, and take the
// screenshots of the README.
func TestConsoleInChromium(t *testing.T) {
	ctx := newBrowser(t)
	s := startServer(t)
	api := s.defaultClient()
	base := "http://" + s.addr
	shots := screenshotDir(t)
	dir := t.TempDir()

	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := &chrome{t: t, ctx: ctx, shots: shots}
	run, screenshot := c.run, c.screenshot

	// "/" leads to the console, which asks to sign in.
	run("open /", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#access_key_id")))
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.HasSuffix(loc, "/console/signin") {
		t.Errorf("/ led to %s", loc)
	}
	run("sign-in form",
		chromedp.SendKeys(chromedp.CSS("#access_key_id"), testKeyID),
		chromedp.SendKeys(chromedp.CSS("#secret_access_key"), testSecret),
		chromedp.SetValue(chromedp.CSS("#region"), testRegion),
		chromedp.Focus(chromedp.CSS(`button[type="submit"]`)),
		screenshot("signin.png"),
	)
	run("wrong secret",
		chromedp.SetValue(chromedp.CSS("#secret_access_key"), "not-the-secret"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		waitText(".alert-error", "not correct"),
	)
	run("sign in",
		// The refusal's page has its own address, which holds neither the
		// key id nor the secret: type both again.
		chromedp.SendKeys(chromedp.CSS("#access_key_id"), testKeyID),
		chromedp.SendKeys(chromedp.CSS("#secret_access_key"), testSecret),
		chromedp.SetValue(chromedp.CSS("#region"), testRegion),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		waitText("h1", "Certificates"),
		waitText(".topbar", testAccount),
	)

	// Create → Use my certificate: two PEM files, activated.
	one, two := testpki.New(t, testpki.Options{CommonName: "thermostat-0001"}), testpki.New(t, testpki.Options{CommonName: "thermostat-0002"})
	oneID, twoID := fleetcert.CertificateID(one.Cert.Raw), fleetcert.CertificateID(two.Cert.Raw)
	run("register two files",
		chromedp.Click(chromedp.CSS(`a[href="/console/certificates/create"]`)),
		waitText("h1", "Create a certificate"),
		chromedp.Click(chromedp.CSS(`a[href="/console/certificates/register"]`)),
		waitText("h1", "Register existing device certificates"),
		// Three files chosen, one of them by mistake: it is removed from
		// the selection before sending.
		chromedp.SetUploadFiles(chromedp.CSS("#certificates"), []string{write("thermostat-0001.pem", one.PEM), write("notes.txt", "not a certificate"), write("thermostat-0002.pem", two.PEM)}),
		waitText("#file-list", "notes.txt"),
		chromedp.Click(chromedp.CSS(`#file-list button[aria-label="Remove notes.txt"]`)),
		waitTrue("notes.txt removed", `document.getElementById("certificates").files.length === 2 && !document.getElementById("file-list").textContent.includes("notes.txt")`),
		waitText("#file-list", "thermostat-0002.pem"),
		chromedp.Click(chromedp.CSS(`input[name="status_all"][value="ACTIVE"]`)),
		screenshot("register.png"),
		chromedp.Click(chromedp.CSS(`#register-form button[type="submit"]`)),
		waitText(".alert", "2 of 2 certificates registered"),
		screenshot("register-result.png"),
	)
	// Post/redirect/get: the results have their own address, and a reload
	// shows them again rather than registering the files again.
	resultURL, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(resultURL, "/console/certificates/register/results/") {
		t.Errorf("registration results at %s, not at their own address", resultURL)
	}
	run("reload the results",
		chromedp.Reload(),
		waitText(".alert", "2 of 2 certificates registered"),
	)
	for _, id := range []string{oneID, twoID} {
		if got := certStatus(t, api, id); got != "ACTIVE" {
			t.Errorf("registered %s is %s, want ACTIVE", id[:10], got)
		}
	}

	// Deactivate, then revoke, the first from its option menu.
	menu := `summary[aria-label="Actions for certificate ` + oneID[:10] + `…"]`
	run("deactivate from the option menu",
		chromedp.Navigate(base+"/console/certificates"),
		waitText("h1", "Certificates"),
		chromedp.Click(chromedp.CSS(menu)),
		chromedp.WaitVisible(chromedp.CSS(`details.menu[open] a[href*="to=INACTIVE"]`)),
		screenshot("certificates-menu.png"),
		chromedp.Click(chromedp.CSS(`details.menu[open] a[href*="to=INACTIVE"]`)),
		waitText("h1", "Deactivate certificate "+oneID[:10]),
		chromedp.Click(chromedp.CSS(`form[action$="/status"] button[type="submit"]`)),
		waitText(".alert-success", "(thermostat-0001) is now inactive"),
	)
	if got := certStatus(t, api, oneID); got != "INACTIVE" {
		t.Fatalf("after Deactivate: %s", got)
	}
	run("revoke from the option menu",
		chromedp.Click(chromedp.CSS(menu)),
		chromedp.WaitVisible(chromedp.CSS(`details.menu[open] a[href*="/revoke"]`)),
		chromedp.Click(chromedp.CSS(`details.menu[open] a[href*="/revoke"]`)),
		waitText("h1", "Revoke certificate"),
		waitText(".alert-warn", "can never be activated again"),
		screenshot("revoke-confirm.png"),
		chromedp.Click(chromedp.CSS(`button.btn-danger`)),
		waitText(".alert-success", "is now revoked"),
		screenshot("certificates.png"),
	)
	if got := certStatus(t, api, oneID); got != "REVOKED" {
		t.Fatalf("after Revoke: %s", got)
	}
	if got := certStatus(t, api, twoID); got != "ACTIVE" {
		t.Errorf("the other certificate is %s", got)
	}
	// A revoked certificate's menu offers only Delete.
	run("menu of a revoked certificate", chromedp.Click(chromedp.CSS(menu)))
	menuText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`details.menu[open] .menu-items`)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(menuText, "Activate") || !strings.Contains(menuText, "Delete") {
		t.Errorf("menu of a revoked certificate: %q", menuText)
	}

	run("certificate detail",
		chromedp.Navigate(base+"/console/certificates/"+twoID),
		waitText("h1", "Certificate"),
		waitText(".props", "CN=thermostat-0002"),
		screenshot("certificate.png"),
	)

	// Register a CA with a verification certificate.
	run("register CA page",
		chromedp.Navigate(base+"/console/cas"),
		chromedp.Click(chromedp.CSS(`a[href="/console/cas/register"]`)),
		waitText("h1", "Register a CA certificate"),
	)
	code, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#code")))
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 64 {
		t.Fatalf("registration code %q", code)
	}
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Acme Thermostats CA"})
	verification := testpki.New(t, testpki.Options{Parent: ca, CommonName: code})
	run("register CA",
		chromedp.SetUploadFiles(chromedp.CSS("#ca_file"), []string{write("rootCA.pem", ca.PEM)}),
		chromedp.SetUploadFiles(chromedp.CSS("#verification_file"), []string{write("verification_cert.pem", verification.PEM)}),
		screenshot("register-ca.png"),
		chromedp.Click(chromedp.CSS(`form button.btn-primary[type="submit"]`)),
		waitText(".alert-success", "CA certificate Acme Thermostats CA registered."),
	)
	caID := fleetcert.CertificateID(ca.Cert.Raw)
	out, err := api.DescribeCACertificate(context.Background(), &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.CertificateDescription.Status); got != "ACTIVE" {
		t.Errorf("registered CA is %s", got)
	}
	// Devices of that CA, registered through the API, appear on its page.
	for i := range 3 {
		leaf := testpki.New(t, testpki.Options{Parent: ca, CommonName: "acme-" + string(rune('a'+i))})
		if _, err := api.RegisterCertificate(context.Background(), &iot.RegisterCertificateInput{
			CertificatePem: aws.String(leaf.PEM), CaCertificatePem: aws.String(ca.PEM), SetAsActive: aws.Bool(true),
		}); err != nil {
			t.Fatal(err)
		}
	}
	run("CA detail",
		chromedp.Reload(),
		waitText("#h-issued", "Certificates issued by this CA"),
		waitText("table.data", "Active"),
		screenshot("ca.png"),
		chromedp.Navigate(base+"/console/cas"),
		waitText("table.data", "Acme Thermostats CA"),
		screenshot("cas.png"),
	)

	// Sign out: the console asks to sign in again.
	run("sign out",
		chromedp.Click(chromedp.CSS(`form[action="/console/signout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#access_key_id")),
	)
	resp, err := http.Get(base + "/console/certificates")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/console/signin" {
		t.Errorf("signed-out request answered at %s", resp.Request.URL)
	}
}

// chrome is a tab of the browser test and where its screenshots go.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

// run runs actions, failing the test with the page's address and text.
func (c *chrome) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	// A step that cannot happen (a missing element) fails after the hang
	// limit, not at the browser's overall deadline.
	ctx, cancel := context.WithTimeout(c.ctx, testwait.Hang)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(c.ctx, chromedp.Location())
		body, _ := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS("body")))
		c.t.Fatalf("%s: %v\nat %s:\n%s", step, err, loc, body)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](c *chrome, expr string) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves the whole page once it is laid out: right after a
// navigation the DOM can be there while the layout is not (Chromium then
// refuses a 0-width capture).
func (c *chrome) screenshot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		var png []byte
		err := browserWait(ctx, func() (bool, error) {
			ready, err := chromedp.Evaluate[bool](`document.readyState === "complete" && document.documentElement.getBoundingClientRect().width > 0`)(ctx, tab)
			if err != nil || !ready {
				return false, err
			}
			png, err = chromedp.FullScreenshot(100)(ctx, tab)
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		return os.WriteFile(filepath.Join(c.shots, name), png, 0o644)
	})
}

// waitText waits until an element matching the CSS selector contains
// text. Evaluation errors while a page is replaced by the next one are
// retried until the deadline. It first waits for such an element through
// chromedp's own view of the document: the page's JavaScript can show the
// next page before chromedp has read that page's document
// (DOM.documentUpdated arrives later), and an action on a node of the
// previous page then fails with "Could not find node with given id".
// Waiting for an element only the new page has (an alert after a form was
// sent) makes the next action see the new page.
func waitText(selector, text string) chromedp.Action[chromedp.Void] {
	expr := `Array.from(document.querySelectorAll(` + jsQuote(selector) + `)).some(e => e.textContent.includes(` + jsQuote(text) + `))`
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		wctx, cancel := context.WithTimeout(ctx, testwait.Hang)
		defer cancel()
		if _, err := chromedp.WaitVisible(chromedp.CSS(selector))(wctx, tab); err != nil {
			return fmt.Errorf("no %s: %w", selector, err)
		}
		err := browserWait(ctx, func() (bool, error) { return chromedp.Evaluate[bool](expr)(ctx, tab) })
		if err != nil {
			return fmt.Errorf("no %s says %q: %w", selector, text, err)
		}
		return nil
	})
}

// waitTrue waits until the JavaScript expression is true.
func waitTrue(what, expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		err := browserWait(ctx, func() (bool, error) { return chromedp.Evaluate[bool](expr)(ctx, tab) })
		if err != nil {
			return fmt.Errorf("waiting for %s (%s): %w", what, expr, err)
		}
		return nil
	})
}

func certStatus(t *testing.T, api *iot.Client, id string) string {
	t.Helper()
	out, err := api.DescribeCertificate(context.Background(), &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return string(out.CertificateDescription.Status)
}

// browserWait calls cond until it reports true, for up to testwait.Hang.
// Errors (such as evaluating while one page replaces another) are retried;
// the last one is returned at the deadline.
func browserWait(ctx context.Context, cond func() (bool, error)) error {
	deadline := testwait.Deadline()
	for {
		ok, err := cond()
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("condition still false after %s", testwait.Hang)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// jsQuote quotes s as a JavaScript string literal.
func jsQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
