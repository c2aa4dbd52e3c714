package awsapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Error codes of the AWS front door that the model does not list: request
// authentication and routing. AWS answers authentication failures with 403.
const (
	codeMissingAuthenticationToken = "MissingAuthenticationTokenException"
	codeUnrecognizedClient         = "UnrecognizedClientException"
	codeInvalidSignature           = "InvalidSignatureException"
	codeIncompleteSignature        = "IncompleteSignatureException"
	codeUnknownOperation           = "UnknownOperationException"
)

// errorStatus is the HTTP status of each error code: the httpStatusCode of
// the error shapes of iot-certificate-api.json (a test checks this table
// against the model), then the front door's codes.
var errorStatus = map[string]int{
	fleetcert.ECertificateConflict:        409,
	fleetcert.ECertificateState:           406,
	fleetcert.ECertificateValidation:      400,
	fleetcert.EDeleteConflict:             409,
	fleetcert.EInternalFailure:            500,
	fleetcert.EInvalidRequest:             400,
	fleetcert.ELimitExceeded:              410,
	fleetcert.ERegistrationCodeValidation: 400,
	fleetcert.EResourceAlreadyExists:      409,
	fleetcert.EResourceNotFound:           404,
	fleetcert.EServiceUnavailable:         503,
	fleetcert.EThrottling:                 400,
	fleetcert.ETransferAlreadyCompleted:   410,
	fleetcert.ETransferConflict:           409,
	fleetcert.EUnauthorized:               401,
	fleetcert.EMalformedPolicy:            400,
	fleetcert.EVersionConflict:            409,
	fleetcert.EVersionsLimitExceeded:      409,

	codeMissingAuthenticationToken: 403,
	codeUnrecognizedClient:         403,
	codeInvalidSignature:           403,
	codeIncompleteSignature:        403,
	codeUnknownOperation:           404,
}

// internalFailureMessage is all a caller learns of an internal failure.
const internalFailureMessage = "An internal error occurred; retry the request. The request id identifies the failure in the server log."

// errorBody is the JSON body of every error response (the members of the
// model's error shapes).
type errorBody struct {
	Message     string `json:"message"`
	ResourceID  string `json:"resourceId,omitempty"`
	ResourceARN string `json:"resourceArn,omitempty"`
}

// writeError writes err as an AWS error response, the one path every error
// takes: status from errorStatus (or a *statusError), the code in
// x-amzn-ErrorType, the message (and resourceId/resourceArn when set) in the
// JSON body. An error that is not a *fleetcert.Error, or whose code has no
// status, is an internal failure: its details go to the log line, the caller
// gets a generic message.
func (h *Handler) writeError(c *call, err error) {
	var e *fleetcert.Error
	status, ok := 0, errors.As(err, &e)
	if ok {
		status, ok = errorStatus[e.Code]
	}
	if !ok {
		c.err = err
		e = &fleetcert.Error{Code: fleetcert.EInternalFailure, Message: internalFailureMessage}
		status = errorStatus[e.Code]
	} else if se := (*statusError)(nil); errors.As(err, &se) {
		status = se.status
	}
	c.code = e.Code
	b, merr := marshal(errorBody{Message: e.Message, ResourceID: e.ResourceID, ResourceARN: e.ResourceARN})
	if merr != nil {
		b = []byte(`{"message":"` + internalFailureMessage + `"}`)
	}
	hdr := c.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("x-amzn-ErrorType", e.Code)
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	c.WriteHeader(status)
	c.Write(b)
}

// statusError is a *fleetcert.Error sent with another HTTP status than the
// one of its code.
type statusError struct {
	status int
	err    *fleetcert.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// errBodyTooLarge is the error for a body over the limit: status 413 with
// InvalidRequestException rather than an unmodelled code such as
// RequestEntityTooLargeException. The SDKs pick the error type from the
// code, so a modelled code reaches callers as a typed, non-retryable client
// error (types.InvalidRequestException), while 413 still tells HTTP tooling
// what went wrong.
func errBodyTooLarge(limit int64) error {
	return &statusError{http.StatusRequestEntityTooLarge, fleetcert.Errorf(fleetcert.EInvalidRequest,
		"The request body is larger than %d bytes.", limit)}
}

// errBodyTimeout is the error for a body that did not arrive within the
// body read timeout: status 408 with InvalidRequestException, for the same
// reasons as errBodyTooLarge. The server closes the connection after it.
func errBodyTimeout(timeout time.Duration) error {
	return &statusError{http.StatusRequestTimeout, fleetcert.Errorf(fleetcert.EInvalidRequest,
		"The request body did not arrive within %s; send it at once after the headers.", timeout)}
}

// missingMember is the error for a required member the request lacks.
func missingMember(member string) error {
	return fleetcert.Errorf(fleetcert.EInvalidRequest,
		"1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
}

// invalidMember is the error for a query or body member that cannot be read
// as its model type.
func invalidMember(member, value, want string) error {
	if len(value) > 64 {
		value = value[:64] + "…"
	}
	return fleetcert.Errorf(fleetcert.EInvalidRequest,
		"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be %s", value, member, want)
}
