package sqlite

import (
	"context"
	"time"
)

const (
	selectSettingSQL = `SELECT value FROM settings WHERE name = ?1`
	insertSettingSQL = `INSERT INTO settings (name, value, created_at) VALUES (?1, ?2, ?3)`
)

// Setting returns the value of the node-wide setting name.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Setting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	if err := tx.stmt(ctx, tx.stmts.setting).QueryRowContext(ctx, name).Scan(&v); err != nil {
		return nil, storeError(err, "setting "+name)
	}
	return v, nil
}

// CreateSetting stores value under name.
//
// Errors: ResourceAlreadyExistsException when name exists.
func (tx *Tx) CreateSetting(ctx context.Context, name string, value []byte) error {
	if err := tx.checkWritable("create setting"); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := tx.stmt(ctx, tx.stmts.insertSetting).ExecContext(ctx, name, value, time.Now().UnixNano())
	if err != nil {
		return storeError(err, "setting "+name)
	}
	return nil
}
