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
// (migration 0004) of the rows stored before them, from each row's PEM. A
// row whose PEM does not parse (never written by the Registry) gets an
// empty common name and no issuer, so it is not read again.
func (db *DB) backfillCertificates(ctx context.Context) error {
	for {
		n, err := db.backfillBatch(ctx)
		if err != nil {
			return fmt.Errorf("fill certificate issuers: %w", err)
		}
		if n < backfillBatch {
			break
		}
	}
	for {
		n, err := db.backfillSerialBatch(ctx)
		if err != nil {
			return fmt.Errorf("fill certificate serials: %w", err)
		}
		if n < backfillBatch {
			return nil
		}
	}
}

// backfillSerialBatch fills serial (migration 0011) of up to backfillBatch
// rows stored before it; a row whose PEM does not parse gets an empty one.
func (db *DB) backfillSerialBatch(ctx context.Context) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, pem FROM certificates INDEXED BY certificates_serial_unfilled
		WHERE serial IS NULL ORDER BY seq LIMIT ?`, backfillBatch)
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
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET serial = ? WHERE seq = ?`, keyID(c.Serial), r.seq); err != nil {
			return 0, err
		}
	}
	return len(todo), tx.Commit()
}

func (db *DB) backfillBatch(ctx context.Context) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, pem FROM certificates INDEXED BY certificates_unfilled
		WHERE common_name IS NULL ORDER BY seq LIMIT ?`, backfillBatch)
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
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET issuer = ?, authority_key_id = ?, common_name = ? WHERE seq = ?`,
			blob(c.Issuer), keyID(c.AuthorityKeyID), c.CommonName, r.seq); err != nil {
			return 0, err
		}
	}
	return len(todo), tx.Commit()
}
