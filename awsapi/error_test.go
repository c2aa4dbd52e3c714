package awsapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
)

// faultyStore is the real store whose certificate reads fail with err:
// failure injection for the error encoding.
type faultyStore struct {
	fleetcert.Store
	err error
}

func (s *faultyStore) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return s.Store.View(ctx, func(tx fleetcert.Tx) error { return fn(faultyTx{tx, s.err}) })
}

func (s *faultyStore) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error { return fn(faultyTx{tx, s.err}) })
}

type faultyTx struct {
	fleetcert.Tx
	err error
}

func (tx faultyTx) Certificate(context.Context, fleetcert.Scope, string) (*fleetcert.Certificate, error) {
	return nil, tx.err
}

func (tx faultyTx) CreateCertificate(context.Context, *fleetcert.Certificate) error {
	return tx.err
}

func is[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// sdkTypes maps each error shape of the model to the SDK's typed error.
var sdkTypes = map[string]func(error) bool{
	"CertificateConflictException":        is[*types.CertificateConflictException],
	"CertificateStateException":           is[*types.CertificateStateException],
	"CertificateValidationException":      is[*types.CertificateValidationException],
	"DeleteConflictException":             is[*types.DeleteConflictException],
	"InternalFailureException":            is[*types.InternalFailureException],
	"InvalidRequestException":             is[*types.InvalidRequestException],
	"LimitExceededException":              is[*types.LimitExceededException],
	"RegistrationCodeValidationException": is[*types.RegistrationCodeValidationException],
	"ResourceAlreadyExistsException":      is[*types.ResourceAlreadyExistsException],
	"ResourceNotFoundException":           is[*types.ResourceNotFoundException],
	"ServiceUnavailableException":         is[*types.ServiceUnavailableException],
	"ThrottlingException":                 is[*types.ThrottlingException],
	"TransferAlreadyCompletedException":   is[*types.TransferAlreadyCompletedException],
	"TransferConflictException":           is[*types.TransferConflictException],
	"UnauthorizedException":               is[*types.UnauthorizedException],
}

// TestErrors_Model sends every error shape of the model and checks its
// HTTP status against the model and that the SDK raises its typed error.
func TestErrors_Model(t *testing.T) {
	db := mustOpenDB(t)
	store := &faultyStore{Store: db}
	e := newEnvOnStore(t, store)
	client := e.Client(e.KeyA, testRegion)
	id := strings.Repeat("ab", 32)
	pemText, _, _ := selfSignedPEM(t, "device")
	m := loadModel(t)
	n := 0
	for name, shape := range m.Shapes {
		if !shape.Exception {
			continue
		}
		n++
		t.Run("ok/"+name, func(t *testing.T) {
			injected := &fleetcert.Error{Code: name, Message: "injected " + name}
			if name == fleetcert.EResourceAlreadyExists {
				injected.ResourceID, injected.ResourceARN = "the-id", "the-arn"
			}
			store.err = injected
			w := readError(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())))
			if w.Status != shape.Error.HTTPStatusCode || w.Code != name || w.ContentType != "application/json" || w.RequestID == "" {
				t.Errorf("got %d %s (%s), want %d %s", w.Status, w.Code, w.ContentType, shape.Error.HTTPStatusCode, name)
			}
			if name != fleetcert.EResourceNotFound && w.Message != injected.Message {
				t.Errorf("message %q", w.Message)
			}
			if w.ResourceID != injected.ResourceID || w.ResourceARN != injected.ResourceARN {
				t.Errorf("resourceId %q resourceArn %q", w.ResourceID, w.ResourceARN)
			}
			// The SDK raises the typed error when the operation's model lists
			// it, and a generic API error with the code otherwise: call an
			// implemented operation that lists it, if there is one.
			ctx := context.Background()
			calls := map[string]func() error{
				"DescribeCertificate": func() error {
					_, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
					return err
				},
				"UpdateCertificate": func() error {
					_, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusInactive})
					return err
				},
				"DeleteCertificate": func() error {
					_, err := client.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(id)})
					return err
				},
				"TransferCertificate": func() error {
					_, err := client.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(id), TargetAwsAccount: aws.String(accountB)})
					return err
				},
				"RegisterCertificateWithoutCA": func() error {
					_, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pemText)})
					return err
				},
			}
			op := "DescribeCertificate"
			for candidate := range calls {
				for _, listed := range m.Operations[candidate].Errors {
					if listed.Shape == name {
						op = candidate
					}
				}
			}
			err := calls[op]()
			listed := false
			for _, l := range m.Operations[op].Errors {
				listed = listed || l.Shape == name
			}
			if code, status := apiError(t, err); code != name || status != shape.Error.HTTPStatusCode {
				t.Errorf("%s: SDK saw %s %d", op, code, status)
			}
			if check := sdkTypes[name]; listed && (check == nil || !check(err)) {
				t.Errorf("%s: SDK raised %v, want the typed %s", op, err, name)
			}
		})
	}
	if n != len(sdkTypes) {
		t.Errorf("model has %d error shapes, test knows %d", n, len(sdkTypes))
	}

	for _, tt := range []struct {
		name string
		err  error
	}{
		{"fail/internal error", errors.New("sqlite: disk I/O error at /var/lib/fleetcert/db")},
		{"fail/wrapped internal error", &wrapped{errors.New("sqlite: disk I/O error at /var/lib/fleetcert/db")}},
		{"fail/code without a status", &fleetcert.Error{Code: "MadeUpException", Message: "sqlite: disk I/O error"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store.err = tt.err
			w := readError(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, time.Now())))
			if w.Status != 500 || w.Code != "InternalFailureException" || strings.Contains(w.Message, "disk") {
				t.Errorf("got %d %s %q", w.Status, w.Code, w.Message)
			}
			logged := e.Logs.Last(t)
			if !strings.Contains(logged["error"], "disk I/O error") || logged["level"] != "ERROR" {
				t.Errorf("log line %v does not carry the details", logged)
			}
		})
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "describe: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// TestErrors_AuthzModel checks errorStatus against every error shape of
// the things and policies model: each code has the model's status.
func TestErrors_AuthzModel(t *testing.T) {
	m := loadAuthzModel(t)
	n := 0
	for name, shape := range m.Shapes {
		if !shape.Exception {
			continue
		}
		n++
		if status, ok := awsapi.ErrorStatus(name); !ok || status != shape.Error.HTTPStatusCode {
			t.Errorf("%s: errorStatus %d (%v), model %d", name, status, ok, shape.Error.HTTPStatusCode)
		}
	}
	if n == 0 {
		t.Fatal("no error shapes in the model")
	}
}
