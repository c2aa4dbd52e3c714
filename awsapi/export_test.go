package awsapi

import (
	"net/http"
	"net/url"
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

// ErrorStatus returns the HTTP status writeError sends for code, and
// whether code has one.
func ErrorStatus(code string) (int, bool) {
	status, ok := errorStatus[code]
	return status, ok
}

// InternalFailureMessage is all a caller learns of an internal failure.
const InternalFailureMessage = internalFailureMessage

// Authorization is a parsed SigV4 Authorization header.
type Authorization struct {
	AccessKeyID, Date, Region, Scope, SignedHeaders string
	Signature                                       []byte
}

// ParseAuthorization parses a SigV4 Authorization header, for fuzzing.
func ParseAuthorization(header string) (*Authorization, error) {
	a, err := parseAuthorization(header)
	if err != nil {
		return nil, err
	}
	return &Authorization{a.accessKeyID, a.date, a.region, a.scope, a.signedHeaders, a.signature[:]}, nil
}

// RequestTime returns r's signing time and its ISO 8601 basic form, for
// fuzzing.
func RequestTime(r *http.Request) (time.Time, string, error) { return requestTime(r) }

// CanonicalQuery returns SigV4's canonical query string of q, for fuzzing.
func CanonicalQuery(q url.Values) string { return string(appendCanonicalQuery(nil, q)) }

// ThingOperationNames returns the names of thingOperations.
func ThingOperationNames() []string { return operationNames(thingOperations) }

// PolicyOperationNames returns the names of policyOperations.
func PolicyOperationNames() []string { return operationNames(policyOperations) }

func operationNames(ops []operation) []string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.Name
	}
	return names
}
