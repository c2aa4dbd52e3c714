package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// caColumns are the columns of a CA certificate, in the order of caArgs
// (?1 … ?19) and scanCA (then seq).
const caColumns = `account_id, region, ca_certificate_id, status, pem, mode, auto_registration_status,
	template_body, role_arn, template_name, tags, subject,
	owned_by, creation_date, last_modified_date, customer_version, generation_id,
	not_before, not_after`

const (
	selectCASQL = `SELECT ` + caColumns + `, seq FROM ca_certificates
		WHERE account_id = ?1 AND region = ?2 AND ca_certificate_id = ?3`

	selectCAsByIDSQL = `SELECT ` + caColumns + `, seq FROM ca_certificates INDEXED BY ca_certificates_by_id
		WHERE region = ?1 AND ca_certificate_id = ?2 ORDER BY seq`

	insertCASQL = `INSERT INTO ca_certificates (` + caColumns + `)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)`

	updateCASQL = `UPDATE ca_certificates SET
		status = ?4, pem = ?5, mode = ?6, auto_registration_status = ?7,
		template_body = ?8, role_arn = ?9, template_name = ?10, tags = ?11, subject = ?12,
		owned_by = ?13, creation_date = ?14, last_modified_date = ?15, customer_version = ?16,
		generation_id = ?17, not_before = ?18, not_after = ?19
		WHERE account_id = ?1 AND region = ?2 AND ca_certificate_id = ?3`

	deleteCASQL = `DELETE FROM ca_certificates
		WHERE account_id = ?1 AND region = ?2 AND ca_certificate_id = ?3`

	selectRegistrationCodeSQL = `SELECT code FROM registration_codes WHERE account_id = ?1 AND region = ?2`
	putRegistrationCodeSQL    = `INSERT INTO registration_codes (account_id, region, code) VALUES (?1, ?2, ?3)
		ON CONFLICT (account_id, region) DO UPDATE SET code = excluded.code`
	deleteRegistrationCodeSQL = `DELETE FROM registration_codes WHERE account_id = ?1 AND region = ?2`
)

// Filters of ListCACertificates, a bit each: the index of the statement that
// applies them in statements.listCAs.
const (
	bySubject  = 1 << iota // subject = ?6
	byTemplate             // template_name = ?7

	caFilters = 1 << iota // how many combinations
)

// listCAsSQL returns the keyset-pagination query for one order and
// combination of filters. Its parameters: ?1 account, ?2 region, ?3 creation
// date and ?4 seq of the cursor, ?5 limit, ?6 subject, ?7 template name. As
// for certificates, a page is a range on an index ending in (creation_date,
// seq).
func listCAsSQL(ascending bool, filters int) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + caColumns + `, seq FROM ca_certificates`)
	switch {
	case filters&bySubject != 0:
		// At most a few CAs share a subject (fleetcert.MaxCAsPerSubject).
		b.WriteString(` INDEXED BY ca_certificates_by_subject`)
	case filters&byTemplate != 0:
		b.WriteString(` INDEXED BY ca_certificates_by_template`)
	default:
		b.WriteString(` INDEXED BY ca_certificates_by_creation`)
	}
	b.WriteString(` WHERE account_id = ?1 AND region = ?2`)
	if filters&bySubject != 0 {
		b.WriteString(` AND subject = ?6`)
	}
	if filters&byTemplate != 0 {
		b.WriteString(` AND template_name = ?7`)
	}
	if ascending {
		b.WriteString(` AND (creation_date, seq) > (?3, ?4) ORDER BY creation_date, seq`)
	} else {
		b.WriteString(` AND (creation_date, seq) < (?3, ?4) ORDER BY creation_date DESC, seq DESC`)
	}
	b.WriteString(` LIMIT ?5`)
	return b.String()
}

// caArgs returns the column values of ca in caColumns order.
func caArgs(ca *fleetcert.CACertificate) ([]any, error) {
	var e encoder
	args := []any{
		ca.AccountID, ca.Region, ca.ID, string(ca.Status), ca.PEM, string(ca.Mode), string(ca.AutoRegistrationStatus),
		ca.RegistrationConfig.TemplateBody, ca.RegistrationConfig.RoleARN, ca.RegistrationConfig.TemplateName,
		nil, subjectArg(ca.Subject),
		ca.OwnedBy, e.nanos(ca.CreationDate), e.nanos(ca.LastModifiedDate), ca.CustomerVersion, ca.GenerationID,
		e.micros(ca.NotBefore), e.micros(ca.NotAfter),
	}
	if e.err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", ca.ID, e.err)
	}
	if len(ca.Tags) > 0 {
		tags, err := json.Marshal(ca.Tags)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %s: tags: %w", ca.ID, err)
		}
		args[10] = string(tags)
	}
	return args, nil
}

// subjectArg returns a raw subject as a column value: a BLOB, NULL when
// empty.
func subjectArg(subject []byte) any {
	if len(subject) == 0 {
		return nil
	}
	return subject
}

// scanCA reads a row of caColumns and seq.
func scanCA(s scanner) (*fleetcert.CACertificate, error) {
	var (
		ca                                     fleetcert.CACertificate
		status, mode, auto                     string
		tags                                   sql.NullString
		subject                                []byte
		created, modified, notBefore, notAfter sql.NullInt64
	)
	rc := &ca.RegistrationConfig
	err := s.Scan(&ca.AccountID, &ca.Region, &ca.ID, &status, &ca.PEM, &mode, &auto,
		&rc.TemplateBody, &rc.RoleARN, &rc.TemplateName, &tags, &subject,
		&ca.OwnedBy, &created, &modified, &ca.CustomerVersion, &ca.GenerationID,
		&notBefore, &notAfter,
		&ca.Seq)
	if err != nil {
		return nil, err
	}
	ca.Status = fleetcert.CAStatus(status)
	ca.Mode = fleetcert.CertificateMode(mode)
	ca.AutoRegistrationStatus = fleetcert.AutoRegistrationStatus(auto)
	if tags.Valid {
		if err := json.Unmarshal([]byte(tags.String), &ca.Tags); err != nil {
			return nil, fmt.Errorf("CA certificate %s: tags: %w", ca.ID, err)
		}
	}
	if len(subject) > 0 {
		ca.Subject = subject // Scan copies into a new slice
	}
	ca.CreationDate = fromNanos(created)
	ca.LastModifiedDate = fromNanos(modified)
	ca.NotBefore = fromMicros(notBefore)
	ca.NotAfter = fromMicros(notAfter)
	return &ca, nil
}

// CACertificate returns the CA certificate id in scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) CACertificate(ctx context.Context, scope fleetcert.Scope, id string) (*fleetcert.CACertificate, error) {
	row := tx.stmt(ctx, tx.stmts.ca).QueryRowContext(ctx, scope.AccountID, scope.Region, id)
	ca, err := scanCA(row)
	if err != nil {
		return nil, storeError(err, "CA certificate "+id)
	}
	return ca, nil
}

// CACertificatesByID returns the registrations of CA certificate id in every
// account of region, in the order they were created.
func (tx *Tx) CACertificatesByID(ctx context.Context, region, id string) ([]*fleetcert.CACertificate, error) {
	rows, err := tx.stmt(ctx, tx.stmts.casByID).QueryContext(ctx, region, id)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", id, err)
	}
	return scanCAs(rows, "CA certificate "+id)
}

// scanCAs reads and closes rows of caColumns and seq. what names the query
// in errors.
func scanCAs(rows *sql.Rows, what string) ([]*fleetcert.CACertificate, error) {
	defer rows.Close()
	var cas []*fleetcert.CACertificate
	for rows.Next() {
		ca, err := scanCA(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		cas = append(cas, ca)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return cas, nil
}

// CreateCACertificate stores a new CA certificate and sets ca.Seq.
//
// Errors: ResourceAlreadyExistsException when (ca.Scope, ca.ID) exists.
func (tx *Tx) CreateCACertificate(ctx context.Context, ca *fleetcert.CACertificate) error {
	if err := tx.checkWritable("create CA certificate"); err != nil {
		return err
	}
	args, err := caArgs(ca)
	if err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.insertCA).ExecContext(ctx, args...)
	if err != nil {
		return storeError(err, "CA certificate "+ca.ID)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("CA certificate %s: %w", ca.ID, err)
	}
	ca.Seq = seq
	return nil
}

// UpdateCACertificate replaces every field of the stored CA certificate
// (ca.Scope, ca.ID) but its Seq.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) UpdateCACertificate(ctx context.Context, ca *fleetcert.CACertificate) error {
	if err := tx.checkWritable("update CA certificate"); err != nil {
		return err
	}
	args, err := caArgs(ca)
	if err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.updateCA).ExecContext(ctx, args...)
	return rowsAffected(res, err, "CA certificate "+ca.ID)
}

// DeleteCACertificate removes the CA certificate id in scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteCACertificate(ctx context.Context, scope fleetcert.Scope, id string) error {
	if err := tx.checkWritable("delete CA certificate"); err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.deleteCA).ExecContext(ctx, scope.AccountID, scope.Region, id)
	return rowsAffected(res, err, "CA certificate "+id)
}

// ListCACertificates returns up to q.Limit CA certificates of q.Scope
// matching q's filters, in (CreationDate, Seq) order, strictly after q.After
// when it is set.
func (tx *Tx) ListCACertificates(ctx context.Context, q fleetcert.CAQuery) ([]*fleetcert.CACertificate, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	var created, seq int64 = math.MinInt64, math.MinInt64
	if !q.Ascending {
		created, seq = math.MaxInt64, math.MaxInt64
	}
	if q.After != nil {
		var e encoder
		n := e.nanos(q.After.CreationDate)
		if e.err != nil {
			return nil, fmt.Errorf("list CA certificates: cursor: %w", e.err)
		}
		created, seq = n.Int64, q.After.Seq
	}
	asc, filters := 0, 0
	if q.Ascending {
		asc = 1
	}
	args := []any{q.AccountID, q.Region, created, seq, q.Limit, q.Subject, q.TemplateName}
	n := 5
	if len(q.Subject) > 0 {
		filters, n = filters|bySubject, 6
	}
	if q.TemplateName != "" {
		filters, n = filters|byTemplate, 7
	}
	rows, err := tx.stmt(ctx, tx.stmts.listCAs[asc][filters]).QueryContext(ctx, args[:n]...)
	if err != nil {
		return nil, fmt.Errorf("list CA certificates: %w", err)
	}
	return scanCAs(rows, "list CA certificates")
}

// RegistrationCode returns the registration code of scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) RegistrationCode(ctx context.Context, scope fleetcert.Scope) (string, error) {
	var code string
	err := tx.stmt(ctx, tx.stmts.registrationCode).QueryRowContext(ctx, scope.AccountID, scope.Region).Scan(&code)
	if err != nil {
		return "", storeError(err, "registration code")
	}
	return code, nil
}

// PutRegistrationCode sets the registration code of scope, replacing the
// one it has.
func (tx *Tx) PutRegistrationCode(ctx context.Context, scope fleetcert.Scope, code string) error {
	if err := tx.checkWritable("put registration code"); err != nil {
		return err
	}
	_, err := tx.stmt(ctx, tx.stmts.putRegistrationCode).ExecContext(ctx, scope.AccountID, scope.Region, code)
	return storeError(err, "registration code")
}

// DeleteRegistrationCode removes the registration code of scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteRegistrationCode(ctx context.Context, scope fleetcert.Scope) error {
	if err := tx.checkWritable("delete registration code"); err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.deleteRegistrationCode).ExecContext(ctx, scope.AccountID, scope.Region)
	return rowsAffected(res, err, "registration code")
}
