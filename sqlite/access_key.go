package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

const (
	selectAccessKeySQL = `SELECT id, secret, account_id, created_at FROM access_keys WHERE id = ?1`
	insertAccessKeySQL = `INSERT INTO access_keys (id, secret, account_id, created_at) VALUES (?1, ?2, ?3, ?4)`
	countAccessKeysSQL = `SELECT count(*) FROM access_keys`
	deleteAccessKeySQL = `DELETE FROM access_keys WHERE id = ?1`
	// The table is small (keys are made by hand), so listing by account
	// needs no index of its own.
	listAccessKeysSQL = `SELECT id, account_id, created_at FROM access_keys
		WHERE (?1 = '' OR account_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3`
)

// AccessKey returns the access key id.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) AccessKey(ctx context.Context, id string) (*fleetcert.AccessKey, error) {
	var (
		k       fleetcert.AccessKey
		created sql.NullInt64
	)
	err := tx.stmt(ctx, tx.stmts.accessKey).QueryRowContext(ctx, id).Scan(&k.ID, &k.Secret, &k.AccountID, &created)
	if err != nil {
		return nil, storeError(err, "access key "+id)
	}
	k.CreatedAt = fromNanos(created)
	return &k, nil
}

// CreateAccessKey stores a new access key.
//
// Errors: ResourceAlreadyExistsException when its id exists.
func (tx *Tx) CreateAccessKey(ctx context.Context, k *fleetcert.AccessKey) error {
	if err := tx.checkWritable("create access key"); err != nil {
		return err
	}
	var e encoder
	created := e.nanos(k.CreatedAt)
	if e.err != nil {
		return fmt.Errorf("access key %s: %w", k.ID, e.err)
	}
	_, err := tx.stmt(ctx, tx.stmts.insertAccessKey).ExecContext(ctx, k.ID, k.Secret, k.AccountID, created)
	return storeError(err, "access key "+k.ID)
}

// CountAccessKeys returns how many access keys exist in all accounts.
func (tx *Tx) CountAccessKeys(ctx context.Context) (int, error) {
	var n int
	if err := tx.stmt(ctx, tx.stmts.countAccessKeys).QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("count access keys: %w", err)
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
	res, err := tx.stmt(ctx, tx.stmts.deleteAccessKey).ExecContext(ctx, id)
	return rowsAffected(res, err, "access key "+id)
}

// ListAccessKeys returns a page of access keys in id order, without their
// secrets.
func (tx *Tx) ListAccessKeys(ctx context.Context, q fleetcert.AccessKeyQuery) ([]*fleetcert.AccessKey, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	rows, err := tx.stmt(ctx, tx.stmts.listAccessKeys).QueryContext(ctx, q.AccountID, q.After, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list access keys: %w", err)
	}
	defer rows.Close()
	var keys []*fleetcert.AccessKey
	for rows.Next() {
		var (
			k       fleetcert.AccessKey
			created sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.AccountID, &created); err != nil {
			return nil, fmt.Errorf("list access keys: %w", err)
		}
		k.CreatedAt = fromNanos(created)
		keys = append(keys, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list access keys: %w", err)
	}
	return keys, nil
}
