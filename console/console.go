// Package console serves fleetcert's web console under /console/: the
// certificate and CA screens of the AWS IoT console, server-rendered with
// html/template and assets embedded in the binary.
//
// Like awsapi, the package translates and never decides: forms become
// Registry calls and *fleetcert.Error values become sentences on the page.
// Which actions a menu offers is asked of the root package's state machine
// (fleetcert.CheckTransition, fleetcert.CanDelete).
package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/fleetcert/fleetcert"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// Defaults of the Handler's tunables.
const (
	DefaultIdleTimeout        = time.Hour
	DefaultMaxSessionAge      = 12 * time.Hour
	DefaultMaxFailedSignIns   = 5
	DefaultFailedSignInWindow = time.Minute
	DefaultRegion             = "us-east-1"

	// MaxRegisterFiles is how many certificate files one "Use my
	// certificate" form registers, as on the AWS console.
	MaxRegisterFiles = 10
)

// Session is one live MQTT session of a device, as the device gateway
// reports it.
type Session struct {
	ClientID      string
	CertificateID string
	RemoteAddr    string
	ConnectedAt   time.Time
}

// Sessions reports the device gateway's live sessions. The console only
// reads it; cmd/fleetcert wires it to the MQTT gateway.
type Sessions interface {
	// ClientsOf returns the live sessions authenticated with certificate
	// certificateID of scope.
	ClientsOf(scope fleetcert.Scope, certificateID string) []Session
	// Connected returns every live session of scope.
	Connected(scope fleetcert.Scope) []Session
}

// Handler serves the console. Create it with NewHandler and set its fields
// before serving the first request.
type Handler struct {
	// Registry executes every operation.
	Registry *fleetcert.Registry

	// Logger receives internal errors and sign-in failures; it never sees
	// secrets.
	Logger *slog.Logger

	// Sessions reports live device sessions; nil means the device gateway
	// is not running, and the pages say so.
	Sessions Sessions

	// Now returns the current time; tests replace it.
	Now func() time.Time

	// IdleTimeout ends a console session unused for that long;
	// MaxSessionAge ends any session that old.
	IdleTimeout   time.Duration
	MaxSessionAge time.Duration

	// MaxFailedSignIns failed sign-ins with one access key id from one
	// client address within FailedSignInWindow refuse further sign-ins
	// with that key id from that address until the window passes, whether
	// the key exists or not. An attempt counts from before its secret is
	// checked, so parallel attempts cannot exceed the limit; a successful
	// one does not count, and forgives no earlier failure. An IPv6 client
	// is counted by its /64 network. Zero or less, in either field, means
	// its default (DefaultMaxFailedSignIns, DefaultFailedSignInWindow).
	MaxFailedSignIns   int
	FailedSignInWindow time.Duration

	// MaxFailedSignInsPerAddress caps the failed sign-ins from one client
	// address within FailedSignInWindow across all access key ids, so that
	// one address cannot try every key id. Zero or less means 4 ×
	// MaxFailedSignIns.
	MaxFailedSignInsPerAddress int

	// TrustedProxies are the networks of the reverse proxies in front of
	// the console; empty (the default) trusts none. Only for a request
	// whose connection comes from one of them is the client address taken
	// from X-Forwarded-For, as the rightmost address that is not itself in
	// TrustedProxies, and the scheme from X-Forwarded-Proto, whose https
	// makes the cookies Secure. From any other peer both headers are
	// ignored, since anyone can set them. The client address is what the
	// sign-in limiter counts and the log lines name.
	TrustedProxies []netip.Prefix

	// Logins, Flashes and Results keep sessions (with their CSRF tokens),
	// flash messages and the results of forms. NewHandler sets in-memory
	// implementations (one MemoryState).
	// SignInLimitStore, when set, keeps the sign-in limiter's counts in
	// that store instead of this process's memory, so that every node of
	// a cluster holds a client to the same limits.
	SignInLimitStore fleetcert.Store

	Logins  LoginStore
	Flashes FlashStore
	Results ResultStore

	// JobRunner starts and runs the bulk actions (the Registry's jobs).
	// NewHandler sets one; fleetcert serve sets its node's.
	JobRunner *fleetcert.JobRunner

	mux     *http.ServeMux
	pages   *template.Template // each page by name, see parsePages
	limiter signInLimiter
	runner  jobRunner
}

// NewHandler returns a Handler on reg that logs to logger (slog.Default()
// when nil).
func NewHandler(reg *fleetcert.Registry, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{
		Registry:           reg,
		Logger:             logger,
		Now:                time.Now,
		IdleTimeout:        DefaultIdleTimeout,
		MaxSessionAge:      DefaultMaxSessionAge,
		MaxFailedSignIns:   DefaultMaxFailedSignIns,
		FailedSignInWindow: DefaultFailedSignInWindow,
		mux:                http.NewServeMux(),
		pages:              parsePages(),
	}
	state := NewMemoryState()
	h.Logins, h.Flashes, h.Results = state, state, state
	h.JobRunner = fleetcert.NewJobRunner(reg, logger)
	h.routes()
	return h
}

func (h *Handler) routes() {
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	h.mux.Handle("GET "+Prefix+"static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Assets change only with the binary; an hour keeps the pages fast
		// without pinning an old stylesheet for long after an upgrade.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	h.mux.HandleFunc("GET "+Prefix+"{$}", h.home)
	h.mux.HandleFunc("GET "+Prefix+"signin", h.signInPage)
	h.mux.HandleFunc("POST "+Prefix+"signin", h.signIn)
	h.mux.HandleFunc("POST "+Prefix+"signout", h.auth(h.signOut))
	h.mux.HandleFunc("POST "+Prefix+"region", h.auth(h.switchRegion))

	h.mux.HandleFunc("GET "+Prefix+"certificates", h.auth(h.certificates))
	h.mux.HandleFunc("GET "+Prefix+"certificates/create", h.auth(h.createChoice))
	h.mux.HandleFunc("GET "+Prefix+"certificates/register", h.auth(h.registerPage))
	h.mux.HandleFunc("POST "+Prefix+"certificates/register", h.auth(h.register))
	h.mux.HandleFunc("GET "+Prefix+"certificates/register/results/{rid}", h.auth(h.registerResults))
	h.mux.HandleFunc("GET "+Prefix+"certificates/create-keys/result/{rid}", h.auth(h.createdKeys))
	h.mux.HandleFunc("GET "+Prefix+"certificates/create-keys", h.auth(h.createKeysPage))
	h.mux.HandleFunc("POST "+Prefix+"certificates/create-keys", h.auth(h.createKeys))
	h.mux.HandleFunc("GET "+Prefix+"certificates/from-csr", h.auth(h.fromCSRPage))
	h.mux.HandleFunc("POST "+Prefix+"certificates/from-csr", h.auth(h.fromCSR))
	h.mux.HandleFunc("GET "+Prefix+"certificates/{id}", h.auth(h.certificate))
	h.mux.HandleFunc("GET "+Prefix+"certificates/{id}/pem", h.auth(h.certificatePEM))
	h.mux.HandleFunc("GET "+Prefix+"certificates/{id}/status", h.auth(h.confirmStatus))
	h.mux.HandleFunc("POST "+Prefix+"certificates/{id}/status", h.auth(h.updateCertificate))
	h.mux.HandleFunc("GET "+Prefix+"certificates/{id}/revoke", h.auth(h.confirmRevoke))
	h.mux.HandleFunc("POST "+Prefix+"certificates/{id}/revoke", h.auth(h.revokeCertificate))
	h.mux.HandleFunc("GET "+Prefix+"certificates/{id}/delete", h.auth(h.confirmDelete))
	h.mux.HandleFunc("POST "+Prefix+"certificates/{id}/delete", h.auth(h.deleteCertificate))

	h.mux.HandleFunc("GET "+Prefix+"cas", h.auth(h.cas))
	h.mux.HandleFunc("GET "+Prefix+"cas/register", h.auth(h.registerCAPage))
	h.mux.HandleFunc("POST "+Prefix+"cas/register", h.auth(h.registerCA))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}", h.auth(h.ca))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}/pem", h.auth(h.caPEM))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}/status", h.auth(h.confirmCAStatus))
	h.mux.HandleFunc("POST "+Prefix+"cas/{id}/status", h.auth(h.updateCA))
	h.mux.HandleFunc("POST "+Prefix+"cas/{id}/auto-registration", h.auth(h.updateAutoRegistration))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}/delete", h.auth(h.confirmDeleteCA))
	h.mux.HandleFunc("POST "+Prefix+"cas/{id}/delete", h.auth(h.deleteCA))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}/bulk", h.auth(h.confirmBulk))
	h.mux.HandleFunc("POST "+Prefix+"cas/{id}/bulk", h.auth(h.startBulk))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}/bulk/{job}", h.auth(h.bulkProgress))
	h.mux.HandleFunc("GET "+Prefix+"cas/{id}/bulk/{job}/progress", h.auth(h.bulkFragment))

	h.mux.HandleFunc("POST "+Prefix+"certificates/{id}/things", h.auth(h.attachCertificateThing))
	h.mux.HandleFunc("POST "+Prefix+"certificates/{id}/policies", h.auth(h.attachCertificatePolicy))
	h.mux.HandleFunc("GET "+Prefix+"certificates/{id}/policies/{name}/detach", h.auth(h.confirmDetachCertificatePolicy))
	h.mux.HandleFunc("POST "+Prefix+"certificates/{id}/policies/{name}/detach", h.auth(h.detachCertificatePolicy))

	// Things and policies: their create forms are under create/, not
	// things/create or policies/create, which are valid names.
	h.mux.HandleFunc("GET "+Prefix+"things", h.auth(h.things))
	h.mux.HandleFunc("GET "+Prefix+"create/thing", h.auth(h.createThingPage))
	h.mux.HandleFunc("POST "+Prefix+"create/thing", h.auth(h.createThing))
	h.mux.HandleFunc("GET "+Prefix+"things/{name}", h.auth(h.thing))
	h.mux.HandleFunc("POST "+Prefix+"things/{name}/attributes", h.auth(h.updateThingAttributes))
	h.mux.HandleFunc("POST "+Prefix+"things/{name}/principals", h.auth(h.attachThingPrincipal))
	h.mux.HandleFunc("GET "+Prefix+"things/{name}/principals/{id}/detach", h.auth(h.confirmDetachThingPrincipal))
	h.mux.HandleFunc("POST "+Prefix+"things/{name}/principals/{id}/detach", h.auth(h.detachThingPrincipal))
	h.mux.HandleFunc("GET "+Prefix+"things/{name}/delete", h.auth(h.confirmDeleteThing))
	h.mux.HandleFunc("POST "+Prefix+"things/{name}/delete", h.auth(h.deleteThing))

	h.mux.HandleFunc("GET "+Prefix+"policies", h.auth(h.policies))
	h.mux.HandleFunc("GET "+Prefix+"create/policy", h.auth(h.createPolicyPage))
	h.mux.HandleFunc("POST "+Prefix+"create/policy", h.auth(h.createPolicy))
	h.mux.HandleFunc("GET "+Prefix+"policies/{name}", h.auth(h.policy))
	h.mux.HandleFunc("POST "+Prefix+"policies/{name}/versions", h.auth(h.createPolicyVersion))
	h.mux.HandleFunc("POST "+Prefix+"policies/{name}/versions/{version}/default", h.auth(h.setDefaultPolicyVersion))
	h.mux.HandleFunc("GET "+Prefix+"policies/{name}/versions/{version}/delete", h.auth(h.confirmDeletePolicyVersion))
	h.mux.HandleFunc("POST "+Prefix+"policies/{name}/versions/{version}/delete", h.auth(h.deletePolicyVersion))
	h.mux.HandleFunc("GET "+Prefix+"policies/{name}/delete", h.auth(h.confirmDeletePolicy))
	h.mux.HandleFunc("POST "+Prefix+"policies/{name}/delete", h.auth(h.deletePolicy))
	h.mux.HandleFunc("GET "+Prefix+"policy-simulator", h.auth(h.policySimulator))

	h.mux.HandleFunc("GET "+Prefix+"devices", h.auth(h.devices))
	h.mux.HandleFunc(Prefix, h.auth(h.notFoundPage))
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// Everything the pages load comes from the console itself; downloads
	// are data: links.
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "same-origin")
	defer h.recoverPanic(w, r)
	h.mux.ServeHTTP(w, r)
}

// recoverPanic turns a panic of a page into the generic error page and a
// log line, instead of a connection dropped in the browser's face.
func (h *Handler) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v) // net/http's own way to abort a response
	}
	h.Logger.Error("console: panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	h.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"Something went wrong inside fleetcert; the details have been logged for the administrator. Try again in a moment.")
}

// Close stops running bulk actions and waits for them to end.
func (h *Handler) Close() error {
	h.runner.closeAll()
	return nil
}

func (h *Handler) now() time.Time { return h.Now() }

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if h.currentLogin(r) == nil {
		http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"certificates", http.StatusSeeOther)
}

// page is what every template receives.
type page struct {
	Title string
	Nav   string // "certificates", "cas", "things", "policies", "simulate" or "devices": the current entry
	Login *Login
	CSRF  string
	Flash *Flash
	// Refresh makes the browser load the page again after a second.
	Refresh bool
	Data    any
}

// render executes the page template name with data and writes it with
// status.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	if h.pages.Lookup(name) == nil {
		panic("console: no page template " + name)
	}
	if l := loginFrom(r); l != nil && p.Login == nil {
		p.Login = l
		p.CSRF = l.CSRF
		if p.Flash == nil {
			f, err := h.Flashes.PopFlash(r.Context(), l.Token)
			if err != nil {
				h.Logger.Error("console: read flash", "err", err)
			}
			p.Flash = f
		}
	}
	var buf bytes.Buffer
	if err := h.pages.ExecuteTemplate(&buf, name, p); err != nil {
		h.Logger.Error("console: render page", "page", name, "err", err)
		http.Error(w, "An internal error occurred; it has been logged.", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show account data and, once, private keys: never cache them.
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderFragment executes template name alone (a part of a page that a
// script fetches).
func (h *Handler) renderFragment(w http.ResponseWriter, r *http.Request, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.ExecuteTemplate(&buf, name, data); err != nil {
		h.Logger.Error("console: render fragment", "template", name, "err", err)
		http.Error(w, "An internal error occurred; it has been logged.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// errorPage renders a page that says what went wrong, with status.
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	h.render(w, r, status, "error", &page{Title: title, Data: struct{ Heading, Message string }{title, message}})
}

func (h *Handler) notFoundPage(w http.ResponseWriter, r *http.Request) {
	h.errorPage(w, r, http.StatusNotFound, "Page not found", "There is no console page at this address.")
}

// fail shows err from the registry on an error page: the registry's
// message in plain words, or a generic text for an internal failure (whose
// details are logged).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadRequest
	title := "That did not work"
	switch fleetcert.ErrorCode(err) {
	case fleetcert.EResourceNotFound:
		status, title = http.StatusNotFound, "Not found"
	case fleetcert.EInternalFailure:
		status, title = http.StatusInternalServerError, "Something went wrong"
	case fleetcert.EServiceUnavailable:
		status, title = http.StatusServiceUnavailable, "Database unreachable"
	}
	h.errorPage(w, r, status, title, h.errorText(r, err))
}

// errorText is err in words for the page. Registry errors carry a message
// written for the caller; anything else is an internal failure, logged here
// and described generically.
func (h *Handler) errorText(r *http.Request, err error) string {
	switch fleetcert.ErrorCode(err) {
	case "":
		return ""
	case fleetcert.EInternalFailure:
		h.Logger.Error("console: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		return "Something went wrong inside fleetcert; the details have been logged for the administrator. Try again in a moment."
	case fleetcert.EThrottling:
		return "fleetcert is busy right now; try again in a moment."
	case fleetcert.EServiceUnavailable:
		// The only source today: the store's database went away.
		return "The database is unreachable: fleetcert can neither show nor change anything until it returns. Connected devices stay connected; try again in a moment."
	case fleetcert.EResourceAlreadyExists:
		var e *fleetcert.Error
		msg := fleetcert.ErrorMessage(err)
		if errors.As(err, &e) && e.ResourceID != "" {
			return msg + " Its id is " + e.ResourceID + "."
		}
		return msg
	}
	return fleetcert.ErrorMessage(err)
}

// redirectFlash redirects to target (a console path) with a message for the
// next page.
func (h *Handler) redirectFlash(w http.ResponseWriter, r *http.Request, target string, f *Flash) {
	if l := loginFrom(r); l != nil && f != nil {
		if err := h.Flashes.SetFlash(r.Context(), l.Token, *f); err != nil {
			h.Logger.Error("console: store flash", "err", err)
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// returnTo is the console page a form asks to come back to, or fallback.
// Only console paths are accepted, so a crafted form cannot redirect
// elsewhere.
func returnTo(r *http.Request, fallback string) string {
	if v := r.FormValue("return"); isConsolePath(v) {
		return v
	}
	return fallback
}
