package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

const (
	selectAccessKeySQL = `SELECT id, secret, account_id, created_at FROM access_keys WHERE id = $1`
	insertAccessKeySQL = `INSERT INTO access_keys (id, secret, account_id, created_at) VALUES ($1, $2, $3, $4)`
	countAccessKeysSQL = `SELECT count(*) FROM access_keys`
	deleteAccessKeySQL = `DELETE FROM access_keys WHERE id = $1`
	// The table is small (keys are made by hand), so listing by account
	// needs no index of its own. COLLATE "C": byte-wise order whatever the
	// database's locale.
	listAccessKeysSQL = `SELECT id, account_id, created_at FROM access_keys
		WHERE ($1 = '' OR account_id = $1) AND id COLLATE "C" > $2 ORDER BY id COLLATE "C" LIMIT $3`
)

// accessKeyKey is the lock of access key id.
func accessKeyKey(id string) int32 { return lockKey("access-key", id) }

// AccessKey returns the access key id. In an Update it stays as read (or
// absent) until commit: two nodes storing one bootstrap key at once store
// it once.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) AccessKey(ctx context.Context, id string) (*fleetcert.AccessKey, error) {
	var (
		k       fleetcert.AccessKey
		created time.Time
	)
	err := tx.readRecord(ctx, accessKeyKey(id), func(row pgx.Row) error {
		return row.Scan(&k.ID, &k.Secret, &k.AccountID, &created)
	}, selectAccessKeySQL, id)
	if err != nil {
		return nil, storeError(ctx, err, "access key "+id)
	}
	k.CreatedAt = created.UTC()
	return &k, nil
}

// CreateAccessKey stores a new access key.
//
// Errors: ResourceAlreadyExistsException when its id exists.
func (tx *Tx) CreateAccessKey(ctx context.Context, k *fleetcert.AccessKey) error {
	if err := tx.checkWritable("create access key"); err != nil {
		return err
	}
	err := tx.lockedExec(ctx, []int32{accessKeyKey(k.ID)}, insertAccessKeySQL, k.ID, k.Secret, k.AccountID, k.CreatedAt.UTC())
	return storeError(ctx, err, "access key "+k.ID)
}

// CountAccessKeys returns how many access keys exist in all accounts.
func (tx *Tx) CountAccessKeys(ctx context.Context) (int, error) {
	var n int
	if err := tx.q.QueryRow(ctx, countAccessKeysSQL).Scan(&n); err != nil {
		return 0, storeError(ctx, fmt.Errorf("count access keys: %w", err), "")
	}
	return n, nil
}

// DeleteAccessKey removes the access key id.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteAccessKey(ctx context.Context, id string) error {
	if err := tx.checkWritable("delete access key"); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, deleteAccessKeySQL, id)
	return rowsAffected(ctx, tag.RowsAffected(), err, "access key "+id)
}

// ListAccessKeys returns a page of access keys in id order, without their
// secrets.
func (tx *Tx) ListAccessKeys(ctx context.Context, q fleetcert.AccessKeyQuery) ([]*fleetcert.AccessKey, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	rows, err := tx.q.Query(ctx, listAccessKeysSQL, q.AccountID, q.After, q.Limit)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("list access keys: %w", err), "")
	}
	defer rows.Close()
	var keys []*fleetcert.AccessKey
	for rows.Next() {
		var (
			k       fleetcert.AccessKey
			created time.Time
		)
		if err := rows.Scan(&k.ID, &k.AccountID, &created); err != nil {
			return nil, storeError(ctx, fmt.Errorf("list access keys: %w", err), "")
		}
		k.CreatedAt = created.UTC()
		keys = append(keys, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(ctx, fmt.Errorf("list access keys: %w", err), "")
	}
	return keys, nil
}
