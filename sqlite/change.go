package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
)

const (
	insertChangeSQL = `INSERT INTO changes (kind, account_id, region, certificate_id, old_status, new_status, time, client_id, session_id,
			resource, target)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)`
	selectChangesSQL = `SELECT seq, kind, account_id, region, certificate_id, old_status, new_status, time, client_id, session_id,
			resource, target
		FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2`
	selectChangesHorizonSQL = `SELECT pruned_seq FROM change_horizon`
	selectChangesHeadSQL    = `SELECT max(coalesce((SELECT max(seq) FROM changes), 0), pruned_seq) FROM change_horizon`
)

// AppendChange appends ch to the change feed and sets ch.Seq, and writes
// its audit entry when it has an Operation. The feed's
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
		ch.CertificateID, string(ch.OldStatus), string(ch.NewStatus), t, ch.ClientID, ch.SessionID,
		ch.Resource, ch.Target)
	if err != nil {
		return fmt.Errorf("append change: %w", err)
	}
	if ch.Seq, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("append change: %w", err)
	}
	tx.keep(ch, t)
	if ch.Operation != "" {
		return tx.appendAudit(ctx, ch, t)
	}
	return nil
}

// keep records ch, just appended with time t, for the commit's report
// (DB.ReportCommits): as Changes would read it back, with its Registration.
func (tx *Tx) keep(ch *fleetcert.Change, t sql.NullInt64) {
	if !tx.report {
		return
	}
	tx.reported = append(tx.reported, fleetcert.Change{
		Seq: ch.Seq, Kind: ch.Kind, Scope: ch.Scope, CertificateID: ch.CertificateID,
		OldStatus: ch.OldStatus, NewStatus: ch.NewStatus, Time: fromNanos(t),
		ClientID: ch.ClientID, SessionID: ch.SessionID, Resource: ch.Resource, Target: ch.Target,
		Registration: ch.Registration,
	})
}

// Changes returns up to limit entries of the change feed with Seq > after,
// in Seq order, or an error wrapping fleetcert.ErrChangesPruned when after
// is below the pruned horizon.
func (db *DB) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	if limit <= 0 {
		return nil, nil
	}
	changes, err := db.changes(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	// The horizon is read after the entries, each statement seeing the
	// latest commit: if it is still at or below after now, it was when the
	// entries were read, so none between after and them had been pruned.
	var horizon int64
	if err := db.readStmts.changesHorizon.QueryRowContext(ctx).Scan(&horizon); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	if after < horizon {
		return nil, fmt.Errorf("read changes after %d (pruned through %d): %w", after, horizon, fleetcert.ErrChangesPruned)
	}
	return changes, nil
}

// ChangesHead returns the Seq of the newest committed change: the larger of
// the newest entry's and the pruned horizon, so that pruning every entry
// leaves it unchanged. SQLite commits one writer at a time, so every Seq
// below it has committed or never will.
func (db *DB) ChangesHead(ctx context.Context) (int64, error) {
	var head int64
	if err := db.readStmts.changesHead.QueryRowContext(ctx).Scan(&head); err != nil {
		return 0, fmt.Errorf("read change feed head: %w", err)
	}
	return head, nil
}

// PruneChanges removes the changes whose Time is before before, and with
// them any entry of a lower Seq (which no Changes call could return any
// more), and moves the pruned horizon to the highest Seq removed. It
// returns how many entries it removed.
func (db *DB) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	var e encoder
	t := e.nanos(before)
	if e.err != nil {
		return 0, fmt.Errorf("prune changes: %w", e.err)
	}
	// The feed has no index on time (one per append would cost every
	// write): the scan runs on a reader, outside the write lock, and the
	// delete is a range of the primary key.
	var upTo sql.NullInt64
	if err := db.read.QueryRowContext(ctx, `SELECT max(seq) FROM changes WHERE time < ?1`, t).Scan(&upTo); err != nil {
		return 0, fmt.Errorf("prune changes: %w", err)
	}
	if !upTo.Valid {
		return 0, nil
	}
	var n int64
	err := db.UpdateBulk(ctx, func(ftx fleetcert.Tx) error {
		tx := ftx.(*Tx).tx
		res, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE seq <= ?1`, upTo.Int64)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE change_horizon SET pruned_seq = max(pruned_seq, ?1)`, upTo.Int64)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune changes: %w", err)
	}
	return n, nil
}

func (db *DB) changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
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
			&oldStatus, &newStatus, &t, &ch.ClientID, &ch.SessionID, &ch.Resource, &ch.Target); err != nil {
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
