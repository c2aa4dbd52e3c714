package postgres

import (
	"context"
	"fmt"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// Check that *DB can be copied from and verified as a copy's target.
var _ fleetcert.Exporter = (*DB)(nil)

// Export calls fn with every record of the database, read in one
// REPEATABLE READ transaction (one snapshot), certificates and CA
// certificates in seq order.
func (db *DB) Export(ctx context.Context, fn func(fleetcert.Record) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return storeError(ctx, fmt.Errorf("export: %w", err), "")
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	steps := []struct {
		query string
		scan  func(pgx.Rows) (fleetcert.Record, error)
	}{
		{`SELECT name, value FROM settings ORDER BY name`, func(r pgx.Rows) (fleetcert.Record, error) {
			st := fleetcert.Setting{Value: []byte{}}
			err := r.Scan(&st.Name, &st.Value)
			return fleetcert.Record{Setting: &st}, err
		}},
		{`SELECT id, secret, account_id, created_at FROM access_keys ORDER BY id`, func(r pgx.Rows) (fleetcert.Record, error) {
			var k fleetcert.AccessKey
			err := r.Scan(&k.ID, &k.Secret, &k.AccountID, &k.CreatedAt)
			k.CreatedAt = k.CreatedAt.UTC()
			return fleetcert.Record{AccessKey: &k}, err
		}},
		{`SELECT ` + caColumns + `, seq FROM ca_certificates ORDER BY seq`, func(r pgx.Rows) (fleetcert.Record, error) {
			ca, err := scanCA(r)
			return fleetcert.Record{CACertificate: ca}, err
		}},
		{`SELECT account_id, region, code FROM registration_codes ORDER BY account_id, region`, func(r pgx.Rows) (fleetcert.Record, error) {
			var c fleetcert.RegistrationCode
			err := r.Scan(&c.AccountID, &c.Region, &c.Code)
			return fleetcert.Record{RegistrationCode: &c}, err
		}},
		{`SELECT ` + certificateColumns + `, seq FROM certificates ORDER BY seq`, func(r pgx.Rows) (fleetcert.Record, error) {
			c, err := scanCertificate(r)
			return fleetcert.Record{Certificate: c}, err
		}},
		{`SELECT ` + transferColumns + ` FROM transfers ORDER BY seq`, func(r pgx.Rows) (fleetcert.Record, error) {
			t, err := scanTransfer(r)
			return fleetcert.Record{Transfer: t}, err
		}},
		{`SELECT ` + objectColumns + ` FROM objects ORDER BY account_id, region, kind, name`, func(r pgx.Rows) (fleetcert.Record, error) {
			o, err := scanObject(r)
			return fleetcert.Record{Object: o}, err
		}},
		{`SELECT ` + linkColumns + ` FROM links ORDER BY account_id, region, kind, "from", "to"`, func(r pgx.Rows) (fleetcert.Record, error) {
			l, err := scanLink(r)
			return fleetcert.Record{Link: l}, err
		}},
	}
	for _, st := range steps {
		if err := exportRows(ctx, tx, st.query, st.scan, fn); err != nil {
			return err
		}
	}
	return nil
}

func exportRows(ctx context.Context, tx pgx.Tx, query string, scan func(pgx.Rows) (fleetcert.Record, error), fn func(fleetcert.Record) error) error {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return storeError(ctx, fmt.Errorf("export: %w", err), "")
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return storeError(ctx, fmt.Errorf("export: %w", err), "")
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return storeError(ctx, fmt.Errorf("export: %w", err), "")
	}
	return nil
}
