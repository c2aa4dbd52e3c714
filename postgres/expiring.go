package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	selectExpiringSQL = `SELECT value FROM expiring WHERE kind = $1 AND key = $2 AND expires > $3`
	putExpiringSQL    = `INSERT INTO expiring (kind, key, value, expires) VALUES ($1, $2, $3, $4)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires = excluded.expires`
	deleteExpiringSQL = `DELETE FROM expiring WHERE kind = $1 AND key = $2`
	pruneExpiringSQL  = `DELETE FROM expiring WHERE expires <= $1`
)

// expiringKey is the lock of (kind, key).
func expiringKey(kind, key string) int32 { return lockKey("expiring", kind, key) }

// Expiring returns the value of (kind, key) unless it expired at now. In
// an Update it stays as read (or absent) until commit, so a counter read
// and written back in one Update counts every increment.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Expiring(ctx context.Context, kind, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := tx.readRecord(ctx, expiringKey(kind, key), func(row pgx.Row) error { return row.Scan(&v) },
		selectExpiringSQL, kind, key, now.UTC())
	if err != nil {
		return nil, storeError(ctx, err, kind+" entry")
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
	return storeError(ctx, tx.lockedExec(ctx, []int32{expiringKey(kind, key)}, putExpiringSQL, kind, key, value, expires.UTC()), kind+" entry")
}

// DeleteExpiring removes (kind, key).
func (tx *Tx) DeleteExpiring(ctx context.Context, kind, key string) error {
	if err := tx.checkWritable("delete " + kind); err != nil {
		return err
	}
	_, err := tx.q.Exec(ctx, deleteExpiringSQL, kind, key)
	return storeError(ctx, err, kind+" entry")
}

// PruneExpiring removes every value that expired before now.
func (tx *Tx) PruneExpiring(ctx context.Context, now time.Time) (int64, error) {
	if err := tx.checkWritable("prune expiring state"); err != nil {
		return 0, err
	}
	tag, err := tx.q.Exec(ctx, pruneExpiringSQL, now.UTC())
	if err != nil {
		return 0, storeError(ctx, fmt.Errorf("prune expiring state: %w", err), "")
	}
	return tag.RowsAffected(), nil
}
