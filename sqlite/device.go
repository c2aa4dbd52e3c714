package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

// certificatesByIDSQL reads what admission needs, once per device
// handshake: neither the PEM nor the transfer data.
const certificatesByIDSQL = `SELECT account_id, region, ca_certificate_id, status, not_before, not_after, seq
	FROM certificates INDEXED BY certificates_by_id WHERE certificate_id = ?1 ORDER BY seq`

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
		var status string
		var notBefore, notAfter sql.NullInt64
		if err := rows.Scan(&c.AccountID, &c.Region, &c.CACertificateID, &status, &notBefore, &notAfter, &c.Seq); err != nil {
			return nil, fmt.Errorf("certificates by id: %w", err)
		}
		c.Status = fleetcert.Status(status)
		c.NotBefore = fromMicros(notBefore)
		c.NotAfter = fromMicros(notAfter)
		certs = append(certs, c)
	}
	return certs, rows.Err()
}
