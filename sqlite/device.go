package sqlite

import (
	"context"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

const certificatesByIDSQL = `SELECT ` + certificateColumns + `, seq FROM certificates
	INDEXED BY certificates_by_id WHERE certificate_id = ?1 ORDER BY seq`

// CertificatesByID returns the registrations of client certificate id in
// every account and region.
func (tx *Tx) CertificatesByID(ctx context.Context, id string) ([]*fleetcert.Certificate, error) {
	rows, err := tx.stmt(ctx, tx.stmts.certificatesByID).QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("certificates by id: %w", err)
	}
	defer rows.Close()
	var certs []*fleetcert.Certificate
	for rows.Next() {
		c, err := scanCertificate(rows)
		if err != nil {
			return nil, fmt.Errorf("certificates by id: %w", err)
		}
		certs = append(certs, c)
	}
	return certs, rows.Err()
}
