package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// insertAuditSQL writes one audit entry, with its certificate id's number
// (audit_subjects, migration 0013) as ?15: subjectSQL looks it up first,
// and insertSubjectSQL gives an id without one (a CA's) its number. A client
// certificate's id is numbered when the certificate is stored, so an entry
// about one costs a single lookup of its number, and the entry that follows
// its registration none (Tx.numbered). (Returning the number
// from the insert instead made SQLite keep a statement journal for it, a
// quarter of a seeded registration's CPU.)
const insertAuditSQL = `INSERT INTO audit (seq, time, account_id, region, operation, kind, certificate_id, old_status, new_status,
		resource, target, actor, actor_account, source_ip, subject)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)`

// subjectSQL is certificate id ?1's number.
const subjectSQL = `SELECT id FROM audit_subjects WHERE certificate_id = ?1`

// insertSubjectSQL numbers certificate id ?1 for the audit log's index
// (migration 0013), unless it is numbered or empty. CreateCertificate runs
// it, so that certificates are numbered in the order they were created,
// whether or not an audit entry names them.
const insertSubjectSQL = `INSERT OR IGNORE INTO audit_subjects (certificate_id) SELECT ?1 WHERE ?1 <> ''`

// numberSubjectsSQL numbers the ids of the audit entries ?1 … ?2 written
// without a number (ids never stored as a client certificate's: a CA's),
// and fillSubjectsSQL then sets the entries' numbers. Both read the
// entries just written, by seq; neither looks up an id that has a number.
const (
	numberSubjectsSQL = `INSERT OR IGNORE INTO audit_subjects (certificate_id)
	SELECT certificate_id FROM audit WHERE seq BETWEEN ?1 AND ?2 AND subject IS NULL AND certificate_id <> '' ORDER BY seq`
	fillSubjectsSQL = `UPDATE audit SET subject = (SELECT id FROM audit_subjects s WHERE s.certificate_id = audit.certificate_id)
	WHERE seq BETWEEN ?1 AND ?2 AND subject IS NULL AND certificate_id <> ''`
)

// auditPruneBatch bounds the rows one pruning transaction deletes, so that
// pruning a busy day's entries holds the write lock for short spells.
const auditPruneBatch = 10_000

// appendAudit writes ch's audit entry (AppendChange, once ch.Seq is set):
// the lookup of its id's number, and one insert.
func (tx *Tx) appendAudit(ctx context.Context, ch *fleetcert.Change, t sql.NullInt64) error {
	subject, err := tx.subject(ctx, ch.CertificateID)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	_, err = tx.stmt(ctx, tx.stmts.insertAudit).ExecContext(ctx, ch.Seq, t, ch.Scope.AccountID, ch.Scope.Region,
		ch.Operation, string(ch.Kind), ch.CertificateID, string(ch.OldStatus), string(ch.NewStatus),
		ch.Resource, ch.Target, ch.Actor, ch.ActorAccount, ch.SourceIP, subject)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// subject returns certificate id's number, numbering it if it has none;
// NULL for no id.
func (tx *Tx) subject(ctx context.Context, id string) (sql.NullInt64, error) {
	var n sql.NullInt64
	if id == "" {
		return n, nil
	}
	if id == tx.numbered.id {
		return sql.NullInt64{Int64: tx.numbered.n, Valid: true}, nil
	}
	err := tx.stmt(ctx, tx.stmts.subject).QueryRowContext(ctx, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		var res sql.Result
		if res, err = tx.stmt(ctx, tx.stmts.insertSubject).ExecContext(ctx, id); err == nil {
			n.Int64, err = res.LastInsertId()
			n.Valid = err == nil
		}
	}
	return n, err
}

// numberSubjects numbers the ids of the audit entries first … last that
// have none, and sets the entries' numbers.
func (tx *Tx) numberSubjects(ctx context.Context, first, last int64) error {
	if _, err := tx.stmt(ctx, tx.stmts.numberSubjects).ExecContext(ctx, first, last); err != nil {
		return err
	}
	_, err := tx.stmt(ctx, tx.stmts.fillSubjects).ExecContext(ctx, first, last)
	return err
}

// numberSubject returns certificate id's number (insertSubjectSQL), which
// keys the certificates table and the audit log's index, numbering it if it
// has none. A new id is numbered by the insert alone; an id numbered
// before (a certificate registered again, or in another account) is looked
// up after the insert found it.
func (tx *Tx) numberSubject(ctx context.Context, id string) (int64, error) {
	if id == "" {
		return 0, errors.New("no certificate id")
	}
	res, err := tx.stmt(ctx, tx.stmts.insertSubject).ExecContext(ctx, id)
	if err != nil {
		return 0, err
	}
	var n int64
	if inserted, err := res.RowsAffected(); err == nil && inserted == 1 {
		n, err = res.LastInsertId() // numbered now: its number is the row's id
		if err != nil {
			return 0, err
		}
	} else if err := tx.stmt(ctx, tx.stmts.subject).QueryRowContext(ctx, id).Scan(&n); err != nil {
		return 0, err
	}
	tx.numbered.id, tx.numbered.n = id, n
	return n, nil
}

// AuditEntries returns a page of the audit log; see fleetcert.Tx. The
// query is built for the filters set: with a certificate or a resource it
// reads that index's range, else the time index's, in the order listed.
func (tx *Tx) AuditEntries(ctx context.Context, q fleetcert.AuditQuery) ([]fleetcert.AuditEntry, error) {
	query, args, err := auditEntriesSQL(q)
	if err != nil || query == "" {
		return nil, err
	}
	rows, err := tx.queryAdhoc(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	defer rows.Close()
	var entries []fleetcert.AuditEntry
	for rows.Next() {
		var (
			a                          fleetcert.AuditEntry
			t                          sql.NullInt64
			kind, oldStatus, newStatus string
		)
		if err := rows.Scan(&a.Seq, &t, &a.Scope.AccountID, &a.Scope.Region, &a.Operation, &kind, &a.CertificateID,
			&oldStatus, &newStatus, &a.Resource, &a.Target, &a.Actor, &a.ActorAccount, &a.SourceIP); err != nil {
			return nil, fmt.Errorf("audit entries: %w", err)
		}
		a.Time = fromNanos(t)
		a.Kind = fleetcert.ChangeKind(kind)
		a.OldStatus = fleetcert.Status(oldStatus)
		a.NewStatus = fleetcert.Status(newStatus)
		entries = append(entries, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	return entries, nil
}

// auditEntriesSQL is AuditEntries' query for q and its arguments: "" when
// q selects nothing.
func auditEntriesSQL(q fleetcert.AuditQuery) (string, []any, error) {
	if q.Limit <= 0 {
		return "", nil, nil
	}
	var (
		e     encoder
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("?%d", len(args))
	}
	// The partial indexes hold only non-empty keys: saying so lets SQLite
	// use them. A certificate's entries are found by its number
	// (migration 0013); an id never numbered has none.
	switch {
	case q.CertificateID != "":
		where = append(where, "subject = (SELECT id FROM audit_subjects WHERE certificate_id = "+arg(q.CertificateID)+")",
			"subject IS NOT NULL")
		if q.Resource != "" {
			where = append(where, "resource = "+arg(q.Resource))
		}
	case q.Resource != "":
		where = append(where, "resource = "+arg(q.Resource), "resource <> ''")
	}
	if q.AccountID != "" {
		where = append(where, "account_id = "+arg(q.AccountID))
	}
	if q.Region != "" {
		where = append(where, "region = "+arg(q.Region))
	}
	// Entries are stamped with the time of their change, which the
	// store keeps in nanoseconds (1678-2262): a bound beyond that range
	// selects all or nothing.
	switch {
	case q.Since.After(maxNanoTime):
		return "", nil, nil
	case !q.Since.IsZero() && !q.Since.Before(minNanoTime):
		where = append(where, "time >= "+arg(e.nanos(q.Since)))
	}
	switch {
	case !q.Until.IsZero() && !q.Until.After(minNanoTime):
		return "", nil, nil
	case !q.Until.IsZero() && !q.Until.After(maxNanoTime):
		where = append(where, "time < "+arg(e.nanos(q.Until)))
	}
	order, cmp := "ASC", ">"
	if q.Newest {
		order, cmp = "DESC", "<"
	}
	if q.After != nil {
		where = append(where, fmt.Sprintf("(time, seq) %s (%s, %s)", cmp, arg(e.nanos(q.After.Time)), arg(q.After.Seq)))
	}
	if e.err != nil {
		return "", nil, fmt.Errorf("audit entries: %w", e.err)
	}
	query := `SELECT seq, time, account_id, region, operation, kind, certificate_id, old_status, new_status,
		resource, target, actor, actor_account, source_ip FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY time %s, seq %s LIMIT %s", order, order, arg(q.Limit))
	return query, args, nil
}

// PruneAudit removes the audit entries whose Time is before `before`, in
// transactions of at most auditPruneBatch rows, and returns how many it
// removed.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var e encoder
	t := e.nanos(before)
	if e.err != nil {
		return 0, fmt.Errorf("prune audit log: %w", e.err)
	}
	var total int64
	for {
		var n int64
		err := db.UpdateBulk(ctx, func(ftx fleetcert.Tx) error {
			res, err := ftx.(*Tx).tx.ExecContext(ctx,
				`DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE time < ?1 ORDER BY time LIMIT ?2)`, t, auditPruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune audit log: %w", err)
		}
		total += n
		if n < auditPruneBatch {
			return total, nil
		}
	}
}
