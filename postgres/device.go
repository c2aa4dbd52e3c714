package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// certificatesByIDSQL reads what admission needs, once per device
// handshake: neither the PEM nor the transfer data.
const certificatesByIDSQL = `SELECT certificate_id, account_id, region, ca_certificate_id, status, mode, not_before, not_after, seq
	FROM certificates WHERE certificate_id = $1 ORDER BY seq`

// certificatesAfterSQL reads what certificatesByIDSQL reads, in seq order.
const certificatesAfterSQL = `SELECT certificate_id, account_id, region, ca_certificate_id, status, mode, not_before, not_after, seq
	FROM certificates WHERE seq > $1 ORDER BY seq LIMIT $2`

// scanAdmission reads a row of certificatesByIDSQL or certificatesAfterSQL.
func scanAdmission(rows pgx.Rows) (*fleetcert.Certificate, error) {
	var (
		c                   fleetcert.Certificate
		status, mode        string
		notBefore, notAfter *time.Time
	)
	if err := rows.Scan(&c.ID, &c.AccountID, &c.Region, &c.CACertificateID, &status, &mode, &notBefore, &notAfter, &c.Seq); err != nil {
		return nil, err
	}
	c.Status = fleetcert.Status(status)
	c.Mode = fleetcert.CertificateMode(mode)
	c.NotBefore = fromTime(notBefore)
	c.NotAfter = fromTime(notAfter)
	return &c, nil
}

// CertificatesAfter returns up to limit registrations with a seq above
// afterSeq, with the fields the Tx contract names.
func (tx *Tx) CertificatesAfter(ctx context.Context, afterSeq int64, limit int) ([]*fleetcert.Certificate, error) {
	if limit <= 0 {
		return nil, nil
	}
	var certs []*fleetcert.Certificate
	err := tx.readSet(ctx, nil, func(rows pgx.Rows) error {
		c, err := scanAdmission(rows)
		if err == nil {
			certs = append(certs, c)
		}
		return err
	}, certificatesAfterSQL, afterSeq, limit)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("certificates after %d: %w", afterSeq, err), "")
	}
	return certs, nil
}

// CertificatesByID returns the registrations of client certificate id in
// every account and region, with the fields the Tx contract names. In an
// Update no registration of id is added until commit.
func (tx *Tx) CertificatesByID(ctx context.Context, id string) ([]*fleetcert.Certificate, error) {
	var certs []*fleetcert.Certificate
	err := tx.readSet(ctx, []int32{certificateKey(id)}, func(rows pgx.Rows) error {
		c, err := scanAdmission(rows)
		if err == nil {
			certs = append(certs, c)
		}
		return err
	}, certificatesByIDSQL, id)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("certificates by id: %w", err), "")
	}
	return certs, nil
}

// certificatesBySerialSQL finds the registrations of a serial number in
// every scope (the OCSP responder's lookup).
const certificatesBySerialSQL = `SELECT ` + certificateColumns + `, seq FROM certificates
	WHERE serial = $1 ORDER BY seq`

// unusableByIssuerSQL reads the registrations a CRL of an issuer lists,
// on the partial index of those not ACTIVE.
var unusableByIssuerSQL = `SELECT ` + strings.Replace(certificateColumns, "status, pem,", "status, '' AS pem,", 1) + `, seq
	FROM certificates WHERE issuer = $1 AND status <> 'ACTIVE' AND seq > $2 ORDER BY seq LIMIT $3`

// CertificatesBySerial returns the registrations of the certificates whose
// serial is serial, in every account and region, with every field.
func (tx *Tx) CertificatesBySerial(ctx context.Context, serial []byte) ([]*fleetcert.Certificate, error) {
	if len(serial) == 0 {
		return nil, nil
	}
	return tx.certificateSet(ctx, "certificates by serial", certificatesBySerialSQL, serial)
}

// UnusableCertificatesByIssuer returns up to limit registrations of
// issuer that are not ACTIVE, after afterSeq, in seq order.
func (tx *Tx) UnusableCertificatesByIssuer(ctx context.Context, issuer []byte, afterSeq int64, limit int) ([]*fleetcert.Certificate, error) {
	if len(issuer) == 0 || limit <= 0 {
		return nil, nil
	}
	return tx.certificateSet(ctx, "unusable certificates by issuer", unusableByIssuerSQL, issuer, afterSeq, limit)
}

func (tx *Tx) certificateSet(ctx context.Context, what, query string, args ...any) ([]*fleetcert.Certificate, error) {
	var certs []*fleetcert.Certificate
	err := tx.readSet(ctx, nil, func(rows pgx.Rows) error {
		c, err := scanCertificate(rows)
		if err == nil {
			certs = append(certs, c)
		}
		return err
	}, query, args...)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("%s: %w", what, err), "")
	}
	return certs, nil
}
