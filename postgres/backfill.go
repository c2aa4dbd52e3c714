package postgres

import (
	"context"
	"fmt"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// backfillBatch is how many rows one backfill statement fills.
const backfillBatch = 1000

// backfillSerials fills serial (migration 0007) of the rows stored before
// it, from each row's PEM; a row whose PEM does not parse gets an empty
// one, so it is not read again. Nodes starting together may fill the same
// rows: they write the same values.
func (db *DB) backfillSerials(ctx context.Context) error {
	for {
		rows, err := db.pool.Query(ctx, `SELECT seq, pem FROM certificates WHERE serial IS NULL ORDER BY seq LIMIT $1`, backfillBatch)
		if err != nil {
			return fmt.Errorf("fill certificate serials: %w", err)
		}
		type row struct {
			seq int64
			pem string
		}
		todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.seq, &x.pem)
		})
		if err != nil {
			return fmt.Errorf("fill certificate serials: %w", err)
		}
		batch := &pgx.Batch{}
		for _, r := range todo {
			serial := []byte{}
			if cert, err := fleetcert.ParseCertificatePEM("pem", r.pem); err == nil {
				var c fleetcert.Certificate
				c.SetX509Fields(cert)
				if c.Serial != nil {
					serial = c.Serial
				}
			}
			batch.Queue(`UPDATE certificates SET serial = $1 WHERE seq = $2`, serial, r.seq)
		}
		if len(todo) > 0 {
			if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
				return fmt.Errorf("fill certificate serials: %w", err)
			}
		}
		if len(todo) < backfillBatch {
			return nil
		}
	}
}
