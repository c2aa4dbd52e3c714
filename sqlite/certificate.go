package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// certificateColumns are the columns of a certificate, in the order of
// certificateArgs (?1 … ?25) and scanCertificate (then seq).
const certificateColumns = `account_id, region, certificate_id, ca_certificate_id, status, pem, mode,
	owned_by, previous_owned_by, creation_date, last_modified_date, customer_version, generation_id,
	not_before, not_after,
	transfer_target_account_id, transfer_message, transfer_reject_reason,
	transfer_date, transfer_accept_date, transfer_reject_date,
	issuer, authority_key_id, common_name, serial`

// byIDNumber finds certificate id ?3 by its number (migration 0015): the
// table's key is (id_number, account_id, region).
const byIDNumber = `id_number = (SELECT id FROM audit_subjects WHERE certificate_id = ?3) AND account_id = ?1 AND region = ?2`

const (
	selectCertificateSQL = `SELECT ` + certificateColumns + `, seq FROM certificates WHERE ` + byIDNumber

	// ?26 is the id's number (Tx.numberSubject).
	insertCertificateSQL = `INSERT INTO certificates (` + certificateColumns + `, id_number)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)`

	updateCertificateSQL = `UPDATE certificates SET
		ca_certificate_id = ?4, status = ?5, pem = ?6, mode = ?7,
		owned_by = ?8, previous_owned_by = ?9, creation_date = ?10, last_modified_date = ?11,
		customer_version = ?12, generation_id = ?13, not_before = ?14, not_after = ?15,
		transfer_target_account_id = ?16, transfer_message = ?17, transfer_reject_reason = ?18,
		transfer_date = ?19, transfer_accept_date = ?20, transfer_reject_date = ?21,
		issuer = ?22, authority_key_id = ?23, common_name = ?24, serial = ?25
		WHERE ` + byIDNumber

	deleteCertificateSQL = `DELETE FROM certificates WHERE ` + byIDNumber
)

// Filters of ListCertificates, a bit each: the index of the statement that
// applies them in statements.listCertificates.
const (
	byCA       = 1 << iota // ca_certificate_id = ?6
	byStatus               // status = ?7
	byOwner                // owned_by = ?8
	byIDPrefix             // ?9 <= certificate_id < ?10

	certificateFilters = 1 << iota // how many combinations
)

// listCertificatesSQL returns the keyset-pagination query for one order and
// combination of filters. Its parameters: ?1 account, ?2 region, ?3 creation
// date and ?4 seq of the cursor, ?5 limit, ?6 CA id, ?7 status, ?8 owner,
// ?9 and ?10 the range of ids that start with a prefix.
//
// The position after the cursor is two ranges on the index (account_id,
// region[, ca_certificate_id | status], creation_date, seq), read one after
// the other: the cursor's creation date past its seq, then the later (or,
// descending, earlier) dates. SQLite seeks a row value (creation_date, seq)
// > (?, ?) on creation_date alone and steps over every row of that date
// before the cursor, so certificates created in one millisecond (registered
// in bulk) made each page cost all the pages of that millisecond before it
// (statusesByCASQL, the bulk job's page, is the same query). With the two
// ranges a page costs its own rows, however deep it is and however many
// share its date; the filters the index lacks are checked on those rows.
// UNION ALL of two subqueries keeps their order, the first's rows first, as
// the outer LIMIT needs.
func listCertificatesSQL(ascending bool, filters int) string {
	// A listing never returns the PEM (the Store contract), and the PEM is
	// most of a row: select an empty one.
	selectFrom := `SELECT ` + strings.Replace(certificateColumns, "status, pem,", "status, '' AS pem,", 1) + `, seq FROM certificates`
	var index string
	switch {
	case filters&byIDPrefix != 0:
		// A prefix search (the console's) matches few rows: find their
		// ids' numbers, then the rows by number, then sort them. The
		// cursor is a filter on those rows, not a range.
		index = ` INDEXED BY certificates_by_id_number`
	case filters&byCA != 0:
		// A CA's certificates are fewer than a status's (most are ACTIVE).
		index = ` INDEXED BY certificates_by_ca`
	case filters&byStatus != 0:
		index = ` INDEXED BY certificates_by_status`
	default:
		index = ` INDEXED BY certificates_by_creation`
	}
	where := ` WHERE account_id = ?1 AND region = ?2`
	if filters&byCA != 0 {
		where += ` AND ca_certificate_id = ?6`
	}
	if filters&byStatus != 0 {
		where += ` AND status = ?7`
	}
	if filters&byOwner != 0 {
		where += ` AND owned_by = ?8`
	}
	if filters&byIDPrefix != 0 {
		where += ` AND id_number IN (SELECT id FROM audit_subjects WHERE certificate_id >= ?9 AND certificate_id < ?10)`
	}
	op, desc := ">", ""
	if !ascending {
		op, desc = "<", " DESC"
	}
	if filters&byIDPrefix != 0 {
		return selectFrom + index + where + ` AND (creation_date, seq) ` + op + ` (?3, ?4)` +
			` ORDER BY creation_date` + desc + `, seq` + desc + ` LIMIT ?5`
	}
	return `SELECT * FROM (` + selectFrom + index + where + ` AND creation_date = ?3 AND seq ` + op + ` ?4` +
		` ORDER BY seq` + desc + ` LIMIT ?5)` +
		` UNION ALL SELECT * FROM (` + selectFrom + index + where + ` AND creation_date ` + op + ` ?3` +
		` ORDER BY creation_date` + desc + `, seq` + desc + ` LIMIT ?5)` +
		` LIMIT ?5`
}

// certificateArgs returns the column values of c in certificateColumns order.
func certificateArgs(c *fleetcert.Certificate) ([]any, error) {
	var e encoder
	args := []any{
		c.AccountID, c.Region, c.ID, c.CACertificateID, string(c.Status), c.PEM, string(c.Mode),
		c.OwnedBy, c.PreviousOwnedBy, e.nanos(c.CreationDate), e.nanos(c.LastModifiedDate),
		c.CustomerVersion, c.GenerationID, e.micros(c.NotBefore), e.micros(c.NotAfter),
	}
	if t := c.Transfer; t != nil {
		args = append(args, t.TargetAccountID, t.TransferMessage, t.RejectReason,
			e.nanos(t.TransferDate), e.nanos(t.AcceptDate), e.nanos(t.RejectDate))
	} else {
		args = append(args, nil, nil, nil, nil, nil, nil)
	}
	args = append(args, blob(c.Issuer), keyID(c.AuthorityKeyID), c.CommonName, keyID(c.Serial))
	if e.err != nil {
		return nil, fmt.Errorf("certificate %s: %w", c.ID, e.err)
	}
	return args, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanCertificate reads a row of certificateColumns and seq.
func scanCertificate(s scanner) (*fleetcert.Certificate, error) {
	var (
		c                                      fleetcert.Certificate
		status, mode                           string
		created, modified, notBefore, notAfter sql.NullInt64
		target, message, reason                sql.NullString
		transferDate, acceptDate, rejectDate   sql.NullInt64
		commonName                             sql.NullString
	)
	err := s.Scan(&c.AccountID, &c.Region, &c.ID, &c.CACertificateID, &status, &c.PEM, &mode,
		&c.OwnedBy, &c.PreviousOwnedBy, &created, &modified, &c.CustomerVersion, &c.GenerationID,
		&notBefore, &notAfter,
		&target, &message, &reason, &transferDate, &acceptDate, &rejectDate,
		&c.Issuer, &c.AuthorityKeyID, &commonName, &c.Serial,
		&c.Seq)
	if err != nil {
		return nil, err
	}
	c.Status = fleetcert.Status(status)
	c.CommonName = commonName.String
	if len(c.Issuer) == 0 {
		c.Issuer = nil
	}
	if len(c.AuthorityKeyID) == 0 {
		c.AuthorityKeyID = nil
	}
	if len(c.Serial) == 0 {
		c.Serial = nil
	}
	c.Mode = fleetcert.CertificateMode(mode)
	c.CreationDate = fromNanos(created)
	c.LastModifiedDate = fromNanos(modified)
	c.NotBefore = fromMicros(notBefore)
	c.NotAfter = fromMicros(notAfter)
	if target.Valid {
		c.Transfer = &fleetcert.TransferData{
			TargetAccountID: target.String,
			TransferMessage: message.String,
			RejectReason:    reason.String,
			TransferDate:    fromNanos(transferDate),
			AcceptDate:      fromNanos(acceptDate),
			RejectDate:      fromNanos(rejectDate),
		}
	}
	return &c, nil
}

// Certificate returns the client certificate id in scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Certificate(ctx context.Context, scope fleetcert.Scope, id string) (*fleetcert.Certificate, error) {
	row := tx.stmt(ctx, tx.stmts.certificate).QueryRowContext(ctx, scope.AccountID, scope.Region, id)
	c, err := scanCertificate(row)
	if err != nil {
		return nil, storeError(err, "certificate "+id)
	}
	return c, nil
}

// CreateCertificate stores a new client certificate and sets c.Seq.
//
// Errors: ResourceAlreadyExistsException when (c.Scope, c.ID) exists.
func (tx *Tx) CreateCertificate(ctx context.Context, c *fleetcert.Certificate) error {
	if err := tx.checkWritable("create certificate"); err != nil {
		return err
	}
	args, err := certificateArgs(c)
	if err != nil {
		return err
	}
	// Numbered first: the row is keyed on the number.
	n, err := tx.numberSubject(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", c.ID, err)
	}
	res, err := tx.stmt(ctx, tx.stmts.insertCertificate).ExecContext(ctx, append(args, n)...)
	if err != nil {
		return storeError(err, "certificate "+c.ID)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("certificate %s: %w", c.ID, err)
	}
	c.Seq = seq
	return nil
}

// UpdateCertificate replaces every field of the stored client certificate
// (c.Scope, c.ID) but its Seq.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) UpdateCertificate(ctx context.Context, c *fleetcert.Certificate) error {
	if err := tx.checkWritable("update certificate"); err != nil {
		return err
	}
	args, err := certificateArgs(c)
	if err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.updateCertificate).ExecContext(ctx, args...)
	return rowsAffected(res, err, "certificate "+c.ID)
}

// DeleteCertificate removes the client certificate id in scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteCertificate(ctx context.Context, scope fleetcert.Scope, id string) error {
	if err := tx.checkWritable("delete certificate"); err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.deleteCertificate).ExecContext(ctx, scope.AccountID, scope.Region, id)
	return rowsAffected(res, err, "certificate "+id)
}

// rowsAffected turns an UPDATE or DELETE that matched no row into
// ResourceNotFoundException.
func rowsAffected(res sql.Result, err error, what string) error {
	if err != nil {
		return storeError(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeError(err, what)
	} else if n == 0 {
		return storeError(sql.ErrNoRows, what)
	}
	return nil
}

// blob is b as a column value: NULL when empty.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// keyID is an authority key id as a column value: an empty blob when
// absent (migration 0004).
func keyID(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ListCertificates returns up to q.Limit certificates of q.Scope in
// (CreationDate, Seq) order, strictly after q.After when it is set.
func (tx *Tx) ListCertificates(ctx context.Context, q fleetcert.CertificateQuery) ([]*fleetcert.Certificate, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	if q.NoCA || q.Issuer != nil || q.ExcludeCACertificateID != "" || q.CommonNamePrefix != "" || q.OrderByExpiry ||
		!q.NotAfterBefore.IsZero() {
		return tx.findCertificates(ctx, q)
	}
	if q.StatusOnly && q.Ascending && q.CACertificateID != "" && q.Status == "" && q.OwnedBy == "" && q.IDPrefix == "" {
		return tx.listStatusesByCA(ctx, q)
	}
	// Without a cursor, start before the first or after the last position.
	var created, seq int64 = math.MinInt64, math.MinInt64
	if !q.Ascending {
		created, seq = math.MaxInt64, math.MaxInt64
	}
	if q.After != nil {
		var e encoder
		n := e.nanos(q.After.CreationDate)
		if e.err != nil {
			return nil, fmt.Errorf("list certificates: cursor: %w", e.err)
		}
		created, seq = n.Int64, q.After.Seq
	}
	asc, filters := 0, 0
	if q.Ascending {
		asc = 1
	}
	// Ids are lowercase hex: every id that starts with the prefix sorts
	// below the prefix followed by 'g'.
	args := []any{q.AccountID, q.Region, created, seq, q.Limit, q.CACertificateID, string(q.Status), q.OwnedBy,
		q.IDPrefix, q.IDPrefix + "g"}
	// Bind the parameters up to the last one the statement uses (each costs
	// a copy); one in between that it does not use is bound and ignored.
	n := 5
	if q.CACertificateID != "" {
		filters, n = filters|byCA, 6
	}
	if q.Status != "" {
		filters, n = filters|byStatus, 7
	}
	if q.OwnedBy != "" {
		filters, n = filters|byOwner, 8
	}
	if q.IDPrefix != "" {
		filters, n = filters|byIDPrefix, 10
	}
	args = args[:n]
	rows, err := tx.stmt(ctx, tx.stmts.listCertificates[asc][filters]).QueryContext(ctx, args...)
	return scanCertificateList(rows, err, q.Limit)
}

// scanCertificateList reads and closes the rows of a listing query (err
// is the query's).
func scanCertificateList(rows *sql.Rows, err error, limit int) ([]*fleetcert.Certificate, error) {
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	defer rows.Close()
	certs := make([]*fleetcert.Certificate, 0, min(limit, 256))
	for rows.Next() {
		c, err := scanCertificate(rows)
		if err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return certs, nil
}

// updateCertificateStatusSQL writes only the columns a status change moves,
// so that SQLite rewrites only the indexes on them (by status, unusable by
// issuer) and not the row's other nine.
const updateCertificateStatusSQL = `UPDATE certificates SET
		status = ?4, last_modified_date = ?5, customer_version = ?6, generation_id = ?7
		WHERE seq = ?9 AND account_id = ?1 AND region = ?2 AND certificate_id = ?3 AND customer_version = ?8`

// UpdateCertificateStatus stores c's Status, LastModifiedDate,
// CustomerVersion and GenerationID on the certificate (c.Scope, c.ID) if
// its stored CustomerVersion is fromVersion, and reports whether it did.
func (tx *Tx) UpdateCertificateStatus(ctx context.Context, c *fleetcert.Certificate, fromVersion int) (bool, error) {
	if err := tx.checkWritable("update certificate status"); err != nil {
		return false, err
	}
	var e encoder
	modified := e.nanos(c.LastModifiedDate)
	if e.err != nil {
		return false, fmt.Errorf("certificate %s: %w", c.ID, e.err)
	}
	res, err := tx.stmt(ctx, tx.stmts.updateCertificateStatus).ExecContext(ctx, c.AccountID, c.Region, c.ID,
		string(c.Status), modified, c.CustomerVersion, c.GenerationID, fromVersion, c.Seq)
	if err != nil {
		return false, storeError(err, "certificate "+c.ID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, storeError(err, "certificate "+c.ID)
	}
	return n == 1, nil
}

// statusesByCASQL lists what a bulk job reads of a CA's certificates
// (CertificateQuery.StatusOnly), oldest first: five columns, not
// twenty-six, which is most of a listed row's cost. The position is two
// ranges, the cursor's creation date after its seq and then the later
// dates: SQLite seeks a row value (creation_date, seq) > (?, ?) on
// creation_date alone and steps over every row of that date before the
// cursor, so certificates created in one millisecond (registered in bulk)
// made each page cost all the pages before it.
const statusesByCASQL = `SELECT * FROM (
	SELECT certificate_id, status, customer_version, creation_date, seq
	FROM certificates INDEXED BY certificates_by_ca
	WHERE account_id = ?1 AND region = ?2 AND ca_certificate_id = ?3 AND creation_date = ?4 AND seq > ?5
	ORDER BY seq LIMIT ?6)
	UNION ALL SELECT * FROM (
	SELECT certificate_id, status, customer_version, creation_date, seq
	FROM certificates INDEXED BY certificates_by_ca
	WHERE account_id = ?1 AND region = ?2 AND ca_certificate_id = ?3 AND creation_date > ?4
	ORDER BY creation_date, seq LIMIT ?6)
	LIMIT ?6`

func (tx *Tx) listStatusesByCA(ctx context.Context, q fleetcert.CertificateQuery) ([]*fleetcert.Certificate, error) {
	var created, seq int64 = math.MinInt64, math.MinInt64
	if q.After != nil {
		var e encoder
		n := e.nanos(q.After.CreationDate)
		if e.err != nil {
			return nil, fmt.Errorf("list certificates: cursor: %w", e.err)
		}
		created, seq = n.Int64, q.After.Seq
	}
	rows, err := tx.stmt(ctx, tx.stmts.statusesByCA).QueryContext(ctx, q.AccountID, q.Region, q.CACertificateID, created, seq, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	defer rows.Close()
	certs := make([]*fleetcert.Certificate, 0, min(q.Limit, 4096))
	for rows.Next() {
		c := &fleetcert.Certificate{Scope: q.Scope, CACertificateID: q.CACertificateID}
		var status string
		var creation sql.NullInt64
		if err := rows.Scan(&c.ID, &status, &c.CustomerVersion, &creation, &c.Seq); err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		c.Status, c.CreationDate = fleetcert.Status(status), fromNanos(creation)
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return certs, nil
}
