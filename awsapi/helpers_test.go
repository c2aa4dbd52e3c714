package awsapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/smithy-go"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
	"github.com/fleetcert/fleetcert/sqlite"
)

const (
	testRegion   = "us-east-1"
	accountA     = "111111111111"
	accountB     = "222222222222"
	testHost     = "fleetcert.test"
	emptySHA256  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unknownKeyID = "AKIAUNKNOWNUNKNOWN00"
)

// testEnv is a Handler on a real SQLite store in a temp dir, with one
// access key in account A and one in account B.
type testEnv struct {
	tb       testing.TB
	Registry *fleetcert.Registry
	Handler  *awsapi.Handler
	Logs     *logRecorder
	KeyA     *fleetcert.AccessKey
	KeyB     *fleetcert.AccessKey

	server *httptest.Server
}

func newEnv(tb testing.TB) *testEnv {
	tb.Helper()
	return newEnvOnStore(tb, mustOpenDB(tb))
}

func mustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db := sqlite.NewDB(filepath.Join(tb.TempDir(), "db"))
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func newEnvOnStore(tb testing.TB, store fleetcert.Store) *testEnv {
	tb.Helper()
	iss, err := fleetcert.NewIssuer(time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	reg := fleetcert.NewRegistry(store, iss)
	// As serve runs it: every test also checks that the describe cache
	// answers as the store does.
	reg.DescribeCacheSize = fleetcert.DefaultDescribeCacheSize
	logs := &logRecorder{}
	e := &testEnv{
		tb:       tb,
		Registry: reg,
		Handler:  awsapi.NewHandler(reg, slog.New(logs)),
		Logs:     logs,
	}
	e.KeyA = e.mustCreateKey(accountA)
	e.KeyB = e.mustCreateKey(accountB)
	return e
}

func (e *testEnv) mustCreateKey(account string) *fleetcert.AccessKey {
	e.tb.Helper()
	k, err := e.Registry.CreateAccessKey(context.Background(), account)
	if err != nil {
		e.tb.Fatal(err)
	}
	return k
}

// URL starts an HTTP server on the handler (once) and returns its address.
func (e *testEnv) URL() string {
	if e.server == nil {
		e.server = httptest.NewServer(e.Handler)
		e.tb.Cleanup(e.server.Close)
	}
	return e.server.URL
}

// Client returns the real aws-sdk-go-v2 IoT client for key in region,
// pointed at the handler, without retries.
func (e *testEnv) Client(key *fleetcert.AccessKey, region string) *iot.Client {
	url := e.URL()
	return iot.New(iot.Options{
		Region:       region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   e.server.Client(),
	})
}

// Request returns a request for target (path and query) signed with the
// SDK's own SigV4 signer by key in region at time at.
func (e *testEnv) Request(key *fleetcert.AccessKey, region, method, target string, body []byte, at time.Time) *http.Request {
	e.tb.Helper()
	r := newRequest(method, target, body)
	signRequest(e.tb, r, key.ID, key.Secret, region, "iot", body, at)
	return r
}

// Do serves r in-process and returns the response; the request's log line
// is written when Do returns.
func (e *testEnv) Do(r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	e.Handler.ServeHTTP(rec, r)
	return rec.Result()
}

func newRequest(method, target string, body []byte) *http.Request {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return httptest.NewRequest(method, "http://"+testHost+target, rd)
}

func signRequest(tb testing.TB, r *http.Request, id, secret, region, service string, body []byte, at time.Time) {
	tb.Helper()
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		tb.Fatal(err)
	}
}

// wireError is an AWS error response as read off the wire.
type wireError struct {
	Status      int
	Code        string // x-amzn-ErrorType
	RequestID   string
	ContentType string
	Message     string `json:"message"`
	ResourceID  string `json:"resourceId"`
	ResourceARN string `json:"resourceArn"`
}

func readError(tb testing.TB, resp *http.Response) wireError {
	tb.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	w := wireError{
		Status:      resp.StatusCode,
		Code:        resp.Header.Get("x-amzn-ErrorType"),
		RequestID:   resp.Header.Get("x-amzn-RequestId"),
		ContentType: resp.Header.Get("Content-Type"),
	}
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(body, &w); err != nil {
			tb.Fatalf("error body %q is not JSON: %v", body, err)
		}
	}
	return w
}

// readJSON decodes a 200 response's body into a generic map, numbers kept
// as json.Number.
func readJSON(tb testing.TB, resp *http.Response) map[string]any {
	tb.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("body %q: %v", body, err)
	}
	return m
}

// apiError returns err's AWS error code and HTTP status, as the SDK saw them.
func apiError(tb testing.TB, err error) (code string, status int) {
	tb.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		tb.Fatalf("error %v is not an API error", err)
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return ae.ErrorCode(), status
}

// selfSignedPEM returns a fresh self-signed certificate (PEM), its DER and
// its id.
func selfSignedPEM(tb testing.TB, cn string) (pemText string, der []byte, id string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), der, hex.EncodeToString(sum[:])
}

// mustRegister registers a fresh certificate in key's account through the
// handler and returns its id.
func (e *testEnv) mustRegister(key *fleetcert.AccessKey, region string, status fleetcert.Status) string {
	e.tb.Helper()
	pemText, _, id := selfSignedPEM(e.tb, "device")
	body, _ := json.Marshal(map[string]string{"certificatePem": pemText, "status": string(status)})
	resp := e.Do(e.Request(key, region, "POST", "/certificate/register-no-ca", body, time.Now()))
	if m := readJSON(e.tb, resp); m["certificateId"] != id {
		e.tb.Fatalf("registered %v, want id %s", m, id)
	}
	return id
}

// logRecorder is a slog.Handler that keeps every record's attributes.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, m)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// Last returns the latest record.
func (l *logRecorder) Last(tb testing.TB) map[string]string {
	tb.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.records) == 0 {
		tb.Fatal("no log record")
	}
	return l.records[len(l.records)-1]
}

// Len returns how many records were written.
func (l *logRecorder) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

// String returns every record, for checks that something never appears.
func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.records {
		for k, v := range r {
			b.WriteString(k + "=" + v + " ")
		}
		b.WriteString("\n")
	}
	return b.String()
}
