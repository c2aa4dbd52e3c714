package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/fleetcert/fleetcert"
)

const (
	// sessionCookie holds the console session token.
	sessionCookie = "fleetcert_console"
	// signInCookie holds the token of the sign-in form (double submit), so
	// that another site cannot sign a browser in to an account of its
	// choosing.
	signInCookie = "fleetcert_console_signin"
)

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newLogin stores a new session of key keyID in scope.
func (h *Handler) newLogin(ctx context.Context, scope fleetcert.Scope, keyID string) (*Login, error) {
	now := h.now()
	if m, ok := h.Logins.(*MemoryState); ok {
		m.pruneLogins(now, h.IdleTimeout, h.MaxSessionAge)
	}
	l := &Login{Token: randomToken(), CSRF: randomToken(), Scope: scope, KeyID: keyID, Created: now, LastSeen: now}
	return l, h.Logins.CreateLogin(ctx, l)
}

type loginKey struct{}

func loginFrom(r *http.Request) *Login {
	l, _ := r.Context().Value(loginKey{}).(*Login)
	return l
}

func (h *Handler) currentLogin(r *http.Request) *Login {
	l, _ := h.readLogin(r)
	return l
}

// readLogin returns the request's session, nil when it has none, and the
// error of a session store that could not be read (its database is
// unreachable): that is no reason to sign the operator out.
func (h *Handler) readLogin(r *http.Request) (*Login, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	l, err := h.Logins.Login(r.Context(), c.Value, h.now(), h.IdleTimeout, h.MaxSessionAge)
	if err != nil {
		h.Logger.Error("console: read session", "err", err)
		return nil, err
	}
	if l == nil {
		return nil, nil
	}
	// A session lasts only as long as the access key it signed in with:
	// read from the store on every request (one lookup by primary key), so
	// a deleted key's sessions end at once on every node, however their
	// state is kept.
	_, err = h.Registry.AccessKey(r.Context(), l.KeyID)
	switch fleetcert.ErrorCode(err) {
	case "":
		return l, nil
	case fleetcert.EResourceNotFound:
		h.Logger.Info("console: session ended, its access key was deleted", "accessKeyId", l.KeyID)
		if err := h.Logins.DeleteLogin(r.Context(), l.Token); err != nil {
			h.Logger.Error("console: delete session", "err", err)
		}
		return nil, nil
	default:
		h.Logger.Error("console: read session's access key", "err", err)
		return nil, err
	}
}

// auth runs fn for a signed-in session and checks the CSRF token of every
// POST; anyone else is sent to the sign-in page.
func (h *Handler) auth(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l, err := h.readLogin(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if l == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			h.errorPage(w, r, http.StatusForbidden, "Signed out",
				"Your console session has ended. Sign in again, then repeat the action.")
			return
		}
		r = r.WithContext(fleetcert.WithActor(context.WithValue(r.Context(), loginKey{}, l), h.actor(r, l)))
		if r.Method == http.MethodPost {
			// Multipart forms are parsed by their handlers with a size
			// limit; the token is then checked there too.
			if !h.checkCSRF(w, r, l) {
				return
			}
		}
		fn(w, r)
	}
}

// maxFormBytes limits a urlencoded form; multipart uploads have their own
// limit.
const maxFormBytes = 1 << 20

// maxUploadBytes limits a multipart upload: ten certificates of up to
// 64 KiB and the rest of the form.
const maxUploadBytes = MaxRegisterFiles*(fleetcert.MaxCertificatePEM+4096) + 64<<10

func (h *Handler) checkCSRF(w http.ResponseWriter, r *http.Request, l *Login) bool {
	var err error
	if isMultipart(r) {
		r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes)
		err = r.ParseMultipartForm(maxUploadBytes)
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		err = r.ParseForm()
	}
	if err != nil {
		h.errorPage(w, r, http.StatusRequestEntityTooLarge, "The form is too large",
			"The form could not be read: it is larger than the console accepts. Register at most 10 certificate files of up to 64 KB each at a time.")
		return false
	}
	got := r.PostFormValue("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(l.CSRF)) != 1 {
		h.errorPage(w, r, http.StatusForbidden, "Request refused",
			"This form was not sent from a current console page, so it was refused to protect your account. Reload the page and try again.")
		return false
	}
	return true
}

func isMultipart(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 19 && ct[:19] == "multipart/form-data"
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     Prefix,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   h.secure(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// actor is who the audit log names for what session l changes: the access
// key id it signed in with (never the secret), marked as the console's,
// from the client's address.
func (h *Handler) actor(r *http.Request, l *Login) fleetcert.Actor {
	a := fleetcert.Actor{ID: fleetcert.ActorConsolePrefix + l.KeyID, AccountID: l.Scope.AccountID}
	if addr := h.clientAddr(r); addr.IsValid() {
		a.SourceIP = addr.Unmap().String()
	}
	return a
}
