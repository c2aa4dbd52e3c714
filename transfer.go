package fleetcert

import (
	"context"
	"time"
)

// Transfer is one transfer of a client certificate between two accounts of
// a region, kept after it ends so that a late Accept, Reject or Cancel
// learns that it is over (TransferAlreadyCompletedException).
type Transfer struct {
	Region          string
	CertificateID   string
	SourceAccountID string
	TargetAccountID string
	Message         string
	RejectReason    string
	TransferDate    time.Time
	AcceptDate      time.Time
	RejectDate      time.Time
	CancelDate      time.Time
}

// Done reports whether the transfer was accepted, rejected or cancelled.
func (t *Transfer) Done() bool {
	return !t.AcceptDate.IsZero() || !t.RejectDate.IsZero() || !t.CancelDate.IsZero()
}

// maxMessage is the model's Message limit (transferMessage, rejectReason).
const maxMessage = 128

// TransferCertificate starts the transfer of an INACTIVE client certificate
// to another account of the same region. The certificate is
// PENDING_TRANSFER on both sides until the target accepts or rejects it or
// the source cancels; the target sees it in ListCertificates meanwhile.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// CertificateStateException, TransferConflictException (the target has the
// certificate, or policies are attached).
func (r *Registry) TransferCertificate(ctx context.Context, scope Scope, id, targetAccountID, message string) (*Certificate, error) {
	id, err := ParseCertificateID("certificateId", id)
	if err != nil {
		return nil, err
	}
	if !ValidAccountID(targetAccountID) {
		return nil, Errorf(EInvalidRequest, "targetAwsAccount must be a 12-digit account id.")
	}
	if targetAccountID == scope.AccountID {
		return nil, Errorf(EInvalidRequest, "A certificate cannot be transferred to the account that owns it.")
	}
	if len(message) > maxMessage {
		return nil, Errorf(EInvalidRequest, "transferMessage is longer than %d characters.", maxMessage)
	}
	var c *Certificate
	err = r.update(ctx, "TransferCertificate", func(tx Tx) error {
		var err error
		if c, err = tx.Certificate(ctx, scope, id); err != nil {
			return err
		}
		if c.CACertificateID != "" {
			// AWS does not document this case; the transfer documentation
			// speaks of certificates without a registered CA, and a device
			// certificate belongs with the CA registered in its account.
			// CertificateStateException: the refusal is about the
			// certificate, and TransferConflictException is documented for
			// attached policies.
			return Errorf(ECertificateState, "The certificate was registered under CA %s and cannot be transferred; register it in the other account instead.", c.CACertificateID)
		}
		if c.Status != StatusInactive {
			// AWS IoT (TransferCertificate): the certificate must not be
			// ACTIVE; fleetcert allows only INACTIVE, the one status a
			// transfer returns a certificate to.
			return Errorf(ECertificateState, "The certificate is %s; only an INACTIVE certificate can be transferred.", c.Status)
		}
		policies, err := tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, To: c.ARN(), Limit: 1})
		if err != nil {
			return err
		}
		if len(policies) > 0 {
			// AWS IoT (TransferCertificate): "The certificate must not have
			// any policies attached to it. You can use the DetachPolicy
			// action to detach them." TransferConflictException: "You can't
			// transfer the certificate because authorization policies are
			// still attached." AWS says nothing of things: a thing
			// attachment stays until the target accepts.
			return Errorf(ETransferConflict, "You can't transfer the certificate because authorization policies are still attached (policy %s); detach them first.", policies[0].From)
		}
		target := Scope{AccountID: targetAccountID, Region: scope.Region}
		if _, err := tx.Certificate(ctx, target, id); err == nil {
			return Errorf(ETransferConflict, "The target account already has this certificate registered.")
		} else if ErrorCode(err) != EResourceNotFound {
			return err
		}
		now := r.now()
		t := &Transfer{Region: scope.Region, CertificateID: id, SourceAccountID: scope.AccountID,
			TargetAccountID: targetAccountID, Message: message, TransferDate: now}
		if err := tx.PutTransfer(ctx, t); err != nil {
			return err
		}
		data := &TransferData{TargetAccountID: targetAccountID, TransferMessage: message, TransferDate: now}
		if err := r.setStatus(ctx, tx, c, StatusPendingTransfer, data); err != nil {
			return err
		}
		// The target's view of the certificate: its own record, owned by the
		// source until it accepts.
		incoming := *c
		incoming.Scope = target
		incoming.CreationDate, incoming.LastModifiedDate = now, now
		incoming.CustomerVersion = 1
		incoming.GenerationID = newGenerationID()
		return r.insert(ctx, tx, &incoming)
	})
	if err != nil {
		return nil, notFound(err, id)
	}
	return c, nil
}

// AcceptCertificateTransfer takes ownership of a certificate transferred to
// scope's account: INACTIVE, or ACTIVE with setAsActive. The source account
// loses it.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// TransferAlreadyCompletedException.
func (r *Registry) AcceptCertificateTransfer(ctx context.Context, scope Scope, id string, setAsActive bool) error {
	return r.endTransfer(ctx, "AcceptCertificateTransfer", scope, id, asTarget, func(tx Tx, t *Transfer, mine, source *Certificate) error {
		now := r.now()
		t.AcceptDate = now
		// The source account no longer has the certificate: its things
		// lose it in the same transaction.
		if err := detachCertificate(ctx, tx, source.Scope, id, now); err != nil {
			return err
		}
		if err := tx.DeleteCertificate(ctx, source.Scope, id); err != nil {
			return err
		}
		if err := tx.AppendChange(ctx, &Change{Kind: ChangeCertificateDeleted, Scope: source.Scope, CertificateID: id,
			OldStatus: source.Status, Time: now}); err != nil {
			return err
		}
		mine.OwnedBy, mine.PreviousOwnedBy = scope.AccountID, source.AccountID
		status := StatusInactive
		if setAsActive {
			status = StatusActive
		}
		data := *mine.Transfer
		data.AcceptDate = now
		return r.setStatus(ctx, tx, mine, status, &data)
	})
}

// RejectCertificateTransfer refuses a certificate transferred to scope's
// account: it returns to its owner INACTIVE, with the reason.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// TransferAlreadyCompletedException.
func (r *Registry) RejectCertificateTransfer(ctx context.Context, scope Scope, id, reason string) error {
	if len(reason) > maxMessage {
		return Errorf(EInvalidRequest, "rejectReason is longer than %d characters.", maxMessage)
	}
	return r.endTransfer(ctx, "RejectCertificateTransfer", scope, id, asTarget, func(tx Tx, t *Transfer, mine, source *Certificate) error {
		now := r.now()
		t.RejectDate, t.RejectReason = now, reason
		if err := detachCertificate(ctx, tx, scope, id, now); err != nil {
			return err
		}
		if err := tx.DeleteCertificate(ctx, scope, id); err != nil {
			return err
		}
		if err := tx.AppendChange(ctx, &Change{Kind: ChangeCertificateDeleted, Scope: scope, CertificateID: id,
			OldStatus: mine.Status, Time: now}); err != nil {
			return err
		}
		data := *source.Transfer
		data.RejectReason, data.RejectDate = reason, now
		return r.setStatus(ctx, tx, source, StatusInactive, &data)
	})
}

// CancelCertificateTransfer withdraws a transfer started by scope's
// account: the certificate returns to it INACTIVE.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// TransferAlreadyCompletedException.
func (r *Registry) CancelCertificateTransfer(ctx context.Context, scope Scope, id string) error {
	return r.endTransfer(ctx, "CancelCertificateTransfer", scope, id, asSource, func(tx Tx, t *Transfer, mine, target *Certificate) error {
		now := r.now()
		t.CancelDate = now
		if err := detachCertificate(ctx, tx, target.Scope, id, now); err != nil {
			return err
		}
		if err := tx.DeleteCertificate(ctx, target.Scope, id); err != nil {
			return err
		}
		if err := tx.AppendChange(ctx, &Change{Kind: ChangeCertificateDeleted, Scope: target.Scope, CertificateID: id,
			OldStatus: target.Status, Time: now}); err != nil {
			return err
		}
		return r.setStatus(ctx, tx, mine, StatusInactive, nil)
	})
}

type transferSide bool

const (
	asSource transferSide = false
	asTarget transferSide = true
)

// endTransfer finds the pending transfer of certificate id in which scope's
// account plays side, and runs end on it with the caller's record and the
// other side's, then stores the ended transfer.
func (r *Registry) endTransfer(ctx context.Context, op string, scope Scope, id string, side transferSide,
	end func(tx Tx, t *Transfer, mine, other *Certificate) error) error {
	id, err := ParseCertificateID("certificateId", id)
	if err != nil {
		return err
	}
	err = r.update(ctx, op, func(tx Tx) error {
		t, err := tx.LatestTransfer(ctx, scope.Region, id, scope.AccountID)
		if ErrorCode(err) == EResourceNotFound {
			return Errorf(EResourceNotFound, "There is no transfer of certificate %s for this account.", id)
		} else if err != nil {
			return err
		}
		if (side == asTarget) != (t.TargetAccountID == scope.AccountID) {
			if side == asTarget {
				return Errorf(EInvalidRequest, "Only the account the certificate is transferred to can accept or reject the transfer; the source can cancel it.")
			}
			return Errorf(EInvalidRequest, "Only the account that started the transfer can cancel it; the target can reject it.")
		}
		if t.Done() {
			// AWS IoT (CancelCertificateTransfer): once accepted, a transfer
			// cannot be cancelled; the same holds for any finished transfer.
			return Errorf(ETransferAlreadyCompleted, "The transfer of certificate %s is already completed.", id)
		}
		source := Scope{AccountID: t.SourceAccountID, Region: scope.Region}
		target := Scope{AccountID: t.TargetAccountID, Region: scope.Region}
		src, err := tx.Certificate(ctx, source, id)
		if err != nil {
			return err
		}
		dst, err := tx.Certificate(ctx, target, id)
		if err != nil {
			return err
		}
		mine, other := src, dst
		if side == asTarget {
			mine, other = dst, src
		}
		if err := end(tx, t, mine, other); err != nil {
			return err
		}
		return tx.PutTransfer(ctx, t)
	})
	return notFound(err, id)
}

// setStatus moves c to status with transfer data data, as a real change.
// It bypasses CheckTransition: only the system moves certificates in and
// out of PENDING_TRANSFER.
func (r *Registry) setStatus(ctx context.Context, tx Tx, c *Certificate, status Status, data *TransferData) error {
	old := c.Status
	c.Status, c.Transfer = status, data
	r.touch(c)
	if err := tx.UpdateCertificate(ctx, c); err != nil {
		return err
	}
	return tx.AppendChange(ctx, &Change{Kind: ChangeCertificateUpdated, Scope: c.Scope, CertificateID: c.ID,
		OldStatus: old, NewStatus: status, Time: c.LastModifiedDate})
}

// ListOutgoingCertificates returns a page of the certificates scope's
// account is transferring and the target has not accepted yet.
//
// Errors: InvalidRequestException.
func (r *Registry) ListOutgoingCertificates(ctx context.Context, scope Scope, opts ListOptions) (*CertificatePage, error) {
	return r.listCertificates(ctx, CertificateQuery{Scope: scope, Status: StatusPendingTransfer, OwnedBy: scope.AccountID}, opts)
}
