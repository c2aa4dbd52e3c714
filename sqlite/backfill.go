package sqlite

import (
	"context"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

// backfillBatch is how many rows one backfill transaction fills, so that
// the write lock is not held for the whole table at once.
const backfillBatch = 1000

// backfillCertificates fills issuer, authority_key_id and common_name
// (migration 0004), then serial (migration 0011), of the rows stored before
// them, from each row's PEM. A row whose PEM does not parse (never written
// by the Registry) gets an empty common name, no issuer and an empty
// serial, so it is not read again.
func (db *DB) backfillCertificates(ctx context.Context) error {
	for _, f := range []backfill{
		{"issuers", `SELECT seq, pem FROM certificates INDEXED BY certificates_unfilled
			WHERE common_name IS NULL ORDER BY seq LIMIT ?`,
			`UPDATE certificates SET issuer = ?, authority_key_id = ?, common_name = ? WHERE seq = ?`,
			func(c *fleetcert.Certificate) []any {
				return []any{blob(c.Issuer), keyID(c.AuthorityKeyID), c.CommonName}
			}},
		{"serials", `SELECT seq, pem FROM certificates INDEXED BY certificates_serial_unfilled
			WHERE serial IS NULL ORDER BY seq LIMIT ?`,
			`UPDATE certificates SET serial = ? WHERE seq = ?`,
			func(c *fleetcert.Certificate) []any { return []any{keyID(c.Serial)} }},
	} {
		for {
			n, err := db.backfillBatch(ctx, f)
			if err != nil {
				return fmt.Errorf("fill certificate %s: %w", f.what, err)
			}
			if n < backfillBatch {
				break
			}
		}
	}
	return nil
}

// backfill is one column set to fill: the rows to fill (a page of
// backfillBatch, the limit its one parameter), and the update of one row
// by seq from the values its certificate gives.
type backfill struct {
	what          string
	query, update string
	values        func(*fleetcert.Certificate) []any
}

// backfillBatch fills up to backfillBatch rows of f in one transaction and
// returns how many it read.
func (db *DB) backfillBatch(ctx context.Context, f backfill) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, f.query, backfillBatch)
	if err != nil {
		return 0, err
	}
	type row struct {
		seq int64
		pem string
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.pem); err != nil {
			rows.Close()
			return 0, err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range todo {
		var c fleetcert.Certificate
		if cert, err := fleetcert.ParseCertificatePEM("pem", r.pem); err == nil {
			c.SetX509Fields(cert)
		}
		if _, err := tx.ExecContext(ctx, f.update, append(f.values(&c), r.seq)...); err != nil {
			return 0, err
		}
	}
	return len(todo), tx.Commit()
}
