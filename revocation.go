package fleetcert

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"time"
)

// Revocation for other doors: the status fleetcert tells relying parties
// other than its own gateway (load balancers, other brokers) through a CRL
// and an OCSP responder. The registry's status is the truth; this file is
// the one place that maps it onto RFC 5280 and RFC 6960.

// RevocationState is a certificate's status as a relying party sees it
// (RFC 6960 CertStatus).
type RevocationState int

// Revocation states.
const (
	RevocationGood RevocationState = iota
	RevocationRevoked
	RevocationUnknown
)

func (s RevocationState) String() string {
	switch s {
	case RevocationGood:
		return "good"
	case RevocationRevoked:
		return "revoked"
	}
	return "unknown"
}

// CRL reason codes (RFC 5280 §5.3.1) fleetcert gives.
const (
	// ReasonCodeUnspecified is left out of CRL entries and OCSP responses
	// (RFC 5280 §5.3.1: "the reason code unspecified (0) SHOULD be
	// avoided" by omitting the extension). AWS records no reason for
	// REVOKED, so fleetcert claims none.
	ReasonCodeUnspecified = 0
	// ReasonCodeCessationOfOperation: a certificate fleetcert issued was
	// deleted while not REVOKED; it is no longer needed and can never
	// come back.
	ReasonCodeCessationOfOperation = 5
	// ReasonCodeCertificateHold: INACTIVE, PENDING_TRANSFER and
	// PENDING_ACTIVATION, which AWS lets come back to ACTIVE; RFC 5280
	// allows a held certificate to leave the CRL again.
	ReasonCodeCertificateHold = 6
)

// Revocation is what a CRL or an OCSP response says of one certificate.
type Revocation struct {
	State     RevocationState
	RevokedAt time.Time // when State is RevocationRevoked
	Reason    int       // a ReasonCode; ReasonCodeUnspecified is not written
	// CertificateID is the registration's certificate id, "" when unknown.
	CertificateID string
}

// RevocationOf is the rule from a registration's status to what other
// doors are told. Only ACTIVE is good, as only ACTIVE opens fleetcert's own
// door: REVOKED is revoked (no reason: AWS records none); every other
// status (INACTIVE, PENDING_TRANSFER, PENDING_ACTIVATION) is on hold
// (certificateHold), since AWS lets it become ACTIVE again. since is when
// the registration took its status (its LastModifiedDate: only a status
// change moves it).
func RevocationOf(id string, status Status, since time.Time) Revocation {
	switch status.normalize() {
	case StatusActive:
		return Revocation{State: RevocationGood, CertificateID: id}
	case StatusRevoked:
		return Revocation{State: RevocationRevoked, RevokedAt: since, Reason: ReasonCodeUnspecified, CertificateID: id}
	}
	return Revocation{State: RevocationRevoked, RevokedAt: since, Reason: ReasonCodeCertificateHold, CertificateID: id}
}

// Deleted certificates fleetcert issued stay revoked: the registration is
// gone (AWS's DeleteCertificate), but a relying party must not take a
// deleted certificate back as good, nor see it leave the CRL. A deletion
// leaves a tombstone, an Object of kind ObjectRevokedCertificate in
// RevocationScope, in the deleting transaction.

// RevocationScope is the scope of the tombstones of deleted certificates
// fleetcert issued. Its account is no 12-digit account id, so no tenant
// can see or name it.
var RevocationScope = Scope{AccountID: "fleetcert", Region: "revocation"}

// ObjectRevokedCertificate is the kind of a tombstone: Name
// "{issuer id}/{serial, hex}", Label the issuer id, Body a JSON tombstone.
const ObjectRevokedCertificate ObjectKind = "revoked-certificate"

type tombstone struct {
	CertificateID string    `json:"certificateId"`
	Serial        string    `json:"serial"` // hex
	RevokedAt     time.Time `json:"revokedAt"`
	Reason        int       `json:"reason"`
}

func tombstoneName(issuerID string, serial []byte) string {
	return issuerID + "/" + hex.EncodeToString(serial)
}

// bury records, in tx, that c, which r.Issuer issued, is deleted at now.
func (r *Registry) bury(ctx context.Context, tx Tx, c *Certificate, now time.Time) error {
	serial := c.Serial
	if serial == nil {
		cert, err := ParseCertificatePEM("pem", c.PEM)
		if err != nil {
			return fmt.Errorf("tombstone of %s: %w", c.ID, err)
		}
		serial = cert.SerialNumber.Bytes()
	}
	t := tombstone{CertificateID: c.ID, Serial: hex.EncodeToString(serial), RevokedAt: now, Reason: ReasonCodeCessationOfOperation}
	if c.Status.normalize() == StatusRevoked {
		// Revoked first: the revocation keeps its time and reason.
		t.RevokedAt, t.Reason = c.LastModifiedDate, ReasonCodeUnspecified
	}
	body, err := json.Marshal(t)
	if err != nil {
		return err
	}
	err = tx.CreateObject(ctx, &Object{
		Scope: RevocationScope, Kind: ObjectRevokedCertificate,
		Name: tombstoneName(r.Issuer.ID(), serial), Label: r.Issuer.ID(),
		Body: body, CreationDate: now, LastModifiedDate: now,
	})
	if ErrorCode(err) == EResourceAlreadyExists {
		return nil // a copy registered again and deleted again: the first stays
	}
	return err
}

// IssuedRevocation returns the status of the certificate with serial
// number serial that fleetcert's issuing CA issued: from its registration,
// or its tombstone once deleted; unknown when the CA issued no such
// certificate.
func (r *Registry) IssuedRevocation(ctx context.Context, serial *big.Int) (Revocation, error) {
	if r.Issuer == nil || serial.Sign() <= 0 {
		return Revocation{State: RevocationUnknown}, nil
	}
	rev := Revocation{State: RevocationUnknown}
	err := r.Store.View(ctx, func(tx Tx) error {
		regs, err := tx.CertificatesBySerial(ctx, serial.Bytes())
		if err != nil {
			return err
		}
		for _, c := range regs {
			if r.Issuer.Issued(c) {
				rev = RevocationOf(c.ID, c.Status, c.LastModifiedDate)
				return nil
			}
		}
		o, err := tx.Object(ctx, RevocationScope, ObjectRevokedCertificate, tombstoneName(r.Issuer.ID(), serial.Bytes()))
		if ErrorCode(err) == EResourceNotFound {
			return nil
		} else if err != nil {
			return err
		}
		var t tombstone
		if err := json.Unmarshal(o.Body, &t); err != nil {
			return fmt.Errorf("tombstone %s: %w", o.Name, err)
		}
		rev = Revocation{State: RevocationRevoked, RevokedAt: t.RevokedAt, Reason: t.Reason, CertificateID: t.CertificateID}
		return nil
	})
	if err != nil {
		return Revocation{}, fmt.Errorf("revocation of serial %x: %w", serial, err)
	}
	return rev, nil
}

// RegisteredRevocationQuery asks for the status of a certificate fleetcert
// did not issue (the OCSP responder's opt-in mode).
type RegisteredRevocationQuery struct {
	Serial *big.Int
	// IssuerMatches reports whether issuer is the CA the relying party
	// names (an OCSP request names it by hashes of its name and key).
	IssuerMatches func(issuer *x509.Certificate) bool
	// Region and DefaultAccountID choose among registrations in several
	// accounts as for a device that names no account (SelectRegistration):
	// a relying party names none.
	Region           string
	DefaultAccountID string
}

// RegisteredRevocation returns the status of a registered certificate
// whose serial is q.Serial and whose registered CA q.IssuerMatches, with
// that CA's certificate. Only registrations under a registered CA count:
// fleetcert knows that CA's key (it verified the certificate's signature
// at registration), so it knows which certificate the relying party
// means; a certificate registered without a CA could be any issuer's with
// that name and serial. When no registration, or several equally, may
// answer, the state is unknown.
func (r *Registry) RegisteredRevocation(ctx context.Context, q RegisteredRevocationQuery) (Revocation, *x509.Certificate, error) {
	unknown := Revocation{State: RevocationUnknown}
	if q.Serial.Sign() <= 0 {
		return unknown, nil, nil
	}
	type match struct {
		c  *Certificate
		ca *x509.Certificate
	}
	var found []match
	err := r.Store.View(ctx, func(tx Tx) error {
		regs, err := tx.CertificatesBySerial(ctx, q.Serial.Bytes())
		if err != nil {
			return err
		}
		for _, c := range regs {
			if c.CACertificateID == "" {
				continue
			}
			ca, err := tx.CACertificate(ctx, c.Scope, c.CACertificateID)
			if ErrorCode(err) == EResourceNotFound {
				continue
			} else if err != nil {
				return err
			}
			cert, err := ParseCertificatePEM("pem", ca.PEM)
			if err != nil || !q.IssuerMatches(cert) {
				continue
			}
			found = append(found, match{c, cert})
		}
		return nil
	})
	if err != nil {
		return Revocation{}, nil, fmt.Errorf("revocation of serial %x: %w", q.Serial, err)
	}
	dq := DeviceQuery{Region: q.Region, DefaultAccountID: q.DefaultAccountID}
	i, _ := SelectRegistration(dq, found, func(m match) (Scope, CertificateMode) { return m.c.Scope, m.c.Mode })
	if i < 0 {
		return unknown, nil, nil
	}
	c := found[i].c
	return RevocationOf(c.ID, c.Status, c.LastModifiedDate), found[i].ca, nil
}

// CRL is a signed certificate revocation list of the issuing CA.
type CRL struct {
	DER        []byte
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int
}

// CRLValidity is how long a CRL is valid (nextUpdate − thisUpdate).
// fleetcert signs a new one within a second of a change and at least every
// CRLValidity/24, so a relying party that fetches often never holds one
// older than that; the validity only bounds how long a cached CRL serves
// when fleetcert cannot be reached.
const CRLValidity = 24 * time.Hour

// crlNumberKind is the expiring-state kind of the last CRL number given,
// per issuer: shared by every process on the store.
const crlNumberKind = "crl-number"

// crlNumberExpires keeps the counter for good (the expiring state is the
// store's one read-modify-write record; SQLite keeps times to 2262).
var crlNumberExpires = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// CreateCRL signs a new CRL of the issuing CA listing every certificate
// it issued that is not ACTIVE (RevocationOf) and every one deleted.
//
// Its number is one more than the last any process on the store gave, and
// it is taken in the transaction that reads the entries, whose counter
// stays locked until commit: the CRLs of all the nodes of a cluster are
// numbered in the order their contents were read, so a higher number never
// lists less than a lower one, and no two CRLs share a number.
func (r *Registry) CreateCRL(ctx context.Context) (*CRL, error) {
	if r.Issuer == nil {
		return nil, fmt.Errorf("registry has no issuing CA")
	}
	id := r.Issuer.ID()
	var (
		number  int64
		now     time.Time
		entries []x509.RevocationListEntry
	)
	err := r.Store.Update(ctx, func(tx Tx) error {
		now = r.now()
		number, entries = 0, entries[:0]
		v, err := tx.Expiring(ctx, crlNumberKind, id, now)
		switch ErrorCode(err) {
		case "":
			if number, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return fmt.Errorf("crl number %q: %w", v, err)
			}
		case EResourceNotFound:
		default:
			return err
		}
		number++
		if err := tx.PutExpiring(ctx, crlNumberKind, id, []byte(strconv.FormatInt(number, 10)), crlNumberExpires); err != nil {
			return err
		}
		for after := int64(0); ; {
			page, err := tx.UnusableCertificatesByIssuer(ctx, r.Issuer.Certificate.RawSubject, after, 1000)
			if err != nil {
				return err
			}
			for _, c := range page {
				after = c.Seq
				if !r.Issuer.Issued(c) || c.Serial == nil {
					continue
				}
				rev := RevocationOf(c.ID, c.Status, c.LastModifiedDate)
				entries = append(entries, crlEntry(new(big.Int).SetBytes(c.Serial), rev))
			}
			if len(page) < 1000 {
				break
			}
		}
		for after := ""; ; {
			page, err := tx.ListObjects(ctx, ObjectQuery{Scope: RevocationScope, Kind: ObjectRevokedCertificate, Label: id, After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, o := range page {
				after = o.Name
				var t tombstone
				if err := json.Unmarshal(o.Body, &t); err != nil {
					return fmt.Errorf("tombstone %s: %w", o.Name, err)
				}
				serial, ok := new(big.Int).SetString(t.Serial, 16)
				if !ok {
					return fmt.Errorf("tombstone %s: serial %q", o.Name, t.Serial)
				}
				entries = append(entries, crlEntry(serial, Revocation{State: RevocationRevoked, RevokedAt: t.RevokedAt, Reason: t.Reason}))
			}
			if len(page) < 1000 {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create crl: %w", err)
	}
	crl := &CRL{Number: number, ThisUpdate: now.Truncate(time.Second), Entries: len(entries)}
	crl.NextUpdate = crl.ThisUpdate.Add(CRLValidity)
	crl.DER, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                crl.ThisUpdate,
		NextUpdate:                crl.NextUpdate,
		RevokedCertificateEntries: entries,
	}, r.Issuer.Certificate, r.Issuer.Signer)
	if err != nil {
		return nil, fmt.Errorf("sign crl: %w", err)
	}
	return crl, nil
}

func crlEntry(serial *big.Int, rev Revocation) x509.RevocationListEntry {
	return x509.RevocationListEntry{
		SerialNumber:   serial,
		RevocationTime: rev.RevokedAt.UTC().Truncate(time.Second),
		ReasonCode:     rev.Reason, // 0 (unspecified) is left out by crypto/x509
	}
}
