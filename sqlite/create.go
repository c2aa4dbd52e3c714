package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

// Registrations arriving together are stored together (Registry's
// registrar, fleetcert.CertificatesCreator): a statement of many rows per
// step instead of one per certificate, which costs SQLite's VM, the driver
// and database/sql once per statement rather than once per row
// (BENCHMARKS.md, "Registrations stored together").
var (
	// insertSubjectsSQL numbers the ids of a batch (insertSubjectSQL for
	// many rows), and subjectsSQL reads their numbers back.
	insertSubjectsSQL = newBatchTexts(`INSERT OR IGNORE INTO audit_subjects (certificate_id) VALUES `, `(?)`, ``)
	subjectsSQL       = newBatchTexts(`SELECT certificate_id, id FROM audit_subjects WHERE certificate_id IN (`, `?`, `)`)
	// heldSQL names which of a batch's (number, account, region) the
	// certificates table holds already.
	heldSQL = newBatchTexts(`SELECT c.id_number, c.account_id, c.region FROM (VALUES `, `(?, ?, ?)`, `) AS v
		JOIN certificates c ON c.id_number = v.column1 AND c.account_id = v.column2 AND c.region = v.column3`)
	// insertCertificatesSQL is insertCertificateSQL for many rows, each
	// taking the next seq in the order of its values. OR FAIL: see the
	// batch statements' note (batch.go); CreateCertificates has left out
	// every row the table's unique key would refuse.
	insertCertificatesSQL = newBatchTexts(`INSERT OR FAIL INTO certificates (`+certificateColumns+`, id_number) VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)
)

// certificateKey is a certificate's key in the certificates table.
type certificateKey struct {
	number          int64
	account, region string
}

// CreateCertificates stores each certificate of cs that its scope does not
// hold, and sets its Seq; see fleetcert.CertificatesCreator. It numbers
// the ids (audit_subjects), reads which the table holds, and inserts the
// rest, each step in statements of many rows.
func (tx *Tx) CreateCertificates(ctx context.Context, cs []*fleetcert.Certificate) ([]bool, error) {
	if err := tx.checkWritable("create certificates"); err != nil {
		return nil, err
	}
	var ids []any
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if c.ID == "" {
			return nil, fmt.Errorf("create certificates: a certificate without an id")
		}
		if !seen[c.ID] {
			seen[c.ID] = true
			ids = append(ids, c.ID)
		}
	}
	numbers, err := tx.numberSubjectsOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("create certificates: %w", err)
	}
	keys := make([]any, 0, 3*len(cs))
	for _, c := range cs {
		keys = append(keys, numbers[c.ID], c.AccountID, c.Region)
	}
	held := make(map[certificateKey]bool, len(cs))
	err = inBatches(keys, 3, func(rows int, args []any) error {
		return tx.scan(ctx, tx.stmts.held[batchIndex(rows)], args, func(r *sql.Rows) error {
			var k certificateKey
			if err := r.Scan(&k.number, &k.account, &k.region); err != nil {
				return err
			}
			held[k] = true
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("create certificates: %w", err)
	}
	stored := make([]bool, len(cs))
	var fresh []*fleetcert.Certificate
	var args []any
	for i, c := range cs {
		k := certificateKey{numbers[c.ID], c.AccountID, c.Region}
		if held[k] {
			continue // held, or earlier in cs
		}
		held[k], stored[i] = true, true
		row, err := certificateArgs(c)
		if err != nil {
			return nil, err
		}
		fresh = append(fresh, c)
		args = append(args, append(row, k.number)...)
	}
	done := 0
	err = inBatches(args, 26, func(rows int, args []any) error {
		// It may change rows whatever becomes of it (Tx.changed): OR FAIL
		// keeps the rows before a failing one.
		tx.changed++
		res, err := tx.stmt(ctx, tx.stmts.insertCertificates[batchIndex(rows)]).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		last, err := res.LastInsertId()
		if err != nil {
			return err
		}
		// One writer, one statement: its rows took consecutive seqs, in
		// the order of its values (AUTOINCREMENT).
		for i, c := range fresh[done : done+rows] {
			c.Seq = last - int64(rows-1-i)
		}
		done += rows
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create certificates: %w", err)
	}
	return stored, nil
}

// numberSubjectsOf numbers each of ids (strings) that has no number yet
// and returns every one's number.
func (tx *Tx) numberSubjectsOf(ctx context.Context, ids []any) (map[string]int64, error) {
	err := inBatches(ids, 1, func(rows int, args []any) error {
		_, err := tx.stmt(ctx, tx.stmts.insertSubjects[batchIndex(rows)]).ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	numbers := make(map[string]int64, len(ids))
	err = inBatches(ids, 1, func(rows int, args []any) error {
		return tx.scan(ctx, tx.stmts.subjects[batchIndex(rows)], args, func(r *sql.Rows) error {
			var id string
			var n int64
			if err := r.Scan(&id, &n); err != nil {
				return err
			}
			numbers[id] = n
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, ok := numbers[id.(string)]; !ok {
			return nil, fmt.Errorf("certificate %s has no number", id)
		}
	}
	return numbers, nil
}

// inBatches calls fn for args, perRow values a row, in runs of rows that
// batchTexts has a statement for: maxBatchRows, then powers of two.
func inBatches(args []any, perRow int, fn func(rows int, args []any) error) error {
	for done := 0; done < len(args)/perRow; {
		rows := batchRows(len(args)/perRow - done)
		if err := fn(rows, args[done*perRow:(done+rows)*perRow]); err != nil {
			return err
		}
		done += rows
	}
	return nil
}

// scan runs query s of tx with args and calls row for each row.
func (tx *Tx) scan(ctx context.Context, s *sql.Stmt, args []any, row func(*sql.Rows) error) error {
	rows, err := tx.stmt(ctx, s).QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
