package console

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

type signInData struct {
	Next        string
	AccessKeyID string
	Region      string
	Error       string
	Token       string
}

// badCredentials is the one message for an unknown key and a wrong secret,
// so that the page does not tell which one was wrong.
const badCredentials = "The access key ID or secret access key is not correct."

// signInRefusals are the reasons a sign-in POST redirects back to the
// form with (post/redirect/get: a reload shows the refusal again rather
// than sending the secret again), with the page's status and message. The
// reason is in the address, never the key id or the secret.
var signInRefusals = map[string]struct {
	status  int
	message string
}{
	"credentials": {http.StatusUnauthorized, badCredentials},
	"expired":     {http.StatusForbidden, "The sign-in form expired or was not sent from this console. Try again."},
	"region":      {http.StatusBadRequest, "Choose a Region from the list."},
	"limited":     {http.StatusTooManyRequests, ""},
	"internal":    {http.StatusInternalServerError, "Something went wrong inside fleetcert; the details have been logged for the administrator. Try again in a moment."},
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	if h.currentLogin(r) != nil {
		http.Redirect(w, r, nextPage(r), http.StatusSeeOther)
		return
	}
	q := r.URL.Query()
	d := signInData{Next: q.Get("next"), Region: q.Get("region")}
	if !knownRegion(d.Region) {
		d.Region = DefaultRegion
	}
	status := http.StatusOK
	if f, ok := signInRefusals[q.Get("failed")]; ok {
		status, d.Error = f.status, f.message
		if q.Get("failed") == "limited" {
			wait, err := strconv.Atoi(q.Get("wait"))
			if err != nil || wait < 1 || wait > 24*3600 {
				wait = 60
			}
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			d.Error = "Too many failed sign-ins from your address. Try again in " + inWords(time.Duration(wait)*time.Second) + "."
		}
	}
	h.showSignIn(w, r, status, d)
}

// refuseSignIn redirects to the sign-in form saying why.
func (h *Handler) refuseSignIn(w http.ResponseWriter, r *http.Request, d signInData, reason string, wait time.Duration) {
	v := url.Values{"failed": {reason}}
	if knownRegion(d.Region) {
		v.Set("region", d.Region)
	}
	if isConsolePath(d.Next) {
		v.Set("next", d.Next)
	}
	if wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		v.Set("wait", strconv.Itoa(secs))
		// For a client that reads the answer to its POST.
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	http.Redirect(w, r, Prefix+"signin?"+v.Encode(), http.StatusSeeOther)
}

func (h *Handler) showSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	d.Token = randomToken()
	h.setCookie(w, r, signInCookie, d.Token, 0)
	h.render(w, r, status, "signin", &page{Title: "Sign in", Data: d})
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest, "Sign-in failed", "The sign-in form could not be read.")
		return
	}
	d := signInData{
		Next:        r.PostFormValue("next"),
		AccessKeyID: strings.TrimSpace(r.PostFormValue("access_key_id")),
		Region:      strings.TrimSpace(r.PostFormValue("region")),
	}
	if d.Region == "" {
		d.Region = DefaultRegion
	}
	c, err := r.Cookie(signInCookie)
	if form := r.PostFormValue("signin_token"); err != nil || form == "" ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		h.refuseSignIn(w, r, d, "expired", 0)
		return
	}
	if !knownRegion(d.Region) {
		h.refuseSignIn(w, r, d, "region", 0)
		return
	}
	// The attempt is counted before its secret is checked, and given back
	// if the secret is right: counted after a failure, parallel attempts
	// could all pass the check before the first failure was recorded.
	addr, now := h.clientAddr(r), h.now()
	release, wait, ok, err := h.reserveSignIn(r.Context(), d.AccessKeyID, addr, now, h.signInLimits())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !ok {
		h.Logger.Warn("console: sign-in refused, too many failures", "remoteAddr", addr.String())
		// One message for every limit and for any key id, known or not, so
		// that the refusal tells nothing about the key.
		h.refuseSignIn(w, r, d, "limited", wait)
		return
	}
	secret := r.PostFormValue("secret_access_key")
	key, err := h.Registry.AccessKey(r.Context(), d.AccessKeyID)
	stored := "\x00no such key: compare anyway, so both failures take as long\x00"
	switch code := fleetcert.ErrorCode(err); code {
	case "":
		stored = key.Secret
	case fleetcert.EResourceNotFound:
	default:
		release()           // the secret was not checked
		h.errorText(r, err) // logs it
		h.refuseSignIn(w, r, d, "internal", 0)
		return
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(stored)) != 1 || key == nil || d.AccessKeyID == "" {
		h.Logger.Info("console: failed sign-in", "remoteAddr", addr.String())
		h.refuseSignIn(w, r, d, "credentials", 0)
		return
	}
	// A success gives back its own attempt and forgives no other: clearing
	// the address's count would let whoever holds one key guess at the
	// others without limit.
	release()
	l, err := h.newLogin(r.Context(), fleetcert.Scope{AccountID: key.AccountID, Region: d.Region}, key.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, r, sessionCookie, l.Token, 0)
	h.setCookie(w, r, signInCookie, "", -1)
	h.Logger.Info("console: signed in", "accessKeyId", key.ID, "accountId", key.AccountID, "region", d.Region, "remoteAddr", addr.String())
	next := d.Next
	if !isConsolePath(next) {
		next = Prefix + "certificates"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	if err := h.Logins.DeleteLogin(r.Context(), loginFrom(r).Token); err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

func nextPage(r *http.Request) string {
	if n := r.URL.Query().Get("next"); isConsolePath(n) {
		return n
	}
	return Prefix + "certificates"
}

// isConsolePath reports whether s is a path of this console (and not, say,
// //evil.example/console/).
func isConsolePath(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil &&
		strings.HasPrefix(s, Prefix) && !strings.Contains(s, "//") && !strings.Contains(s, "\\")
}

// inWords is d, rounded up, for a sentence: "1 second", "45 seconds",
// "15 minutes".
func inWords(d time.Duration) string {
	n, unit := (d+time.Second-1)/time.Second, "second"
	if d > 2*time.Minute {
		n, unit = (d+time.Minute-1)/time.Minute, "minute"
	}
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// signInLimits are the Handler's sign-in limits, defaults applied.
func (h *Handler) signInLimits() limits {
	l := limits{perKey: h.MaxFailedSignIns, perAddr: h.MaxFailedSignInsPerAddress, window: h.FailedSignInWindow}
	if l.perKey <= 0 {
		l.perKey = DefaultMaxFailedSignIns
	}
	if l.perAddr <= 0 {
		l.perAddr = 4 * l.perKey
	}
	if l.window <= 0 {
		l.window = DefaultFailedSignInWindow
	}
	return l
}
