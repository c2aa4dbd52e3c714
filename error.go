package fleetcert

import (
	"errors"
	"fmt"
)

// Error codes are AWS IoT's exception names (shapes of iot-certificate-api.json,
// and of awsapi/testdata/iot-authz-api.json for things and policies).
// Each adapter maps them to its wire: an HTTP status and x-amzn-ErrorType in
// awsapi, a readable message in the console, a CONNACK code in the gateway.
const (
	ECertificateConflict        = "CertificateConflictException"
	ECertificateState           = "CertificateStateException"
	ECertificateValidation      = "CertificateValidationException"
	EDeleteConflict             = "DeleteConflictException"
	EInternalFailure            = "InternalFailureException"
	EInvalidRequest             = "InvalidRequestException"
	ELimitExceeded              = "LimitExceededException"
	EMalformedPolicy            = "MalformedPolicyException"
	ERegistrationCodeValidation = "RegistrationCodeValidationException"
	EResourceAlreadyExists      = "ResourceAlreadyExistsException"
	EResourceNotFound           = "ResourceNotFoundException"
	EServiceUnavailable         = "ServiceUnavailableException"
	EThrottling                 = "ThrottlingException"
	ETransferAlreadyCompleted   = "TransferAlreadyCompletedException"
	ETransferConflict           = "TransferConflictException"
	EUnauthorized               = "UnauthorizedException"
	EVersionConflict            = "VersionConflictException"
	EVersionsLimitExceeded      = "VersionsLimitExceededException"
)

// Error is a failure the caller can act on: a rule of the registry refused
// the request. Code is an AWS error code; Message is safe to show to the
// caller. Any error that is not an *Error is an internal failure whose
// details are logged and never sent.
type Error struct {
	Code    string
	Message string

	// ResourceID and ResourceARN name the existing resource for
	// ResourceAlreadyExistsException, as AWS does.
	ResourceID  string
	ResourceARN string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("fleetcert error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, "" for a nil
// error, and EInternalFailure for any other error.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternalFailure
}

// ErrorMessage returns the message of the *Error in err's chain, "" for a
// nil error, and a generic text for any other error, so that internal
// details never reach a caller.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}
