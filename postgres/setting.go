package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

const (
	selectSettingSQL = `SELECT value FROM settings WHERE name = $1`
	insertSettingSQL = `INSERT INTO settings (name, value) VALUES ($1, $2)`
)

// settingKey is the lock of setting name.
func settingKey(name string) int32 { return lockKey("setting", name) }

// Setting returns the value of the node-wide setting name. In an Update it
// stays as read (or absent) until commit.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Setting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := tx.readRecord(ctx, settingKey(name), func(row pgx.Row) error { return row.Scan(&v) }, selectSettingSQL, name)
	if err != nil {
		return nil, storeError(ctx, err, "setting "+name)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// CreateSetting stores value under name. Nodes creating one setting at
// once queue on its key's lock; all but the first then find it taken.
//
// Errors: ResourceAlreadyExistsException when name exists.
func (tx *Tx) CreateSetting(ctx context.Context, name string, value []byte) error {
	if err := tx.checkWritable("create setting"); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return storeError(ctx, tx.lockedExec(ctx, []int32{settingKey(name)}, insertSettingSQL, name, value), "setting "+name)
}
