package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// certificatesByIDSQL reads what admission needs, once per device
// handshake: neither the PEM nor the transfer data.
const certificatesByIDSQL = `SELECT account_id, region, ca_certificate_id, status, mode, not_before, not_after, seq
	FROM certificates INDEXED BY certificates_by_id_number
	WHERE id_number = (SELECT id FROM audit_subjects WHERE certificate_id = ?1) ORDER BY seq`

// certificatesAfterSQL scans the table in rowid (seq) order, reading what
// certificatesByIDSQL reads.
const certificatesAfterSQL = `SELECT certificate_id, account_id, region, ca_certificate_id, status, mode, not_before, not_after, seq
	FROM certificates WHERE seq > ?1 ORDER BY seq LIMIT ?2`

// CertificatesAfter returns up to limit registrations with a seq above
// afterSeq, with the fields the Tx contract names.
func (tx *Tx) CertificatesAfter(ctx context.Context, afterSeq int64, limit int) ([]*fleetcert.Certificate, error) {
	rows, err := tx.stmt(ctx, tx.stmts.certificatesAfter).QueryContext(ctx, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("certificates after %d: %w", afterSeq, err)
	}
	defer rows.Close()
	var certs []*fleetcert.Certificate
	for rows.Next() {
		c := &fleetcert.Certificate{}
		if err := scanAdmission(rows, c, &c.ID); err != nil {
			return nil, fmt.Errorf("certificates after %d: %w", afterSeq, err)
		}
		certs = append(certs, c)
	}
	return certs, rows.Err()
}

// scanAdmission reads a row of certificatesByIDSQL (id nil) or
// certificatesAfterSQL (id set) into c.
func scanAdmission(rows *sql.Rows, c *fleetcert.Certificate, id *string) error {
	var status, mode string
	var notBefore, notAfter sql.NullInt64
	dest := []any{&c.AccountID, &c.Region, &c.CACertificateID, &status, &mode, &notBefore, &notAfter, &c.Seq}
	if id != nil {
		dest = append([]any{id}, dest...)
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	c.Status = fleetcert.Status(status)
	c.Mode = fleetcert.CertificateMode(mode)
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	return nil
}

// CertificatesByID returns the registrations of client certificate id in
// every account and region, with the fields the Tx contract names.
func (tx *Tx) CertificatesByID(ctx context.Context, id string) ([]*fleetcert.Certificate, error) {
	rows, err := tx.stmt(ctx, tx.stmts.certificatesByID).QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("certificates by id: %w", err)
	}
	defer rows.Close()
	var certs []*fleetcert.Certificate
	for rows.Next() {
		c := &fleetcert.Certificate{ID: id}
		if err := scanAdmission(rows, c, nil); err != nil {
			return nil, fmt.Errorf("certificates by id: %w", err)
		}
		certs = append(certs, c)
	}
	return certs, rows.Err()
}

// certificatesBySerialSQL finds the registrations of a serial number in
// every scope (the OCSP responder's lookup).
const certificatesBySerialSQL = `SELECT ` + certificateColumns + `, seq FROM certificates
	INDEXED BY certificates_by_serial WHERE serial = ?1 ORDER BY seq`

// unusableByIssuerSQL reads the registrations a CRL of an issuer lists,
// on the partial index of those not ACTIVE.
var unusableByIssuerSQL = `SELECT ` + strings.Replace(certificateColumns, "status, pem,", "status, '' AS pem,", 1) + `, seq
	FROM certificates INDEXED BY certificates_unusable_by_issuer
	WHERE issuer = ?1 AND status <> 'ACTIVE' AND seq > ?2 ORDER BY seq LIMIT ?3`

// CertificatesBySerial returns the registrations of the certificates whose
// serial is serial, in every account and region, with every field.
func (tx *Tx) CertificatesBySerial(ctx context.Context, serial []byte) ([]*fleetcert.Certificate, error) {
	if len(serial) == 0 {
		return nil, nil
	}
	rows, err := tx.stmt(ctx, tx.stmts.certificatesBySerial).QueryContext(ctx, serial)
	certs, err := scanCertificateList(rows, err, 4)
	if err != nil {
		return nil, fmt.Errorf("certificates by serial: %w", err)
	}
	return certs, nil
}

// UnusableCertificatesByIssuer returns up to limit registrations of
// issuer that are not ACTIVE, after afterSeq, in seq order.
func (tx *Tx) UnusableCertificatesByIssuer(ctx context.Context, issuer []byte, afterSeq int64, limit int) ([]*fleetcert.Certificate, error) {
	if len(issuer) == 0 || limit <= 0 {
		return nil, nil
	}
	rows, err := tx.stmt(ctx, tx.stmts.unusableByIssuer).QueryContext(ctx, issuer, afterSeq, limit)
	certs, err := scanCertificateList(rows, err, limit)
	if err != nil {
		return nil, fmt.Errorf("unusable certificates by issuer: %w", err)
	}
	return certs, nil
}
