package console

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Post/redirect/get: every form's POST answers with a redirect, so that a
// reload shows the page again instead of sending the form again. What the
// POST produced (registration results, a form to show again with its
// error) is kept in the ResultStore for the session, under a random id in
// the URL of the GET, for resultTTL.

// resultTTL is how long a result stays viewable: long enough to reload or
// come back to it, short enough that the store stays small.
const resultTTL = 30 * time.Minute

// keyResultTTL is how long a newly created private key is kept for the
// one GET that shows it (then it is deleted).
const keyResultTTL = 5 * time.Minute

// keepResult stores v for this session under kind and returns its id.
func (h *Handler) keepResult(r *http.Request, kind string, v any, ttl time.Duration) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("keep %s result: %w", kind, err)
	}
	id := newResultID()
	if err := h.Results.PutResult(r.Context(), loginFrom(r).Token, kind+"/"+id, data, h.now().Add(ttl)); err != nil {
		return "", fmt.Errorf("keep %s result: %w", kind, err)
	}
	return id, nil
}

// loadResult reads the result id of kind of this session into v; false
// when there is none (expired, or another session's).
func (h *Handler) loadResult(r *http.Request, kind, id string, v any) (bool, error) {
	data, err := h.Results.Result(r.Context(), loginFrom(r).Token, kind+"/"+id, h.now())
	if err != nil || data == nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("read %s result: %w", kind, err)
	}
	return true, nil
}

// redirectResult keeps v and redirects to path?key=id (path has no query).
func (h *Handler) redirectResult(w http.ResponseWriter, r *http.Request, kind string, v any, path string) {
	id, err := h.keepResult(r, kind, v, resultTTL)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, path+"?form="+id, http.StatusSeeOther)
}

// formDraft loads the form kept by redirectResult for this GET into v;
// false when the URL names none.
func (h *Handler) formDraft(r *http.Request, kind string, v any) bool {
	id := r.URL.Query().Get("form")
	if id == "" {
		return false
	}
	ok, err := h.loadResult(r, kind, id, v)
	if err != nil {
		h.Logger.Error("console: read form", "kind", kind, "err", err)
	}
	return ok
}

// newResultID returns a random result id: 16 hex digits.
func newResultID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}
