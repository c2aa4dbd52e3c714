package sqlite

import (
	"context"
	"fmt"
	"time"
)

const (
	selectExpiringSQL = `SELECT value FROM expiring WHERE kind = ?1 AND key = ?2 AND expires > ?3`
	putExpiringSQL    = `INSERT INTO expiring (kind, key, value, expires) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires = excluded.expires`
	deleteExpiringSQL = `DELETE FROM expiring WHERE kind = ?1 AND key = ?2`
	pruneExpiringSQL  = `DELETE FROM expiring WHERE expires <= ?1`
)

// Expiring returns the value of (kind, key) unless it expired at now.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Expiring(ctx context.Context, kind, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := tx.stmt(ctx, tx.stmts.expiring).QueryRowContext(ctx, kind, key, now.UnixNano()).Scan(&v)
	if err != nil {
		return nil, storeError(err, kind+" entry")
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutExpiring stores value under (kind, key) until expires.
func (tx *Tx) PutExpiring(ctx context.Context, kind, key string, value []byte, expires time.Time) error {
	if err := tx.checkWritable("put " + kind); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := tx.stmt(ctx, tx.stmts.putExpiring).ExecContext(ctx, kind, key, value, expires.UnixNano())
	return storeError(err, kind+" entry")
}

// DeleteExpiring removes (kind, key).
func (tx *Tx) DeleteExpiring(ctx context.Context, kind, key string) error {
	if err := tx.checkWritable("delete " + kind); err != nil {
		return err
	}
	_, err := tx.stmt(ctx, tx.stmts.deleteExpiring).ExecContext(ctx, kind, key)
	return storeError(err, kind+" entry")
}

// PruneExpiring removes every value that expired before now.
func (tx *Tx) PruneExpiring(ctx context.Context, now time.Time) (int64, error) {
	if err := tx.checkWritable("prune expiring state"); err != nil {
		return 0, err
	}
	res, err := tx.stmt(ctx, tx.stmts.pruneExpiring).ExecContext(ctx, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune expiring state: %w", err)
	}
	return res.RowsAffected()
}
