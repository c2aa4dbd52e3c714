package fleetcert

// Status is the status of a client certificate (CertificateStatus in the AWS
// model).
type Status string

// Client certificate statuses, as AWS spells them.
const (
	StatusActive            Status = "ACTIVE"
	StatusInactive          Status = "INACTIVE"
	StatusRevoked           Status = "REVOKED"
	StatusPendingTransfer   Status = "PENDING_TRANSFER"
	StatusRegisterInactive  Status = "REGISTER_INACTIVE"
	StatusPendingActivation Status = "PENDING_ACTIVATION"
)

// ParseStatus returns s as a Status, or InvalidRequestException when AWS's
// model does not know the value.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case StatusActive, StatusInactive, StatusRevoked, StatusPendingTransfer,
		StatusRegisterInactive, StatusPendingActivation:
		return st, nil
	}
	return "", Errorf(EInvalidRequest,
		"1 validation error detected: Value '%s' at 'newStatus' failed to satisfy constraint: Member must satisfy enum value set: [ACTIVE, INACTIVE, REVOKED, PENDING_TRANSFER, REGISTER_INACTIVE, PENDING_ACTIVATION]", s)
}

// normalize maps AWS's deprecated REGISTER_INACTIVE to INACTIVE: both mean
// "registered and not allowed to connect".
func (s Status) normalize() Status {
	if s == StatusRegisterInactive {
		return StatusInactive
	}
	return s
}

// CheckTransition reports whether a client certificate in status from may be
// set to status to by a caller (UpdateCertificate). It returns changed=false
// when to is the current status: AWS documents UpdateCertificate as
// idempotent, so that is a success that changes nothing.
//
// Errors: InvalidRequestException when to is a status only the system sets;
// CertificateStateException when from does not allow the move. Messages
// name the status as the caller sent it (REGISTER_INACTIVE, not INACTIVE).
func CheckTransition(from, to Status) (changed bool, err error) {
	sent := to
	from, to = from.normalize(), to.normalize()
	switch to {
	case StatusPendingTransfer, StatusPendingActivation:
		// AWS IoT (UpdateCertificate): "Setting the status to PENDING_TRANSFER or
		// PENDING_ACTIVATION will result in an exception being thrown"; AWS does
		// not name it, aws-behaviour-notes.md picks InvalidRequestException.
		return false, Errorf(EInvalidRequest,
			"The status %s is used internally by AWS IoT and cannot be set with UpdateCertificate.", sent)
	case StatusActive, StatusInactive, StatusRevoked:
	default:
		return false, Errorf(EInvalidRequest, "Unknown certificate status %q.", sent)
	}
	if from == to {
		return false, nil
	}
	switch from {
	case StatusRevoked:
		// AWS IoT (Revoke a client certificate): once revoked, a certificate's
		// status can't be changed to Active or any other status.
		return false, Errorf(ECertificateState,
			"The certificate is revoked; a revoked certificate cannot be set to %s.", sent)
	case StatusPendingTransfer:
		// A certificate in transfer is settled only by accepting, rejecting or
		// cancelling the transfer (AWS: UpdateCertificate to ACTIVE is refused
		// while PENDING_TRANSFER).
		return false, Errorf(ECertificateState,
			"The certificate is pending transfer; cancel or reject the transfer before setting it to %s.", sent)
	}
	return true, nil
}

// CheckRegistrationStatus validates the status requested when a certificate
// is registered: ACTIVE, INACTIVE (the default; REGISTER_INACTIVE is AWS's
// older name for it) or REVOKED.
func CheckRegistrationStatus(s Status) (Status, error) {
	switch n := s.normalize(); n {
	case "":
		return StatusInactive, nil
	case StatusActive, StatusInactive, StatusRevoked:
		return n, nil
	case StatusPendingTransfer, StatusPendingActivation:
		return "", Errorf(EInvalidRequest,
			"A certificate cannot be registered with status %s; use %s.", s, registrationStatuses)
	}
	return "", Errorf(EInvalidRequest, "Unknown certificate status %q; use %s.", s, registrationStatuses)
}

// registrationStatuses lists what a registration may ask for.
const registrationStatuses = "ACTIVE, INACTIVE, REGISTER_INACTIVE or REVOKED"

// CanDelete reports whether client certificate id, in status s, may be
// deleted.
//
// Errors: CertificateStateException while ACTIVE or PENDING_TRANSFER.
func CanDelete(id string, s Status) error {
	switch s {
	case StatusActive:
		// AWS IoT (DeleteCertificate): a certificate cannot be deleted while its
		// status is ACTIVE. The message is AWS's, as quoted from its answer in
		// rebuy-de/aws-nuke#374: tools match on it.
		return Errorf(ECertificateState,
			"Certificate must be deactivated (not ACTIVE) before deletion. Id: %s", id)
	case StatusPendingTransfer:
		return Errorf(ECertificateState,
			"The certificate is pending transfer; cancel the transfer before deleting it.")
	}
	return nil
}
