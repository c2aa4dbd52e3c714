package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// appendAuditedChangeSQL is appendChangeSQL that also writes the change's
// audit entry with its seq: one statement, one round trip, no read.
const appendAuditedChangeSQL = `WITH head AS (
		UPDATE change_feed SET seq = seq + 1 WHERE name = 'head' RETURNING seq
	), notify AS (
		SELECT pg_notify('` + notifyChannel + `', '')
	), ch AS (
		INSERT INTO changes (seq, kind, account_id, region, certificate_id, old_status, new_status, time, client_id, session_id,
			resource, target, ` + registrationColumns + `)
		SELECT head.seq, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::timestamptz, $8::text, $9::text,
			$10::text, $11::text, $12::text, $13::text, $14::timestamptz, $15::timestamptz, $16::bigint
		FROM head, notify
		RETURNING seq
	), audit AS (
		INSERT INTO audit (seq, time, account_id, region, operation, kind, certificate_id, old_status, new_status,
			resource, target, actor, actor_account, source_ip)
		SELECT ch.seq, $7::timestamptz, $2::text, $3::text, $17::text, $1::text, $4::text, $5::text, $6::text,
			$10::text, $11::text, $18::text, $19::text, $20::text
		FROM ch
	)
	SELECT seq FROM ch`

// auditPruneBatch bounds the rows one pruning statement deletes, so that a
// busy day's entries go in short transactions.
const auditPruneBatch = 10_000

const pruneAuditSQL = `DELETE FROM audit WHERE (time, seq) IN (
		SELECT time, seq FROM audit WHERE time < $1 ORDER BY time, seq LIMIT $2
	)`

// AuditEntries returns a page of the audit log; see fleetcert.Tx. The
// query is built for the filters set: with a certificate or a resource it
// reads that index's range, else the time index's, in the order listed.
func (tx *Tx) AuditEntries(ctx context.Context, q fleetcert.AuditQuery) ([]fleetcert.AuditEntry, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any, typ string) string {
		args = append(args, v)
		return fmt.Sprintf("$%d::%s", len(args), typ)
	}
	// The partial indexes hold only non-empty keys: saying so lets the
	// planner use them with a parameter.
	switch {
	case q.CertificateID != "":
		where = append(where, "certificate_id = "+arg(q.CertificateID, "text"), "certificate_id <> ''")
		if q.Resource != "" {
			where = append(where, "resource = "+arg(q.Resource, "text"))
		}
	case q.Resource != "":
		where = append(where, "resource = "+arg(q.Resource, "text"), "resource <> ''")
	}
	if q.AccountID != "" {
		where = append(where, "account_id = "+arg(q.AccountID, "text"))
	}
	if q.Region != "" {
		where = append(where, "region = "+arg(q.Region, "text"))
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= "+arg(q.Since.UTC(), "timestamptz"))
	}
	if !q.Until.IsZero() {
		where = append(where, "time < "+arg(q.Until.UTC(), "timestamptz"))
	}
	order, cmp := "ASC", ">"
	if q.Newest {
		order, cmp = "DESC", "<"
	}
	if q.After != nil {
		where = append(where, fmt.Sprintf("(time, seq) %s (%s, %s)", cmp,
			arg(q.After.Time.UTC(), "timestamptz"), arg(q.After.Seq, "bigint")))
	}
	query := `SELECT seq, time, account_id, region, operation, kind, certificate_id, old_status, new_status,
		resource, target, actor, actor_account, source_ip FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY time %s, seq %s LIMIT %s", order, order, arg(q.Limit, "bigint"))
	rows, err := tx.q.Query(ctx, query, args...)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("audit entries: %w", err), "")
	}
	defer rows.Close()
	var entries []fleetcert.AuditEntry
	for rows.Next() {
		var (
			a                          fleetcert.AuditEntry
			t                          time.Time
			kind, oldStatus, newStatus string
		)
		if err := rows.Scan(&a.Seq, &t, &a.Scope.AccountID, &a.Scope.Region, &a.Operation, &kind, &a.CertificateID,
			&oldStatus, &newStatus, &a.Resource, &a.Target, &a.Actor, &a.ActorAccount, &a.SourceIP); err != nil {
			return nil, fmt.Errorf("audit entries: %w", err)
		}
		a.Time = t.UTC()
		a.Kind = fleetcert.ChangeKind(kind)
		a.OldStatus = fleetcert.Status(oldStatus)
		a.NewStatus = fleetcert.Status(newStatus)
		entries = append(entries, a)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(ctx, fmt.Errorf("audit entries: %w", err), "")
	}
	return entries, nil
}

// PruneAudit removes the audit entries whose Time is before `before`, at
// most auditPruneBatch rows per statement, and returns how many it
// removed.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, pruneAuditSQL, before.UTC(), auditPruneBatch)
		if err != nil {
			return total, storeError(ctx, fmt.Errorf("prune audit log: %w", err), "")
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < auditPruneBatch {
			return total, nil
		}
	}
}
