package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

// Check that *DB can be copied from (fleetcert migrate).
var _ fleetcert.Exporter = (*DB)(nil)

// Export calls fn with every record of the store, read in one transaction
// (a WAL snapshot), certificates and CA certificates in seq order.
func (db *DB) Export(ctx context.Context, fn func(fleetcert.Record) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer tx.Rollback()
	each := func(query string, scan func(scanner) (fleetcert.Record, error)) error {
		rows, err := tx.QueryContext(ctx, query)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		return nil
	}
	steps := []struct {
		query string
		scan  func(scanner) (fleetcert.Record, error)
	}{
		{`SELECT name, value FROM settings ORDER BY name`, func(s scanner) (fleetcert.Record, error) {
			var st fleetcert.Setting
			err := s.Scan(&st.Name, &st.Value)
			if st.Value == nil {
				st.Value = []byte{}
			}
			return fleetcert.Record{Setting: &st}, err
		}},
		{`SELECT id, secret, account_id, created_at FROM access_keys ORDER BY id`, func(s scanner) (fleetcert.Record, error) {
			var (
				k       fleetcert.AccessKey
				created sql.NullInt64
			)
			err := s.Scan(&k.ID, &k.Secret, &k.AccountID, &created)
			k.CreatedAt = fromNanos(created)
			return fleetcert.Record{AccessKey: &k}, err
		}},
		{`SELECT ` + caColumns + `, seq FROM ca_certificates ORDER BY seq`, func(s scanner) (fleetcert.Record, error) {
			ca, err := scanCA(s)
			return fleetcert.Record{CACertificate: ca}, err
		}},
		{`SELECT account_id, region, code FROM registration_codes ORDER BY account_id, region`, func(s scanner) (fleetcert.Record, error) {
			var c fleetcert.RegistrationCode
			err := s.Scan(&c.AccountID, &c.Region, &c.Code)
			return fleetcert.Record{RegistrationCode: &c}, err
		}},
		{`SELECT ` + certificateColumns + `, seq FROM certificates ORDER BY seq`, func(s scanner) (fleetcert.Record, error) {
			c, err := scanCertificate(s)
			return fleetcert.Record{Certificate: c}, err
		}},
		{`SELECT ` + transferColumns + ` FROM transfers ORDER BY seq`, func(s scanner) (fleetcert.Record, error) {
			t, err := scanTransfer(s)
			return fleetcert.Record{Transfer: t}, err
		}},
		{`SELECT ` + objectColumns + ` FROM objects ORDER BY account_id, region, kind, name`, func(s scanner) (fleetcert.Record, error) {
			o, err := scanObject(s)
			return fleetcert.Record{Object: o}, err
		}},
		{`SELECT ` + linkColumns + ` FROM links ORDER BY account_id, region, kind, "from", "to"`, func(s scanner) (fleetcert.Record, error) {
			l, err := scanLink(s)
			return fleetcert.Record{Link: l}, err
		}},
	}
	for _, st := range steps {
		if err := each(st.query, st.scan); err != nil {
			return err
		}
	}
	return nil
}
