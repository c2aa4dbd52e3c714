package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"

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

// login is one signed-in console session. Only the store's mutex guards
// the mutable fields.
type login struct {
	token    string
	csrf     string
	Scope    fleetcert.Scope
	KeyID    string
	created  time.Time
	lastSeen time.Time
	flash    *flash
}

// loginStore keeps console sessions in memory: a restart signs everyone
// out, which is acceptable for an operator console.
type loginStore struct {
	mu    sync.Mutex
	byTok map[string]*login
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *loginStore) create(scope fleetcert.Scope, keyID string, now time.Time, idle, maxAge time.Duration) *login {
	l := &login{token: randomToken(), csrf: randomToken(), Scope: scope, KeyID: keyID, created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byTok == nil {
		s.byTok = map[string]*login{}
	}
	// Expired sessions are dropped as new ones are made, so the map stays
	// as small as the number of live sessions.
	for tok, o := range s.byTok {
		if expired(o, now, idle, maxAge) {
			delete(s.byTok, tok)
		}
	}
	s.byTok[l.token] = l
	return l
}

func expired(l *login, now time.Time, idle, maxAge time.Duration) bool {
	return now.Sub(l.lastSeen) > idle || now.Sub(l.created) > maxAge
}

// get returns the live session of token and marks it used.
func (s *loginStore) get(token string, now time.Time, idle, maxAge time.Duration) *login {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byTok[token]
	if l == nil {
		return nil
	}
	if expired(l, now, idle, maxAge) {
		delete(s.byTok, token)
		return nil
	}
	l.lastSeen = now
	return l
}

func (s *loginStore) remove(l *login) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byTok, l.token)
}

func (s *loginStore) setFlash(l *login, f *flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l.flash = f
}

func (s *loginStore) popFlash(l *login) *flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := l.flash
	l.flash = nil
	return f
}

type loginKey struct{}

func loginFrom(r *http.Request) *login {
	l, _ := r.Context().Value(loginKey{}).(*login)
	return l
}

func (h *Handler) currentLogin(r *http.Request) *login {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return h.logins.get(c.Value, h.now(), h.IdleTimeout, h.MaxSessionAge)
}

// auth runs fn for a signed-in session and checks the CSRF token of every
// POST; anyone else is sent to the sign-in page.
func (h *Handler) auth(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l := h.currentLogin(r)
		if l == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			h.errorPage(w, r, http.StatusForbidden, "Signed out",
				"Your console session has ended. Sign in again, then repeat the action.")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), loginKey{}, l))
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

func (h *Handler) checkCSRF(w http.ResponseWriter, r *http.Request, l *login) bool {
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
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(l.csrf)) != 1 {
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
