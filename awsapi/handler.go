// Package awsapi serves the AWS IoT Core certificate API on top of a
// fleetcert.Registry: the 22 certificate operations of the AWS SDK model
// and those of things and policies (rest-json protocol, SigV4 signing name
// "iot"), so that the aws CLI, boto3 and
// aws-sdk-go-v2 work against fleetcert with only an endpoint override.
//
// The package translates and never decides: requests become Registry calls,
// and *fleetcert.Error values become AWS error responses. Every rule lives in
// the root package.
package awsapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// DefaultMaxBodyBytes is the request body limit when Handler.MaxBodyBytes is
// zero: just above the largest request of the model, RegisterCACertificate,
// as the SDKs encode it (a test builds that request and checks both):
//
//   - caCertificate and verificationCertificate: 65536 characters of PEM
//     each (CertificatePem's max). PEM lines hold 64 characters (RFC 7468),
//     so a member has at most 65536/64 = 1024 line breaks, which JSON
//     escapes as \n, or \r\n for CRLF files: at most 2 more bytes each.
//     2 × (65536 + 2×1024) = 135168 bytes.
//   - registrationConfig: templateBody 10240 characters of JSON template,
//     each of whose quotes JSON escapes as \", so at most 2 × 10240 = 20480
//     bytes; roleArn 2048; templateName 36. 22564 bytes.
//   - tags: the model sets no count; AWS IoT allows 50 tags per resource
//     (https://docs.aws.amazon.com/iot/latest/developerguide/tagging-iot.html,
//     "Tag restrictions and limitations"), each a Key of 128 and a Value of
//     256 characters in {"Key":"","Value":""}, (22 bytes):
//     50 × 406 = 20300 bytes.
//   - certificateMode "SNI_ONLY", member names, quotes and braces: under
//     200 bytes.
//
// 135168 + 22564 + 20300 + 200 = 178232 bytes, rounded up to 176 KiB
// (180224). RegisterCertificate (two PEMs and a status) is smaller.
const DefaultMaxBodyBytes = 176 << 10

// DefaultBodyReadTimeout is how long a request body may take to arrive
// when Handler.BodyReadTimeout is zero.
const DefaultBodyReadTimeout = 10 * time.Second

// DefaultKeyCacheTTL is how long a found access key is reused without asking
// the store again, when Handler.KeyCacheTTL is zero. A deleted key does not
// wait for it: ForgetAccessKey removes it at once (this process's
// deletions) or when the change feed tells (other processes'); the TTL only
// bounds how long a key survives a watcher that cannot read the feed.
const DefaultKeyCacheTTL = 10 * time.Second

// Handler serves the AWS IoT certificate API. Create it with NewHandler and
// set its fields before serving the first request.
type Handler struct {
	// Registry executes the operations.
	Registry *fleetcert.Registry

	// Logger receives one line per request. It never sees secrets or
	// request bodies.
	Logger *slog.Logger

	// Now returns the current time, against which SigV4 request times are
	// checked and throttle buckets refill; tests replace it.
	Now func() time.Time

	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// BodyReadTimeout bounds the time from the start of reading a request's
	// body, which happens only once its access key, credential scope and
	// date are checked, to its last byte; 0 means DefaultBodyReadTimeout, a
	// negative value leaves only the server's own timeouts. A client that
	// trickles its body gets InvalidRequestException (408) and the
	// connection is closed, instead of holding it until the server's
	// ReadTimeout. The deadline replaces the connection's read deadline
	// (http.ResponseController.SetReadDeadline), so a value above the
	// server's ReadTimeout extends it; once the body is read, the
	// connection has no read deadline for the rest of the request.
	BodyReadTimeout time.Duration

	// Throttle limits each account's request rate per operation and Region,
	// as AWS IoT Core does (see ParseThrottle); nil, the default, throttles
	// nothing. It is checked once the request is authenticated, before the
	// operation runs.
	Throttle *Throttle

	// KeyCacheTTL is how long a found access key is reused without reading
	// the store; 0 means DefaultKeyCacheTTL, a negative value disables the
	// cache. Unknown keys are never cached, so a key created by another
	// process is accepted at once.
	KeyCacheTTL time.Duration

	// Endpoint names scope's endpoint of endpointType for DescribeEndpoint
	// (set by the device gateway); nil answers that the operation is not
	// implemented. It returns *fleetcert.Error for an unknown type.
	Endpoint func(scope fleetcert.Scope, endpointType string) (string, error)

	mux  *http.ServeMux
	auth authCache
}

// NewHandler returns a Handler that serves reg's operations and logs to
// logger (slog.Default() when nil).
func NewHandler(reg *fleetcert.Registry, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{
		Registry: reg,
		Logger:   logger,
		Now:      time.Now,
		mux:      http.NewServeMux(),
	}
	ops := slices.Concat(allOperations(), extensionOperations)
	for i := range ops {
		op := &ops[i]
		h.mux.HandleFunc(op.Method+" "+op.Path, func(w http.ResponseWriter, r *http.Request) {
			h.serveOperation(w.(*call), r, op)
		})
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.serveUnknown(w.(*call), r)
	})
	return h
}

// operation is one operation of the AWS model: its name, its route and the
// method that serves it (nil while fleetcert does not implement it).
type operation struct {
	Name   string
	Method string
	Path   string
	serve  func(h *Handler, c *call, r *http.Request) (any, error)
}

// operations are the 22 operations of iot-certificate-api.json, with the
// method and requestUri of each. A test walks the model to prove that every
// one of them routes here.
var operations = []operation{
	{"AcceptCertificateTransfer", "PATCH", "/accept-certificate-transfer/{certificateId}", (*Handler).acceptCertificateTransfer},
	{"CancelCertificateTransfer", "PATCH", "/cancel-certificate-transfer/{certificateId}", (*Handler).cancelCertificateTransfer},
	{"CreateCertificateFromCsr", "POST", "/certificates", (*Handler).createCertificateFromCSR},
	{"CreateKeysAndCertificate", "POST", "/keys-and-certificate", (*Handler).createKeysAndCertificate},
	{"DeleteCACertificate", "DELETE", "/cacertificate/{caCertificateId}", (*Handler).deleteCACertificate},
	{"DeleteCertificate", "DELETE", "/certificates/{certificateId}", (*Handler).deleteCertificate},
	{"DeleteRegistrationCode", "DELETE", "/registrationcode", (*Handler).deleteRegistrationCode},
	{"DescribeCACertificate", "GET", "/cacertificate/{caCertificateId}", (*Handler).describeCACertificate},
	{"DescribeCertificate", "GET", "/certificates/{certificateId}", (*Handler).describeCertificate},
	{"DescribeEndpoint", "GET", "/endpoint", (*Handler).describeEndpoint},
	{"GetRegistrationCode", "GET", "/registrationcode", (*Handler).getRegistrationCode},
	{"ListCACertificates", "GET", "/cacertificates", (*Handler).listCACertificates},
	{"ListCertificates", "GET", "/certificates", (*Handler).listCertificates},
	{"ListCertificatesByCA", "GET", "/certificates-by-ca/{caCertificateId}", (*Handler).listCertificatesByCA},
	{"ListOutgoingCertificates", "GET", "/certificates-out-going", (*Handler).listOutgoingCertificates},
	{"RegisterCACertificate", "POST", "/cacertificate", (*Handler).registerCACertificate},
	{"RegisterCertificate", "POST", "/certificate/register", (*Handler).registerCertificate},
	{"RegisterCertificateWithoutCA", "POST", "/certificate/register-no-ca", (*Handler).registerCertificateWithoutCA},
	{"RejectCertificateTransfer", "PATCH", "/reject-certificate-transfer/{certificateId}", (*Handler).rejectCertificateTransfer},
	{"TransferCertificate", "PATCH", "/transfer-certificate/{certificateId}", (*Handler).transferCertificate},
	{"UpdateCACertificate", "PUT", "/cacertificate/{caCertificateId}", (*Handler).updateCACertificate},
	{"UpdateCertificate", "PUT", "/certificates/{certificateId}", (*Handler).updateCertificate},
}

// extensionOperations are fleetcert's own routes, beside AWS's under
// /fleetcert/ (a prefix no AWS IoT route has), authenticated and throttled
// like the rest.
var extensionOperations = []operation{
	{"ListCertificatesExpiring", "GET", "/fleetcert/certificates-expiring", (*Handler).listCertificatesExpiring},
	{"StartJob", "POST", "/fleetcert/jobs", (*Handler).startJob},
	{"ListJobs", "GET", "/fleetcert/jobs", (*Handler).listJobs},
	{"DescribeJob", "GET", "/fleetcert/jobs/{jobId}", (*Handler).describeJob},
	{"CancelJob", "POST", "/fleetcert/jobs/{jobId}/cancel", (*Handler).cancelJob},
}

// allOperations are the certificate operations, then those of things
// (thingOperations) and of policies (policyOperations), from
// testdata/iot-authz-api.json.
func allOperations() []operation {
	return slices.Concat(operations, thingOperations, policyOperations)
}

// call is one request in flight. It wraps the ResponseWriter so that the
// mux hands it to the operation, and records what the log line reports.
type call struct {
	w         http.ResponseWriter
	ctx       context.Context
	requestID string

	op     *operation
	status int
	code   string // AWS error code sent, if any
	err    error  // internal failure, logged and never sent
	stack  []byte // of a recovered panic, logged and never sent

	// Set by authentication.
	scope       fleetcert.Scope
	accessKeyID string
	query       url.Values
	body        []byte
}

func (c *call) Header() http.Header { return c.w.Header() }

func (c *call) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.w.Write(b)
}

func (c *call) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.w.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *call) Unwrap() http.ResponseWriter { return c.w }

// ServeHTTP answers every request: an operation of the model once the
// request's SigV4 signature checks out, or an AWS error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{w: w, ctx: r.Context(), requestID: newRequestID()}
	w.Header().Set("x-amzn-RequestId", c.requestID)
	abort := h.serve(c, r)
	h.logRequest(c, r, time.Since(start))
	if abort {
		// A response already under way cannot become an error: end it
		// without a second stack trace in the server's log.
		panic(http.ErrAbortHandler)
	}
}

// serve routes r to its operation. A panic beneath it (an operation, the
// Registry, a Store) becomes an internal failure, answered like any other
// (500 InternalFailureException through writeError) and logged on the
// request's line with its stack. It reports whether the response must be
// aborted: the panic came after the response had started, or was
// http.ErrAbortHandler.
func (h *Handler) serve(c *call, r *http.Request) (abort bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			abort = true
			return
		}
		// %v, not %w: a panic value is never an error the caller is told.
		err := fmt.Errorf("panic: %v", v)
		c.stack = debug.Stack()
		if c.status != 0 {
			c.err = err
			abort = true
			return
		}
		// Nothing is sent yet: drop what the operation set, but the id.
		clear(c.Header())
		c.Header().Set("x-amzn-RequestId", c.requestID)
		h.writeError(c, err)
	}()
	if p := r.URL.Path; p == "" || p[0] != '/' || cleanPath(p) != p || r.Method == http.MethodConnect {
		// ServeMux would answer these with a redirect or a text error; no
		// operation of the model has such a path.
		h.serveUnknown(c, r)
	} else {
		h.mux.ServeHTTP(c, r)
	}
	return false
}

// now returns the current time from h.Now.
func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// serveOperation authenticates the request and runs op.
func (h *Handler) serveOperation(c *call, r *http.Request, op *operation) {
	c.op = op
	if err := h.authenticate(c, r); err != nil {
		h.writeError(c, err)
		return
	}
	// Who asks, from where: the audit log records it with whatever the
	// operation changes.
	c.ctx = fleetcert.WithActor(c.ctx, fleetcert.Actor{ID: c.accessKeyID, AccountID: c.scope.AccountID, SourceIP: remoteIP(r)})
	if h.Throttle != nil && !h.Throttle.allow(c.scope, op.Name, h.now()) {
		// AWS's words and the model's status (400) for ThrottlingException;
		// the SDKs retry it with backoff.
		h.writeError(c, fleetcert.Errorf(fleetcert.EThrottling, "Rate exceeded"))
		return
	}
	if op.serve == nil {
		h.writeError(c, fleetcert.Errorf(fleetcert.EInvalidRequest,
			"fleetcert does not implement %s yet.", op.Name))
		return
	}
	out, err := op.serve(h, c, r)
	if err != nil {
		h.writeError(c, err)
		return
	}
	h.writeJSON(c, http.StatusOK, out)
}

// serveUnknown answers a method and path that name no operation, once the
// request is authenticated: AWS does not tell anonymous callers which
// routes exist.
func (h *Handler) serveUnknown(c *call, r *http.Request) {
	if err := h.authenticate(c, r); err != nil {
		h.writeError(c, err)
		return
	}
	if allow := h.allowedMethods(r); len(allow) > 0 {
		c.Header().Set("Allow", strings.Join(allow, ", "))
		h.writeError(c, &statusError{http.StatusMethodNotAllowed, fleetcert.Errorf(codeUnknownOperation,
			"fleetcert does not support %s %s; the path accepts %s.", r.Method, truncate(r.URL.Path), strings.Join(allow, ", "))})
		return
	}
	h.writeError(c, fleetcert.Errorf(codeUnknownOperation,
		"fleetcert does not support %s %s: it serves the AWS IoT certificate operations, and none is at this path.", truncate(r.Method), truncate(r.URL.Path)))
}

// allowedMethods returns the methods for which r's path names an operation.
func (h *Handler) allowedMethods(r *http.Request) []string {
	if p := r.URL.Path; p == "" || p[0] != '/' || cleanPath(p) != p {
		return nil // ServeMux.Handler would answer for the cleaned path
	}
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		r2 := *r
		r2.Method = m
		if _, pattern := h.mux.Handler(&r2); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// writeJSON writes out as the JSON body, or an empty body when out is nil
// (operations whose model has no output).
func (h *Handler) writeJSON(c *call, status int, out any) {
	if out == nil {
		c.Header().Set("Content-Length", "0")
		c.WriteHeader(status)
		return
	}
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer jsonBuffers.Put(buf)
	var b []byte
	if a, ok := out.(jsonAppender); ok {
		buf.Reset()
		if b, ok = a.appendJSON(buf.AvailableBuffer()); ok {
			buf.Write(b) // keeps the capacity for the next answer
		} else {
			b = nil
		}
	}
	if b == nil {
		var err error
		if b, err = appendJSON(buf, out); err != nil {
			h.writeError(c, err)
			return
		}
	}
	hdr := c.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	c.WriteHeader(status)
	c.Write(b)
}

// logRequest writes the request's one log line. It names the route, not
// the raw path, and never the secret or the body.
func (h *Handler) logRequest(c *call, r *http.Request, d time.Duration) {
	level := slog.LevelInfo
	if c.status >= 500 || c.stack != nil {
		level = slog.LevelError
	}
	logger := h.Logger
	if logger == nil || !logger.Enabled(c.ctx, level) {
		return
	}
	opName, route := "", r.URL.Path
	if c.op != nil {
		opName, route = c.op.Name, c.op.Path
	}
	route = truncate(route)
	attrs := make([]slog.Attr, 0, 13)
	attrs = append(attrs,
		slog.String("requestId", c.requestID),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("operation", opName),
		slog.Int("status", c.status),
	)
	if c.code != "" {
		attrs = append(attrs, slog.String("errorCode", c.code))
	}
	if c.scope.AccountID != "" {
		attrs = append(attrs,
			slog.String("account", c.scope.AccountID),
			slog.String("region", c.scope.Region))
	}
	if c.accessKeyID != "" {
		// The id alone, also when authentication failed: never the secret.
		attrs = append(attrs, slog.String("accessKeyId", truncate(c.accessKeyID)))
	}
	attrs = append(attrs, slog.Duration("duration", d))
	if c.err != nil {
		attrs = append(attrs, slog.String("error", c.err.Error()))
	}
	if c.stack != nil {
		attrs = append(attrs, slog.String("stack", string(c.stack)))
	}
	logger.LogAttrs(c.ctx, level, "api request", attrs...)
}

// readBody reads the request body up to the limit, within
// h.BodyReadTimeout.
//
// Errors: InvalidRequestException: 413 when the body is over the limit, 408
// when it does not arrive in time, 400 when it cannot be read otherwise.
func (h *Handler) readBody(c *call, r *http.Request) (body []byte, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	limit := h.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if r.ContentLength > limit {
		return nil, errBodyTooLarge(limit)
	}
	timeout := h.BodyReadTimeout
	if timeout == 0 {
		timeout = DefaultBodyReadTimeout
	}
	if timeout > 0 {
		// Unsupported by test recorders (ErrNotSupported): then the server's
		// own timeouts are all there is.
		rc := http.NewResponseController(c.w)
		if rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
			defer func() {
				if err == nil {
					// After the body the connection reads nothing until the
					// next request, whose deadlines the server sets; an
					// expired deadline meanwhile would cancel the request's
					// context.
					rc.SetReadDeadline(time.Time{})
				}
			}()
		}
	}
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(c.w, r.Body, limit))
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return body, nil
	case errors.As(err, &tooLarge):
		return nil, errBodyTooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if r.ProtoMajor == 1 {
			// The rest of the body is still on its way: the connection
			// cannot carry another request, and the server must not wait
			// for the rest (it would, to reuse the connection).
			c.Header().Set("Connection", "close")
		}
		return nil, errBodyTimeout(timeout)
	}
	return nil, fleetcert.Errorf(fleetcert.EInvalidRequest, "The request body could not be read.")
}

// cleanPath is path.Clean keeping a trailing slash, as ServeMux cleans.
func cleanPath(p string) string {
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// newRequestID returns a UUID-shaped request id, as AWS's x-amzn-RequestId.
// Request ids need to be unique, not secret, so the cheap generator does.
func newRequestID() string {
	const hexDigits = "0123456789abcdef"
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	j := 0
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			b[i] = '-'
			continue
		}
		var nib uint64
		if j < 16 {
			nib = hi >> (60 - 4*j) & 0xf
		} else {
			nib = lo >> (60 - 4*(j-16)) & 0xf
		}
		b[i] = hexDigits[nib]
		j++
	}
	b[14] = '4'            // version 4
	b[19] = "89ab"[lo>>62] // variant 1
	return string(b[:])
}

// remoteIP returns the client's address without its port: the
// connection's peer (a trusted proxy's PROXY header already replaced it,
// see internal/connlimit), or RemoteAddr as it is when it has no port.
func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
