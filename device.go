package fleetcert

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"
)

// Device admission reasons: why a device was refused, for logs, metrics and
// the gateway's choice of refusal.
const (
	ReasonUnregistered      = "unregistered"
	ReasonInactive          = "inactive"
	ReasonRevoked           = "revoked"
	ReasonPendingTransfer   = "pending_transfer"
	ReasonPendingActivation = "pending_activation"
	ReasonExpired           = "expired"
	ReasonNotYetValid       = "not_yet_valid"
	ReasonAmbiguousAccount  = "ambiguous_account"
	ReasonNoCertificate     = "no_certificate"
)

// DeviceRefusal is why a device may not connect. The gateway refuses the
// connection and logs Reason with the certificate's id.
type DeviceRefusal struct {
	Reason        string
	CertificateID string
	Scope         Scope // the account and region that refused, when known
}

// Error implements the error interface.
func (e *DeviceRefusal) Error() string {
	return fmt.Sprintf("device certificate %s refused: %s", e.CertificateID, e.Reason)
}

// DeviceQuery is what the gateway knows of a connecting device.
type DeviceQuery struct {
	// Chain is the certificate chain the device presented, leaf first.
	Chain []*x509.Certificate
	// Region is the region the gateway serves.
	Region string
	// AccountID is the account named by the TLS server name, "" if the
	// device sent none or a name that names no account.
	AccountID string
}

// AdmitDevice decides whether a device presenting q.Chain may connect: its
// leaf certificate must be registered and ACTIVE in q.Region, in q.AccountID
// when given or in the one account that has it, and be within its validity
// period. It returns the certificate, or a *DeviceRefusal.
//
// It does not register anything: see AutoRegisterDevice.
func (r *Registry) AdmitDevice(ctx context.Context, q DeviceQuery) (*Certificate, error) {
	if len(q.Chain) == 0 {
		return nil, &DeviceRefusal{Reason: ReasonNoCertificate}
	}
	leaf := q.Chain[0]
	id := CertificateID(leaf.Raw)
	var found []*Certificate
	err := r.Store.View(ctx, func(tx Tx) error {
		all, err := tx.CertificatesByID(ctx, id)
		for _, c := range all {
			if c.Region == q.Region && (q.AccountID == "" || c.AccountID == q.AccountID) {
				found = append(found, c)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("admit device %s: %w", id, err)
	}
	switch len(found) {
	case 0:
		return nil, &DeviceRefusal{Reason: ReasonUnregistered, CertificateID: id}
	case 1:
	default:
		// The same certificate registered in several accounts: only the
		// endpoint's host name (TLS SNI) can say which one the device means.
		return nil, &DeviceRefusal{Reason: ReasonAmbiguousAccount, CertificateID: id}
	}
	c := found[0]
	refuse := func(reason string) (*Certificate, error) {
		return c, &DeviceRefusal{Reason: reason, CertificateID: id, Scope: c.Scope}
	}
	switch c.Status {
	case StatusActive:
	case StatusRevoked:
		return refuse(ReasonRevoked)
	case StatusPendingTransfer:
		return refuse(ReasonPendingTransfer)
	case StatusPendingActivation:
		return refuse(ReasonPendingActivation)
	default:
		return refuse(ReasonInactive)
	}
	now := r.Now()
	if now.After(c.NotAfter) {
		return refuse(ReasonExpired)
	}
	if now.Before(c.NotBefore) {
		return refuse(ReasonNotYetValid)
	}
	return c, nil
}

// AutoRegistration is the result of just-in-time registration: the
// certificate registered (or found) PENDING_ACTIVATION and its CA. The
// gateway publishes it on $aws/events/certificates/registered/{caCertificateId}.
type AutoRegistration struct {
	Certificate *Certificate
	CA          *CACertificate
	Time        time.Time
}

// AutoRegisterDevice registers an unknown device certificate as
// PENDING_ACTIVATION under the CA that signed it, when that CA is
// registered in q.Region (in q.AccountID when given, else in exactly one
// account), ACTIVE, and has auto-registration enabled. The device must
// present the CA certificate right after its own in q.Chain, as AWS
// requires. A certificate already PENDING_ACTIVATION under that CA is
// returned again, so each connection attempt announces it again, as AWS
// does. It returns nil, nil when the device is not eligible.
func (r *Registry) AutoRegisterDevice(ctx context.Context, q DeviceQuery) (*AutoRegistration, error) {
	if len(q.Chain) < 2 {
		return nil, nil
	}
	leaf, caCert := q.Chain[0], q.Chain[1]
	if leaf.CheckSignatureFrom(caCert) != nil {
		return nil, nil
	}
	now := r.now()
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return nil, nil
	}
	caID := CertificateID(caCert.Raw)
	var result *AutoRegistration
	err := r.update(ctx, func(tx Tx) error {
		regs, err := tx.CACertificatesByID(ctx, q.Region, caID)
		if err != nil {
			return err
		}
		var eligible []*CACertificate
		for _, ca := range regs {
			// Deactivating a CA, or disabling its auto-registration, stops
			// just-in-time registration (deactivate-ca-cert.md).
			if (q.AccountID == "" || ca.AccountID == q.AccountID) &&
				ca.Status == CAStatusActive && ca.AutoRegistrationStatus == AutoRegistrationEnable {
				eligible = append(eligible, ca)
			}
		}
		if len(eligible) != 1 {
			return nil
		}
		ca := eligible[0]
		id := CertificateID(leaf.Raw)
		existing, err := tx.Certificate(ctx, ca.Scope, id)
		if err == nil {
			if existing.Status == StatusPendingActivation && existing.CACertificateID == ca.ID {
				result = &AutoRegistration{Certificate: existing, CA: ca, Time: now}
			}
			return nil
		} else if ErrorCode(err) != EResourceNotFound {
			return err
		}
		c := r.newCertificate(ca.Scope, leaf, StatusPendingActivation, ca.Mode, now)
		c.CACertificateID = ca.ID
		if err := r.insert(ctx, tx, c); err != nil {
			return err
		}
		result = &AutoRegistration{Certificate: c, CA: ca, Time: now}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auto-register device: %w", err)
	}
	return result, nil
}

// AutoRegistrationCandidate reports whether a device that AdmitDevice
// refuses as unregistered or pending activation could still be registered
// just in time: it presents a second certificate, that certificate signed
// its leaf, and it is a CA registered in q.Region (in q.AccountID when
// given), whatever its status. The gateway lets such a device finish the
// TLS handshake, because AWS registers on the MQTT CONNECT, not on the bare
// handshake; AutoRegisterDevice decides then. It only reads.
func (r *Registry) AutoRegistrationCandidate(ctx context.Context, q DeviceQuery) (bool, error) {
	if len(q.Chain) < 2 || q.Chain[0].CheckSignatureFrom(q.Chain[1]) != nil {
		return false, nil
	}
	caID := CertificateID(q.Chain[1].Raw)
	found := false
	err := r.Store.View(ctx, func(tx Tx) error {
		regs, err := tx.CACertificatesByID(ctx, q.Region, caID)
		for _, ca := range regs {
			if q.AccountID == "" || ca.AccountID == q.AccountID {
				found = true
			}
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("auto-registration candidate %s: %w", CertificateID(q.Chain[0].Raw), err)
	}
	return found, nil
}
