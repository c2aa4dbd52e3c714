package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

const (
	insertChangeSQL = `INSERT INTO changes (kind, account_id, region, certificate_id, old_status, new_status, time)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`
	selectChangesSQL = `SELECT seq, kind, account_id, region, certificate_id, old_status, new_status, time
		FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2`
)

// AppendChange appends ch to the change feed and sets ch.Seq. The feed's
// sequence is never reused, and since SQLite has one writer at a time,
// entries commit in Seq order: a reader never sees a later Seq before an
// earlier one.
func (tx *Tx) AppendChange(ctx context.Context, ch *fleetcert.Change) error {
	if err := tx.checkWritable("append change"); err != nil {
		return err
	}
	var e encoder
	t := e.nanos(ch.Time)
	if e.err != nil {
		return fmt.Errorf("append change: %w", e.err)
	}
	res, err := tx.stmt(ctx, tx.stmts.insertChange).ExecContext(ctx, string(ch.Kind), ch.Scope.AccountID, ch.Scope.Region,
		ch.CertificateID, string(ch.OldStatus), string(ch.NewStatus), t)
	if err != nil {
		return fmt.Errorf("append change: %w", err)
	}
	if ch.Seq, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("append change: %w", err)
	}
	return nil
}

// Changes returns up to limit entries of the change feed with Seq > after,
// in Seq order.
func (db *DB) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.readStmts.changes.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	var changes []fleetcert.Change
	for rows.Next() {
		var (
			ch                         fleetcert.Change
			kind, oldStatus, newStatus string
			t                          sql.NullInt64
		)
		if err := rows.Scan(&ch.Seq, &kind, &ch.Scope.AccountID, &ch.Scope.Region, &ch.CertificateID,
			&oldStatus, &newStatus, &t); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		ch.Kind = fleetcert.ChangeKind(kind)
		ch.OldStatus = fleetcert.Status(oldStatus)
		ch.NewStatus = fleetcert.Status(newStatus)
		ch.Time = fromNanos(t)
		changes = append(changes, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return changes, nil
}
