package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// certificateColumns are the columns of a certificate, in the order of
// certificateArgs ($1 … $25) and scanCertificate (then seq).
const certificateColumns = `account_id, region, certificate_id, ca_certificate_id, status, pem, mode,
	owned_by, previous_owned_by, creation_date, last_modified_date, customer_version, generation_id,
	not_before, not_after,
	transfer_target_account_id, transfer_message, transfer_reject_reason,
	transfer_date, transfer_accept_date, transfer_reject_date,
	issuer, authority_key_id, common_name, serial`

const (
	selectCertificateSQL = `SELECT ` + certificateColumns + `, seq FROM certificates
		WHERE account_id = $1 AND region = $2 AND certificate_id = $3`

	insertCertificateSQL = `INSERT INTO certificates (` + certificateColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
		RETURNING seq`

	updateCertificateSQL = `UPDATE certificates SET
		ca_certificate_id = $4, status = $5, pem = $6, mode = $7,
		owned_by = $8, previous_owned_by = $9, creation_date = $10, last_modified_date = $11,
		customer_version = $12, generation_id = $13, not_before = $14, not_after = $15,
		transfer_target_account_id = $16, transfer_message = $17, transfer_reject_reason = $18,
		transfer_date = $19, transfer_accept_date = $20, transfer_reject_date = $21,
		issuer = $22, authority_key_id = $23, common_name = $24, serial = $25
		WHERE account_id = $1 AND region = $2 AND certificate_id = $3`

	deleteCertificateSQL = `DELETE FROM certificates
		WHERE account_id = $1 AND region = $2 AND certificate_id = $3`
)

// certificateKey is the lock of the registrations of certificate id in
// every scope: a lookup that found none, CertificatesByID, an insert.
func certificateKey(id string) int32 { return lockKey("certificate", id) }

// certificateArgs returns the column values of c in certificateColumns order.
func certificateArgs(c *fleetcert.Certificate) []any {
	args := []any{
		c.AccountID, c.Region, c.ID, c.CACertificateID, string(c.Status), c.PEM, string(c.Mode),
		c.OwnedBy, c.PreviousOwnedBy, c.CreationDate.UTC(), timeArg(c.LastModifiedDate),
		c.CustomerVersion, c.GenerationID, timeArg(c.NotBefore), timeArg(c.NotAfter),
	}
	if t := c.Transfer; t != nil {
		args = append(args, t.TargetAccountID, t.TransferMessage, t.RejectReason,
			timeArg(t.TransferDate), timeArg(t.AcceptDate), timeArg(t.RejectDate))
	} else {
		args = append(args, nil, nil, nil, nil, nil, nil)
	}
	var issuer any // NULL when unknown
	if len(c.Issuer) > 0 {
		issuer = c.Issuer
	}
	keyID := c.AuthorityKeyID
	if keyID == nil {
		keyID = []byte{} // absent: migration 0005
	}
	serial := c.Serial
	if serial == nil {
		serial = []byte{} // unknown: migration 0007
	}
	return append(args, issuer, keyID, c.CommonName, serial)
}

// scanCertificate reads a row of certificateColumns and seq.
func scanCertificate(row pgx.Row) (*fleetcert.Certificate, error) {
	var (
		c                                    fleetcert.Certificate
		status, mode                         string
		created                              time.Time
		modified, notBefore, notAfter        *time.Time
		target, message, reason              *string
		transferDate, acceptDate, rejectDate *time.Time
	)
	err := row.Scan(&c.AccountID, &c.Region, &c.ID, &c.CACertificateID, &status, &c.PEM, &mode,
		&c.OwnedBy, &c.PreviousOwnedBy, &created, &modified, &c.CustomerVersion, &c.GenerationID,
		&notBefore, &notAfter,
		&target, &message, &reason, &transferDate, &acceptDate, &rejectDate,
		&c.Issuer, &c.AuthorityKeyID, &c.CommonName, &c.Serial,
		&c.Seq)
	if err != nil {
		return nil, err
	}
	if len(c.Issuer) == 0 {
		c.Issuer = nil
	}
	if len(c.AuthorityKeyID) == 0 {
		c.AuthorityKeyID = nil
	}
	if len(c.Serial) == 0 {
		c.Serial = nil
	}
	c.Status = fleetcert.Status(status)
	c.Mode = fleetcert.CertificateMode(mode)
	c.CreationDate = created.UTC()
	c.LastModifiedDate = fromTime(modified)
	c.NotBefore = fromTime(notBefore)
	c.NotAfter = fromTime(notAfter)
	if target != nil {
		c.Transfer = &fleetcert.TransferData{
			TargetAccountID: *target,
			TransferMessage: deref(message),
			RejectReason:    deref(reason),
			TransferDate:    fromTime(transferDate),
			AcceptDate:      fromTime(acceptDate),
			RejectDate:      fromTime(rejectDate),
		}
	}
	return &c, nil
}

// deref returns *s, "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Certificate returns the client certificate id in scope. In an Update it
// stays as read until commit (see DB.Update).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Certificate(ctx context.Context, scope fleetcert.Scope, id string) (*fleetcert.Certificate, error) {
	var c *fleetcert.Certificate
	err := tx.readRecord(ctx, certificateKey(id), func(row pgx.Row) (err error) {
		c, err = scanCertificate(row)
		return err
	}, selectCertificateSQL, scope.AccountID, scope.Region, id)
	if err != nil {
		return nil, storeError(ctx, err, "certificate "+id)
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
	err := tx.lockedQueryRow(ctx, []int32{certificateKey(c.ID)}, func(row pgx.Row) error { return row.Scan(&c.Seq) },
		insertCertificateSQL, certificateArgs(c)...)
	return storeError(ctx, err, "certificate "+c.ID)
}

// UpdateCertificate replaces every field of the stored client certificate
// (c.Scope, c.ID) but its Seq.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) UpdateCertificate(ctx context.Context, c *fleetcert.Certificate) error {
	if err := tx.checkWritable("update certificate"); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, updateCertificateSQL, certificateArgs(c)...)
	return rowsAffected(ctx, tag.RowsAffected(), err, "certificate "+c.ID)
}

// DeleteCertificate removes the client certificate id in scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteCertificate(ctx context.Context, scope fleetcert.Scope, id string) error {
	if err := tx.checkWritable("delete certificate"); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, deleteCertificateSQL, scope.AccountID, scope.Region, id)
	return rowsAffected(ctx, tag.RowsAffected(), err, "certificate "+id)
}

// rowsAffected turns an UPDATE or DELETE that matched no row into
// ResourceNotFoundException.
func rowsAffected(ctx context.Context, n int64, err error, what string) error {
	if err != nil {
		return storeError(ctx, err, what)
	} else if n == 0 {
		return storeError(ctx, pgx.ErrNoRows, what)
	}
	return nil
}

// listSQL builds a keyset-pagination query: where are the conditions
// besides the cursor, args their parameters so far. The row-value
// comparison is a range on an index ending in (creation_date, seq), so a
// page costs its own rows however deep it is.
func listSQL(columns, table string, where []string, args []any, ascending bool, after *fleetcert.Cursor, limit int) (string, []any) {
	return listSQLBy("creation_date", columns, table, where, args, ascending, after, limit)
}

// listSQLBy is listSQL in the order (col, seq); the cursor's CreationDate
// holds col's value.
func listSQLBy(col, columns, table string, where []string, args []any, ascending bool, after *fleetcert.Cursor, limit int) (string, []any) {
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if after != nil {
		op := "<"
		if ascending {
			op = ">"
		}
		where = append(where, fmt.Sprintf("(%s, seq) %s (%s, %s)", col, op, param(after.CreationDate.UTC()), param(after.Seq)))
	}
	if col != "creation_date" {
		// The Registry always sets NotAfter; a row without one is left out
		// of the listing by it, as in the SQLite store.
		where = append(where, col+" IS NOT NULL")
	}
	order := col + " DESC, seq DESC"
	if ascending {
		order = col + ", seq"
	}
	return `SELECT ` + columns + `, seq FROM ` + table + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + order + ` LIMIT ` + param(limit), args
}

// ListCertificates returns up to q.Limit certificates of q.Scope in
// (CreationDate, Seq) order, strictly after q.After when it is set.
func (tx *Tx) ListCertificates(ctx context.Context, q fleetcert.CertificateQuery) ([]*fleetcert.Certificate, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	query, args := listCertificatesQuery(q)
	certs := make([]*fleetcert.Certificate, 0, min(q.Limit, 256))
	err := tx.readSet(ctx, nil, func(rows pgx.Rows) error {
		c, err := scanCertificate(rows)
		if err == nil {
			certs = append(certs, c)
		}
		return err
	}, query, args...)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("list certificates: %w", err), "")
	}
	return certs, nil
}

// listCertificatesQuery returns ListCertificates' query for q and its
// arguments. PostgreSQL seeks the row value (creation_date, seq) > ($n, $m)
// on the index as one range that starts at the cursor, ties included
// (TestListCertificatesPlan checks it), so unlike SQLite's it needs no
// second range.
func listCertificatesQuery(q fleetcert.CertificateQuery) (string, []any) {
	where, args := certificateWhere(q)
	// A listing never returns the PEM (the Store contract), and the PEM is
	// most of a row: select an empty one.
	columns := strings.Replace(certificateColumns, "status, pem,", "status, '' AS pem,", 1)
	col := "creation_date"
	if q.OrderByExpiry {
		col = "not_after"
	}
	return listSQLBy(col, columns, "certificates", where, args, q.Ascending, q.After, q.Limit)
}

// certificateWhere returns the conditions of q's filters and their
// arguments ($1, $2: the scope).
func certificateWhere(q fleetcert.CertificateQuery) ([]string, []any) {
	where := []string{"account_id = $1", "region = $2"}
	args := []any{q.AccountID, q.Region}
	add := func(cond string, vs ...any) {
		ps := make([]any, len(vs))
		for i, v := range vs {
			args = append(args, v)
			ps[i] = len(args)
		}
		where = append(where, fmt.Sprintf(cond, ps...))
	}
	switch {
	case q.CACertificateID != "":
		add("ca_certificate_id = $%d", q.CACertificateID)
	case q.NoCA:
		add("ca_certificate_id = ''")
	}
	if q.ExcludeCACertificateID != "" {
		add("ca_certificate_id <> $%d", q.ExcludeCACertificateID)
	}
	if q.Status != "" {
		add("status = $%d", string(q.Status))
	}
	if q.OwnedBy != "" {
		add("owned_by = $%d", q.OwnedBy)
	}
	if q.IDPrefix != "" {
		// Ids are lowercase hex: every id that starts with the prefix sorts
		// below the prefix followed by 'g'. COLLATE "C" compares bytes, as
		// the prefix range needs, whatever the database's collation.
		add(`certificate_id COLLATE "C" >= $%d AND certificate_id COLLATE "C" < $%d`, q.IDPrefix, q.IDPrefix+"g")
	}
	if q.Issuer != nil {
		add("issuer = $%d", q.Issuer)
		if q.AuthorityKeyID != nil {
			add("authority_key_id IN ($%d, ''::bytea)", q.AuthorityKeyID)
		}
	}
	if !q.NotAfterBefore.IsZero() {
		add("not_after < $%d", q.NotAfterBefore.UTC())
	}
	if p := q.CommonNamePrefix; p != "" {
		// LIKE 'p%' in the C collation is a range on the index, compared
		// byte for byte; unlike a computed upper bound it is valid UTF-8
		// whatever p ends with. The pattern's own characters are escaped.
		add(`common_name COLLATE "C" LIKE $%d ESCAPE '\'`, likeEscaper.Replace(p)+"%")
	}
	return where, args
}

// likeEscaper escapes LIKE's special characters.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// CountCertificates returns min(limit, the number of certificates of
// q.Scope matching q's filters).
func (tx *Tx) CountCertificates(ctx context.Context, q fleetcert.CertificateQuery, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	where, args := certificateWhere(q)
	args = append(args, limit)
	query := fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM certificates WHERE %s LIMIT $%d) c`, strings.Join(where, " AND "), len(args))
	var n int
	if err := tx.q.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, storeError(ctx, fmt.Errorf("count certificates: %w", err), "")
	}
	return n, nil
}

// updateCertificateStatusSQL writes only the columns a status change
// moves. Under READ COMMITTED an UPDATE that waited for another one
// re-checks its WHERE on the row that one committed, so a certificate
// changed meanwhile is left alone.
const updateCertificateStatusSQL = `UPDATE certificates SET
		status = $4, last_modified_date = $5, customer_version = $6, generation_id = $7
		WHERE seq = $9 AND account_id = $1 AND region = $2 AND certificate_id = $3 AND customer_version = $8`

// UpdateCertificateStatus stores c's Status, LastModifiedDate,
// CustomerVersion and GenerationID on the certificate (c.Scope, c.ID) if
// its stored CustomerVersion is fromVersion, and reports whether it did.
func (tx *Tx) UpdateCertificateStatus(ctx context.Context, c *fleetcert.Certificate, fromVersion int) (bool, error) {
	if err := tx.checkWritable("update certificate status"); err != nil {
		return false, err
	}
	tag, err := tx.q.Exec(ctx, updateCertificateStatusSQL, c.AccountID, c.Region, c.ID,
		string(c.Status), timeArg(c.LastModifiedDate), c.CustomerVersion, c.GenerationID, fromVersion, c.Seq)
	if err != nil {
		return false, storeError(ctx, err, "certificate "+c.ID)
	}
	return tag.RowsAffected() == 1, nil
}
