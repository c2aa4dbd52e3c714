package awsapi_test

// Fuzz targets. Their seeds (f.Add and testdata/fuzz/FuzzXxx/) run with
// every go test; to fuzz one for a while:
//
//	go test -run='^$' -fuzz='^FuzzOperation$' -fuzztime=10s ./awsapi/

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// authCodes are the codes SigV4 parsing may answer.
var authCodes = []string{"IncompleteSignatureException", "InvalidSignatureException", "UnknownOperationException"}

// checkAuthError checks that err is one of authCodes, with a status and a
// message of bounded length (caller input is echoed truncated).
func checkAuthError(t *testing.T, err error) {
	t.Helper()
	code := fleetcert.ErrorCode(err)
	if !slices.Contains(authCodes, code) {
		t.Fatalf("error %v: code %s", err, code)
	}
	if _, ok := awsapi.ErrorStatus(code); !ok {
		t.Fatalf("code %s has no HTTP status", code)
	}
	if msg := fleetcert.ErrorMessage(err); msg == "" || len(msg) > 1024 {
		t.Fatalf("message of %d bytes: %q", len(msg), msg)
	}
}

// sdkAuthorization signs a request with the SDK's signer and returns its
// Authorization header.
func sdkAuthorization(tb testing.TB, region, service string, at time.Time) string {
	r := newRequest("GET", "/certificates", nil)
	signRequest(tb, r, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region, service, nil, at)
	return r.Header.Get("Authorization")
}

// FuzzParseAuthorization: any Authorization header is parsed or refused
// with an AWS authentication error, never a panic; what parses is whole.
func FuzzParseAuthorization(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Add(sdkAuthorization(f, testRegion, "iot", at))
	f.Add(sdkAuthorization(f, "eu-west-1", "iotdata", at))
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/iot/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("ab", 32))
	f.Add("AWS4-HMAC-SHA256 Credential=/20260102/us-east-1/iot/aws4_request,SignedHeaders=host,Signature=00")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f, SignedHeaders=;;, Signature=zz")
	f.Add("AWS4-HMAC-SHA256 ")
	f.Add("Bearer token")
	f.Fuzz(func(t *testing.T, header string) {
		a, err := awsapi.ParseAuthorization(header)
		if err != nil {
			checkAuthError(t, err)
			return
		}
		if a.AccessKeyID == "" || strings.Contains(a.AccessKeyID, "/") {
			t.Errorf("access key id %q", a.AccessKeyID)
		}
		if _, err := time.Parse("20060102", a.Date); err != nil {
			t.Errorf("date %q: %v", a.Date, err)
		}
		if !fleetcert.ValidRegion(a.Region) {
			t.Errorf("region %q", a.Region)
		}
		if want := a.Date + "/" + a.Region + "/iot/aws4_request"; a.Scope != want {
			t.Errorf("scope %q, want %q", a.Scope, want)
		}
		if names := strings.Split(a.SignedHeaders, ";"); !slices.Contains(names, "host") || slices.Contains(names, "") {
			t.Errorf("signed headers %q", a.SignedHeaders)
		}
		if len(a.Signature) != sha256.Size {
			t.Errorf("signature of %d bytes", len(a.Signature))
		}
	})
}

// amzDate is X-Amz-Date's ISO 8601 basic format.
var amzDate = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z$`)

// FuzzRequestTime: any X-Amz-Date or Date header gives a signing time in
// the basic format, or an AWS authentication error, never a panic.
func FuzzRequestTime(f *testing.F) {
	f.Add("20260102T030405Z", "")
	f.Add("", "Fri, 02 Jan 2026 03:04:05 GMT")
	f.Add("", "Friday, 02-Jan-26 03:04:05 GMT")
	f.Add("", "Fri Jan  2 03:04:05 2026")
	f.Add("20260102T030405.999Z", "")
	f.Add("2026-01-02T03:04:05Z", "")
	f.Add("99991231T235959Z", "")
	f.Add("yesterday", "today")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, xAmzDate, date string) {
		r := newRequest("GET", "/certificates", nil)
		if xAmzDate != "" {
			r.Header.Set("X-Amz-Date", xAmzDate)
		}
		if date != "" {
			r.Header.Set("Date", date)
		}
		tm, basic, err := awsapi.RequestTime(r)
		if err != nil {
			checkAuthError(t, err)
			return
		}
		// authenticate compares basic[:8] with the credential scope's date,
		// and the string to sign holds basic as sent.
		if !amzDate.MatchString(basic) || tm.UTC().Format("20060102T150405Z") != basic {
			t.Errorf("signing time %q from X-Amz-Date %q, Date %q (%v)", basic, xAmzDate, date, tm)
		}
		if xAmzDate != "" && basic != xAmzDate {
			t.Errorf("X-Amz-Date %q signed as %q", xAmzDate, basic)
		}
	})
}

// newFuzzEnv is a test env (one per fuzzing process) whose log keeps the
// latest record only.
func newFuzzEnv(f *testing.F) (*testEnv, *lastRecord) {
	e := newEnv(f)
	logs := &lastRecord{}
	e.Handler.Logger = slog.New(logs)
	return e, logs
}

// FuzzCanonicalQuery: for any query, the canonical query string is made of
// SigV4's characters, sorted, decodes back to the query, and agrees with
// the SDK's: a request the SDK signs with that query is accepted.
func FuzzCanonicalQuery(f *testing.F) {
	e, _ := newFuzzEnv(f)
	f.Add("pageSize=2&isAscendingOrder=true&marker=ARjq2UsXKoDAAAAAAAAAAAI%3D")
	f.Add("zz=a%20b%2Fc~&aa=1&aa=0&aa=")
	f.Add("a+b=c+d&%E2%82%AC=%FF")
	f.Add("x;y=1&=2&&k")
	f.Add("newStatus=REVOKED&newStatus=ACTIVE")
	f.Add("%zz=1&q=%2")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q := (&url.URL{RawQuery: rawQuery}).Query()
		canonical := awsapi.CanonicalQuery(q)
		type pair struct{ name, value string }
		var got []pair
		if canonical != "" {
			for p := range strings.SplitSeq(canonical, "&") {
				name, value, ok := strings.Cut(p, "=")
				if !ok || !sigV4Encoded(name) || !sigV4Encoded(value) {
					t.Fatalf("canonical %q: pair %q", canonical, p)
				}
				got = append(got, pair{name, value})
			}
		}
		if !slices.IsSortedFunc(got, func(x, y pair) int {
			return strings.Compare(x.name+"\x00"+x.value, y.name+"\x00"+y.value)
		}) {
			t.Errorf("canonical %q is not sorted", canonical)
		}
		decoded := url.Values{}
		for _, p := range got {
			name, err1 := url.PathUnescape(p.name)
			value, err2 := url.PathUnescape(p.value)
			if err1 != nil || err2 != nil {
				t.Fatalf("canonical %q: %v %v", canonical, err1, err2)
			}
			decoded[name] = append(decoded[name], value)
		}
		// The same pairs (the order is the encoded strings').
		for name, values := range q {
			if !slices.Equal(slices.Sorted(slices.Values(values)), slices.Sorted(slices.Values(decoded[name]))) {
				t.Errorf("%q: %q canonical as %q", name, values, decoded[name])
			}
		}
		if len(decoded) != len(q) {
			t.Errorf("query %q canonical as %q", q, decoded)
		}

		r := httptest.NewRequest("GET", "http://"+testHost+"/certificates", nil)
		r.URL.RawQuery = rawQuery
		signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "iot", nil, time.Now())
		if _, err := e.Handler.Authenticate(r); err != nil {
			t.Errorf("query %q as the SDK signed it (%q): %v", rawQuery, r.URL.RawQuery, err)
		}
	})
}

// sigV4Encoded reports whether s holds only unreserved characters and
// %XY escapes with upper-case hex, as SigV4 encodes.
func sigV4Encoded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
		case c == '%' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// lastRecord is a slog.Handler that keeps the latest record only: fuzzing
// makes millions of requests.
type lastRecord struct {
	mu   sync.Mutex
	last map[string]string
}

func (l *lastRecord) Enabled(context.Context, slog.Level) bool { return true }

func (l *lastRecord) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.last = m
	l.mu.Unlock()
	return nil
}

func (l *lastRecord) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lastRecord) WithGroup(string) slog.Handler      { return l }

func (l *lastRecord) Last() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// fuzzRoute is an operation of the model: its name, method and requestUri.
type fuzzRoute struct{ name, method, uri string }

// fuzzRoutes returns the model's operations sorted by name: the fuzz
// input's operation number indexes them.
func fuzzRoutes(tb testing.TB) []fuzzRoute {
	m := loadModel(tb)
	var routes []fuzzRoute
	for name, op := range m.Operations {
		routes = append(routes, fuzzRoute{name, op.HTTP.Method, op.HTTP.RequestURI})
	}
	slices.SortFunc(routes, func(x, y fuzzRoute) int { return strings.Compare(x.name, y.name) })
	return routes
}

var uriLabel = regexp.MustCompile(`\{[^}]+\}`)

// operationSeeds are well-formed requests for every operation, by name:
// the path value, query and body the fuzzer starts from. Their
// certificates expire at notAfter (zero: in a year).
func operationSeeds(tb testing.TB, notAfter time.Time) map[string][]struct {
	id, query string
	body      []byte
} {
	ca := testpki.New(tb, testpki.Options{CommonName: "fuzz CA", IsCA: true, NotAfter: notAfter})
	leaf := testpki.New(tb, testpki.Options{CommonName: "fuzz device", Parent: ca, NotAfter: notAfter})
	self := testpki.New(tb, testpki.Options{CommonName: "fuzz self-signed", NotAfter: notAfter})
	csr, _ := testpki.CSR(tb, "fuzz csr")
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	id := strings.Repeat("ab", 32)
	type seed = struct {
		id, query string
		body      []byte
	}
	return map[string][]seed{
		"AcceptCertificateTransfer": {{id, "setAsActive=true", nil}},
		"CancelCertificateTransfer": {{id, "", nil}},
		"CreateCertificateFromCsr": {
			{"", "setAsActive=true", js(map[string]string{"certificateSigningRequest": csr})},
			{"", "", []byte(`{"certificateSigningRequest":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`)},
		},
		// setAsActive valid would generate an RSA key: see FuzzOperation.
		"CreateKeysAndCertificate": {{"", "setAsActive=yes", nil}},
		"DeleteCACertificate":      {{id, "", nil}},
		"DeleteCertificate":        {{id, "forceDelete=true", nil}},
		"DeleteRegistrationCode":   {{"", "", nil}},
		"DescribeCACertificate":    {{id, "", nil}},
		"DescribeCertificate":      {{id, "", nil}, {"0x" + id[2:], "", nil}, {"", "", nil}},
		"DescribeEndpoint":         {{"", "endpointType=iot:Data-ATS", nil}},
		"GetRegistrationCode":      {{"", "", nil}},
		"ListCACertificates":       {{"", "pageSize=2&isAscendingOrder=true&templateName=t-1", nil}},
		"ListCertificates":         {{"", "pageSize=2&marker=ARjq2UsXKoDAAAAAAAAAAAI%3D", nil}, {"", "pageSize=-1&isAscendingOrder=maybe", nil}},
		"ListCertificatesByCA":     {{id, "pageSize=250", nil}},
		"ListOutgoingCertificates": {{"", "pageSize=1&isAscendingOrder=false", nil}},
		"RegisterCACertificate": {{"", "setAsActive=true&allowAutoRegistration=true", js(map[string]any{
			"caCertificate":      ca.PEM,
			"certificateMode":    "SNI_ONLY",
			"registrationConfig": map[string]string{"templateBody": `{"Resources":{}}`, "roleArn": "arn:aws:iam::111111111111:role/provisioning", "templateName": "t-1"},
			"tags":               []map[string]string{{"Key": "k", "Value": "v"}},
		})}},
		"RegisterCertificate": {{"", "setAsActive=false", js(map[string]string{
			"certificatePem": leaf.PEM, "caCertificatePem": ca.PEM, "status": "ACTIVE",
		})}},
		"RegisterCertificateWithoutCA": {
			{"", "", js(map[string]string{"certificatePem": self.PEM, "status": "INACTIVE"})},
			{"", "", []byte(`{"certificatePem":5}`)},
			{"", "", []byte(`[]`)},
			{"", "", []byte(`null`)},
			{"", "", []byte(`{"certificatePem":"x","status":"ACTIVE","status":"REVOKED"}`)},
		},
		"RejectCertificateTransfer": {{id, "", []byte(`{"rejectReason":"no"}`)}},
		"TransferCertificate":       {{id, "targetAwsAccount=222222222222", []byte(`{"transferMessage":"hi"}`)}},
		"UpdateCACertificate": {{id, "newStatus=INACTIVE&newAutoRegistrationStatus=ENABLE",
			[]byte(`{"registrationConfig":{"templateBody":"{}"},"removeAutoRegistration":true}`)}},
		"UpdateCertificate": {{id, "newStatus=INACTIVE", nil}, {id, "newStatus=PENDING_TRANSFER", nil}},
	}
}

// FuzzOperation sends any path value, query and body to any operation of
// the model, validly signed with the SDK's signer, through the whole
// Handler: the answer is 200 or a well-formed AWS error with the status of
// its code, never a 5xx (bad input is the caller's error) and never a
// panic (which would be a 500).
func FuzzOperation(f *testing.F) {
	routes := fuzzRoutes(f)
	for name, seeds := range operationSeeds(f, time.Time{}) {
		i := slices.IndexFunc(routes, func(r fuzzRoute) bool { return r.name == name })
		if i < 0 {
			f.Fatalf("no operation %s in the model", name)
		}
		for _, s := range seeds {
			f.Add(uint8(i), s.id, s.query, s.body)
		}
	}
	e, logs := newFuzzEnv(f)
	e.Handler.Endpoint = func(scope fleetcert.Scope, endpointType string) (string, error) {
		if endpointType != "iot:Data-ATS" {
			return "", fleetcert.Errorf(fleetcert.EInvalidRequest, "unknown endpoint type")
		}
		return scope.AccountID + "-ats.iot." + scope.Region + ".fleetcert.test", nil
	}
	f.Fuzz(func(t *testing.T, op uint8, id, query string, body []byte) {
		route := routes[int(op)%len(routes)]
		u := &url.URL{Scheme: "http", Host: testHost, RawQuery: query}
		u.Path = uriLabel.ReplaceAllLiteralString(route.uri, id)
		u.RawPath = uriLabel.ReplaceAllLiteralString(route.uri, url.PathEscape(id))
		if route.name == "CreateKeysAndCertificate" {
			if v := u.Query()["setAsActive"]; len(v) == 0 || v[0] == "true" || v[0] == "false" {
				// A valid request generates a 2048-bit RSA key (~0.1 s):
				// its one member is covered, the rest is the fuzzer's time.
				return
			}
		}
		r, err := http.NewRequest(route.method, u.String(), bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: e.KeyA.ID, SecretAccessKey: e.KeyA.Secret}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "iot", testRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		e.Handler.ServeHTTP(rec, r)
		resp := rec.Result()
		got, _ := io.ReadAll(resp.Body)
		where := func() string {
			return route.name + " " + r.Method + " " + r.URL.String() + " body " + strings.TrimSpace(string(got))
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s: %d, logged %v", where(), resp.StatusCode, logs.Last())
		}
		if resp.StatusCode == 200 {
			if len(got) > 0 && !json.Valid(got) {
				t.Fatalf("%s: 200 with a body that is not JSON", where())
			}
			return
		}
		code := resp.Header.Get("x-amzn-ErrorType")
		status, ok := awsapi.ErrorStatus(code)
		switch {
		case !ok:
			t.Fatalf("%s: %d with error code %q", where(), resp.StatusCode, code)
		case resp.StatusCode != status && !statusErrors[code][resp.StatusCode]:
			t.Fatalf("%s: %d for %s, whose status is %d", where(), resp.StatusCode, code, status)
		case resp.Header.Get("Content-Type") != "application/json":
			t.Fatalf("%s: Content-Type %q", where(), resp.Header.Get("Content-Type"))
		}
		var msg struct {
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(got, &msg); err != nil || msg.Message == nil || *msg.Message == "" {
			t.Fatalf("%s: error body without a message", where())
		}
	})
}

// statusErrors are the statuses sent with a code other than its own
// (statusError in error.go).
var statusErrors = map[string]map[int]bool{
	"InvalidRequestException":   {413: true, 408: true},
	"UnknownOperationException": {405: true},
}
