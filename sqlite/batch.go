package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// A bulk job writes thousands of rows per transaction. Written one
// statement per row, the statements' own cost (database/sql, the driver,
// SQLite's VM setting up and resetting) was as much as the rows': so a
// batch goes as statements of many rows each, of maxBatchRows rows and then
// of the powers of two that make up the rest, so that there are few texts
// of each statement, each prepared once (statements.prepareBatch).
//
// The statements say OR FAIL: a statement of many rows that may abort
// halfway (SQLite's default, OR ABORT) makes SQLite keep a statement
// journal of every page it changes, to undo that statement alone, and a
// failing statement fails its whole transaction here anyway (the Update
// returns the error and rolls back). It took the UPDATE's statement journal
// away (0.38 s of the 5.6 s sampled in a 100,000-certificate job); the
// INSERTs still keep one (0.5-0.7 s), and an in-memory one
// (temp_store=MEMORY) cost three times as much in this driver.
const maxBatchRows = 1 << maxBatchShift

const maxBatchShift = 8

// batchTexts are one statement's texts by number of rows: the i-th has
// 1<<i rows.
type batchTexts [maxBatchShift + 1]string

// newBatchTexts returns the texts head + row, row, … + tail.
func newBatchTexts(head, row, tail string) *batchTexts {
	var t batchTexts
	for i := range t {
		var b strings.Builder
		b.WriteString(head)
		for r := range 1 << i {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
		}
		b.WriteString(tail)
		t[i] = b.String()
	}
	return &t
}

// batchRows is how many of n rows left the next statement takes: the
// largest power of two not above n or maxBatchRows.
func batchRows(n int) int { return 1 << (bits.Len(uint(min(n, maxBatchRows))) - 1) }

// batchIndex is the index in batchTexts of rows rows (a power of two).
func batchIndex(rows int) int { return bits.TrailingZeros(uint(rows)) }

// updateStatusesSQL is updateCertificateStatusSQL for many rows: the values
// are a table joined on seq (the rowid), and RETURNING names the rows
// written.
var updateStatusesSQL = newBatchTexts(`UPDATE OR FAIL certificates SET
		status = v.column5, last_modified_date = v.column6, customer_version = v.column7, generation_id = v.column8
	FROM (VALUES `, `(?, ?, ?, ?, ?, ?, ?, ?, ?)`, `) AS v
	WHERE certificates.seq = v.column1 AND certificates.account_id = v.column2 AND certificates.region = v.column3
		AND certificates.certificate_id = v.column4 AND certificates.customer_version = v.column9
	RETURNING certificates.seq`)

// insertChangesSQL is insertChangeSQL for many rows. One statement inserts
// its rows in the order of its values, each taking the next seq.
var insertChangesSQL = newBatchTexts(`INSERT OR FAIL INTO changes (kind, account_id, region, certificate_id, old_status, new_status,
		time, client_id, session_id, resource, target)
	VALUES `, `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)

// insertAuditRangeSQL writes the audit entries of the changes ?1 … ?2 (all
// of one operation and actor): every other field of an entry is its
// change's, so they are copied from the rows just written rather than bound
// again; with its certificate id's number (one lookup; ids without one are
// numbered after, by numberSubjectsSQL and fillSubjectsSQL).
const insertAuditRangeSQL = `INSERT OR FAIL INTO audit (seq, time, account_id, region, operation, kind, certificate_id, old_status, new_status,
		resource, target, actor, actor_account, source_ip, subject)
	SELECT seq, time, account_id, region, ?3, kind, certificate_id, old_status, new_status,
		resource, target, ?4, ?5, ?6, (SELECT id FROM audit_subjects s WHERE s.certificate_id = changes.certificate_id)
	FROM changes WHERE seq BETWEEN ?1 AND ?2`

// prepareBatch prepares the statements of many rows on p, the writer.
func (s *statements) prepareBatch(p *sql.DB) error {
	for i := range s.updateStatuses {
		var err error
		if s.updateStatuses[i], err = p.Prepare(updateStatusesSQL[i]); err != nil {
			return fmt.Errorf("prepare %q: %w", updateStatusesSQL[i], err)
		}
		if s.insertChanges[i], err = p.Prepare(insertChangesSQL[i]); err != nil {
			return fmt.Errorf("prepare %q: %w", insertChangesSQL[i], err)
		}
		for _, st := range []struct {
			s    *[maxBatchShift + 1]*sql.Stmt
			text *batchTexts
		}{
			{&s.insertSubjects, insertSubjectsSQL}, {&s.subjects, subjectsSQL},
			{&s.held, heldSQL}, {&s.insertCertificates, insertCertificatesSQL},
		} {
			if st.s[i], err = p.Prepare(st.text[i]); err != nil {
				return fmt.Errorf("prepare %q: %w", st.text[i], err)
			}
		}
	}
	return nil
}

// UpdateCertificateStatuses is UpdateCertificateStatus for each of us, in
// statements of up to maxBatchRows certificates; see fleetcert.Tx.
func (tx *Tx) UpdateCertificateStatuses(ctx context.Context, us []fleetcert.StatusUpdate) ([]bool, error) {
	if err := tx.checkWritable("update certificate statuses"); err != nil {
		return nil, err
	}
	written := make([]bool, len(us))
	index := make(map[int64]int, min(len(us), maxBatchRows)) // seq → position in us, of one statement's rows
	args := make([]any, 0, 9*min(len(us), maxBatchRows))
	for done := 0; done < len(us); {
		rows := batchRows(len(us) - done)
		args = args[:0]
		clear(index)
		var e encoder
		for i, u := range us[done : done+rows] {
			c := u.Certificate
			index[c.Seq] = done + i
			args = append(args, c.Seq, c.AccountID, c.Region, c.ID, string(c.Status), e.nanos(c.LastModifiedDate),
				c.CustomerVersion, c.GenerationID, u.FromVersion)
		}
		if e.err != nil {
			return nil, fmt.Errorf("update certificate statuses: %w", e.err)
		}
		if err := tx.updateStatuses(ctx, tx.stmts.updateStatuses[batchIndex(rows)], args, index, written); err != nil {
			return nil, err
		}
		done += rows
	}
	return written, nil
}

// updateStatuses runs one statement of UpdateCertificateStatuses and marks
// the rows it wrote.
func (tx *Tx) updateStatuses(ctx context.Context, s *sql.Stmt, args []any, index map[int64]int, written []bool) error {
	tx.changed++ // it may change rows, whatever becomes of it (Tx.changed)
	rows, err := tx.stmt(ctx, s).QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("update certificate statuses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return fmt.Errorf("update certificate statuses: %w", err)
		}
		if i, ok := index[seq]; ok {
			written[i] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("update certificate statuses: %w", err)
	}
	return nil
}

// AppendChanges is AppendChange for each of chs, in statements of up to
// maxBatchRows changes, and one more per run of changes of the same
// operation and actor for their audit entries; see fleetcert.Tx.
func (tx *Tx) AppendChanges(ctx context.Context, chs []*fleetcert.Change) error {
	if err := tx.checkWritable("append changes"); err != nil {
		return err
	}
	args := make([]any, 0, 11*min(len(chs), maxBatchRows))
	for done := 0; done < len(chs); {
		rows := batchRows(len(chs) - done)
		args = args[:0]
		var e encoder
		for _, ch := range chs[done : done+rows] {
			args = append(args, string(ch.Kind), ch.Scope.AccountID, ch.Scope.Region, ch.CertificateID,
				string(ch.OldStatus), string(ch.NewStatus), e.nanos(ch.Time), ch.ClientID, ch.SessionID, ch.Resource, ch.Target)
		}
		if e.err != nil {
			return fmt.Errorf("append changes: %w", e.err)
		}
		res, err := tx.stmt(ctx, tx.stmts.insertChanges[batchIndex(rows)]).ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("append changes: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("append changes: %w", err)
		}
		// One writer, one statement: its rows took consecutive seqs, in
		// the order of its values (AUTOINCREMENT gives each the largest
		// seq yet plus one).
		for i, ch := range chs[done : done+rows] {
			ch.Seq = last - int64(rows-1-i)
			tx.keep(ch, args[11*i+6].(sql.NullInt64))
		}
		done += rows
	}
	for start := 0; start < len(chs); {
		first := chs[start]
		end := start + 1
		for end < len(chs) && sameAuditSource(chs[end], first) {
			end++
		}
		if first.Operation != "" {
			if _, err := tx.stmt(ctx, tx.stmts.insertAuditRange).ExecContext(ctx, first.Seq, chs[end-1].Seq,
				first.Operation, first.Actor, first.ActorAccount, first.SourceIP); err != nil {
				return fmt.Errorf("append audit entries: %w", err)
			}
			if err := tx.numberSubjects(ctx, first.Seq, chs[end-1].Seq); err != nil {
				return fmt.Errorf("append audit entries: %w", err)
			}
		}
		start = end
	}
	return nil
}

// sameAuditSource reports whether a and b have the same operation and
// actor, so that one statement writes both audit entries.
func sameAuditSource(a, b *fleetcert.Change) bool {
	return a.Operation == b.Operation && a.Actor == b.Actor && a.ActorAccount == b.ActorAccount && a.SourceIP == b.SourceIP
}
