package awsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
)

// panickyStore is the real store whose transactions panic with the value
// set, where the test says: failure injection for panic recovery.
type panickyStore struct {
	fleetcert.Store
	value     atomic.Pointer[any] // nil: no panic
	accessKey atomic.Bool         // panic in the access key lookup too
}

func (s *panickyStore) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return s.Store.View(ctx, func(tx fleetcert.Tx) error { return fn(panickyTx{tx, s}) })
}

func (s *panickyStore) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error { return fn(panickyTx{tx, s}) })
}

type panickyTx struct {
	fleetcert.Tx
	s *panickyStore
}

func (tx panickyTx) Certificate(ctx context.Context, scope fleetcert.Scope, id string) (*fleetcert.Certificate, error) {
	if v := tx.s.value.Load(); v != nil {
		panic(*v)
	}
	return tx.Tx.Certificate(ctx, scope, id)
}

func (tx panickyTx) CreateCertificate(ctx context.Context, c *fleetcert.Certificate) error {
	if v := tx.s.value.Load(); v != nil {
		panic(*v)
	}
	return tx.Tx.CreateCertificate(ctx, c)
}

func (tx panickyTx) AccessKey(ctx context.Context, id string) (*fleetcert.AccessKey, error) {
	if v := tx.s.value.Load(); v != nil && tx.s.accessKey.Load() {
		panic(*v)
	}
	return tx.Tx.AccessKey(ctx, id)
}

// TestPanic injects panics beneath the handler: each becomes a 500
// InternalFailureException through the one error path, and one log line at
// Error level carries the request id, the operation, the panic and its
// stack, never a secret or the body.
func TestPanic(t *testing.T) {
	db := mustOpenDB(t)
	store := &panickyStore{Store: db}
	e := newEnvOnStore(t, store)
	e.Handler.KeyCacheTTL = -1 // every request reads its key from the store
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	pemText, _, _ := selfSignedPEM(t, "device")
	body, _ := json.Marshal(map[string]string{"certificatePem": pemText})
	endpointPanic := atomic.Bool{}
	e.Handler.Endpoint = func(fleetcert.Scope, string) (string, error) {
		if endpointPanic.Load() {
			panic("endpoint lookup blew up")
		}
		return "example.test", nil
	}

	for _, tt := range []struct {
		name      string
		value     any  // panic value in the store; nil: the endpoint panics
		accessKey bool // panic during authentication
		req       func() *http.Request
		operation string
		logged    string // part of the logged error
		stack     string // part of the logged stack
	}{
		{"fail/panic in the store", "index out of range in the driver", false, func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())
		}, "DescribeCertificate", "panic: index out of range in the driver", "panickyTx.Certificate"},
		{"fail/panic with a domain error", fleetcert.Errorf(fleetcert.EResourceNotFound, "not the caller's business"), false, func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())
		}, "DescribeCertificate", "not the caller's business", "panickyTx.Certificate"},
		{"fail/panic with an error", errors.New("nil map write"), false, func() *http.Request {
			return e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", body, time.Now())
		}, "RegisterCertificateWithoutCA", "panic: nil map write", "panickyTx.CreateCertificate"},
		{"fail/panic during authentication", "access key table corrupt", true, func() *http.Request {
			return e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", body, time.Now())
		}, "RegisterCertificateWithoutCA", "panic: access key table corrupt", "panickyTx.AccessKey"},
		{"fail/panic in an operation's handler", nil, false, func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET", "/endpoint?endpointType=iot:Data-ATS", nil, time.Now())
		}, "DescribeEndpoint", "panic: endpoint lookup blew up", "TestPanic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.value != nil {
				store.value.Store(&tt.value)
			}
			store.accessKey.Store(tt.accessKey)
			endpointPanic.Store(tt.value == nil)
			defer func() {
				store.value.Store(nil)
				endpointPanic.Store(false)
			}()

			before := e.Logs.Len()
			resp := e.Do(tt.req())
			w := readError(t, resp)
			if w.Status != 500 || w.Code != "InternalFailureException" || w.ContentType != "application/json" ||
				w.Message != awsapi.InternalFailureMessage || w.RequestID == "" {
				t.Fatalf("got %d %s %q (%s)", w.Status, w.Code, w.Message, w.ContentType)
			}
			if n := e.Logs.Len() - before; n != 1 {
				t.Errorf("%d log lines for the request, want 1", n)
			}
			rec := e.Logs.Last(t)
			if rec["level"] != "ERROR" || rec["requestId"] != w.RequestID || rec["operation"] != tt.operation ||
				rec["status"] != "500" || rec["errorCode"] != "InternalFailureException" {
				t.Errorf("logged %v", rec)
			}
			if !strings.Contains(rec["error"], tt.logged) {
				t.Errorf("logged error %q, want %q", rec["error"], tt.logged)
			}
			if !strings.Contains(rec["stack"], tt.stack) || !strings.Contains(rec["stack"], "goroutine") {
				t.Errorf("logged stack %q, want one through %s", rec["stack"], tt.stack)
			}
			if logs := e.Logs.String(); strings.Contains(logs, e.KeyA.Secret) || strings.Contains(logs, "BEGIN CERTIFICATE") {
				t.Error("a secret or a body reached the log")
			}
		})
	}

	// The handler serves on.
	resp := e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now()))
	if resp.StatusCode != 200 {
		t.Fatalf("after the panics: %d", resp.StatusCode)
	}
}

// TestPanic_Client shows what a real client sees of a panic: the SDK's
// InternalFailureException, over a connection the server keeps serving.
func TestPanic_Client(t *testing.T) {
	db := mustOpenDB(t)
	store := &panickyStore{Store: db}
	e := newEnvOnStore(t, store)
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	client := e.Client(e.KeyA, testRegion)
	ctx := context.Background()
	var v any = "boom"
	store.value.Store(&v)
	_, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	if code, status := apiError(t, err); code != "InternalFailureException" || status != 500 {
		t.Fatalf("got %s %d", code, status)
	}
	store.value.Store(nil)
	if _, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
}

// TestPanic_Abort checks that http.ErrAbortHandler still aborts: the
// client sees a broken response, not a 500, and the server logs no stack
// of its own.
func TestPanic_Abort(t *testing.T) {
	e := newEnv(t)
	e.Handler.Endpoint = func(fleetcert.Scope, string) (string, error) { panic(http.ErrAbortHandler) }
	e.URL()
	r := e.Request(e.KeyA, testRegion, "GET", "/endpoint?endpointType=iot:Data-ATS", nil, time.Now())
	req, _ := http.NewRequest("GET", e.URL()+"/endpoint?endpointType=iot:Data-ATS", nil)
	req.Header = r.Header
	req.Host = testHost
	resp, err := e.server.Client().Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("got %d %s, want the response aborted", resp.StatusCode, b)
	}
	if rec := e.Logs.Last(t); rec["operation"] != "DescribeEndpoint" {
		t.Errorf("logged %v", rec)
	}
}
