package awsapi

import (
	"net/http"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Authenticate runs the SigV4 verification alone, for BenchmarkVerifySigV4.
func (h *Handler) Authenticate(r *http.Request) (fleetcert.Scope, error) {
	c := &call{w: nopWriter{}, ctx: r.Context()}
	err := h.authenticate(c, r)
	return c.scope, err
}

type nopWriter struct{}

func (nopWriter) Header() http.Header         { return http.Header{} }
func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriter) WriteHeader(int)             {}

// Allow is the throttle check the Handler makes, for tests of buckets.
func (t *Throttle) Allow(scope fleetcert.Scope, op string, now time.Time) bool {
	return t.allow(scope, op, now)
}

// Buckets returns how many buckets t holds, for tests of eviction.
func (t *Throttle) Buckets() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.buckets)
}

// InternalFailureMessage is all a caller learns of an internal failure.
const InternalFailureMessage = internalFailureMessage
