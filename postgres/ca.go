package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// caColumns are the columns of a CA certificate, in the order of caArgs
// ($1 … $19) and scanCA (then seq).
const caColumns = `account_id, region, ca_certificate_id, status, pem, mode, auto_registration_status,
	template_body, role_arn, template_name, tags, subject,
	owned_by, creation_date, last_modified_date, customer_version, generation_id,
	not_before, not_after`

const (
	selectCASQL = `SELECT ` + caColumns + `, seq FROM ca_certificates
		WHERE account_id = $1 AND region = $2 AND ca_certificate_id = $3`

	selectCAsByIDSQL = `SELECT ` + caColumns + `, seq FROM ca_certificates
		WHERE region = $1 AND ca_certificate_id = $2 ORDER BY seq`

	insertCASQL = `INSERT INTO ca_certificates (` + caColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
		RETURNING seq`

	updateCASQL = `UPDATE ca_certificates SET
		status = $4, pem = $5, mode = $6, auto_registration_status = $7,
		template_body = $8, role_arn = $9, template_name = $10, tags = $11, subject = $12,
		owned_by = $13, creation_date = $14, last_modified_date = $15, customer_version = $16,
		generation_id = $17, not_before = $18, not_after = $19
		WHERE account_id = $1 AND region = $2 AND ca_certificate_id = $3`

	deleteCASQL = `DELETE FROM ca_certificates
		WHERE account_id = $1 AND region = $2 AND ca_certificate_id = $3`

	selectRegistrationCodeSQL = `SELECT code FROM registration_codes WHERE account_id = $1 AND region = $2`
	putRegistrationCodeSQL    = `INSERT INTO registration_codes (account_id, region, code) VALUES ($1, $2, $3)
		ON CONFLICT (account_id, region) DO UPDATE SET code = excluded.code`
	deleteRegistrationCodeSQL = `DELETE FROM registration_codes WHERE account_id = $1 AND region = $2`
)

// caKey is the lock of the registrations of CA id in every scope: a lookup
// that found none, CACertificatesByID, an insert.
func caKey(id string) int32 { return lockKey("ca", id) }

// caSubjectKey is the lock of the CAs of scope with a subject:
// ListCACertificates by subject, an insert.
func caSubjectKey(scope fleetcert.Scope, subject []byte) int32 {
	return lockKey("ca-subject", scope.AccountID, scope.Region, string(subject))
}

// registrationCodeKey is the lock of the registration code of scope.
func registrationCodeKey(scope fleetcert.Scope) int32 {
	return lockKey("registration-code", scope.AccountID, scope.Region)
}

// caArgs returns the column values of ca in caColumns order.
func caArgs(ca *fleetcert.CACertificate) ([]any, error) {
	args := []any{
		ca.AccountID, ca.Region, ca.ID, string(ca.Status), ca.PEM, string(ca.Mode), string(ca.AutoRegistrationStatus),
		ca.RegistrationConfig.TemplateBody, ca.RegistrationConfig.RoleARN, ca.RegistrationConfig.TemplateName,
		nil, subjectArg(ca.Subject),
		ca.OwnedBy, ca.CreationDate.UTC(), timeArg(ca.LastModifiedDate), ca.CustomerVersion, ca.GenerationID,
		timeArg(ca.NotBefore), timeArg(ca.NotAfter),
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

// subjectArg returns a raw subject as a column value: bytea, NULL when
// empty.
func subjectArg(subject []byte) any {
	if len(subject) == 0 {
		return nil
	}
	return subject
}

// scanCA reads a row of caColumns and seq.
func scanCA(row pgx.Row) (*fleetcert.CACertificate, error) {
	var (
		ca                            fleetcert.CACertificate
		status, mode, auto            string
		tags                          *string
		subject                       []byte
		created                       time.Time
		modified, notBefore, notAfter *time.Time
	)
	rc := &ca.RegistrationConfig
	err := row.Scan(&ca.AccountID, &ca.Region, &ca.ID, &status, &ca.PEM, &mode, &auto,
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
	if tags != nil {
		if err := json.Unmarshal([]byte(*tags), &ca.Tags); err != nil {
			return nil, fmt.Errorf("CA certificate %s: tags: %w", ca.ID, err)
		}
	}
	if len(subject) > 0 {
		ca.Subject = subject
	}
	ca.CreationDate = created.UTC()
	ca.LastModifiedDate = fromTime(modified)
	ca.NotBefore = fromTime(notBefore)
	ca.NotAfter = fromTime(notAfter)
	return &ca, nil
}

// CACertificate returns the CA certificate id in scope. In an Update it
// stays as read until commit.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) CACertificate(ctx context.Context, scope fleetcert.Scope, id string) (*fleetcert.CACertificate, error) {
	var ca *fleetcert.CACertificate
	err := tx.readRecord(ctx, caKey(id), func(row pgx.Row) (err error) {
		ca, err = scanCA(row)
		return err
	}, selectCASQL, scope.AccountID, scope.Region, id)
	if err != nil {
		return nil, storeError(ctx, err, "CA certificate "+id)
	}
	return ca, nil
}

// CACertificatesByID returns the registrations of CA certificate id in every
// account of region, in the order they were created. In an Update none is
// added until commit.
func (tx *Tx) CACertificatesByID(ctx context.Context, region, id string) ([]*fleetcert.CACertificate, error) {
	cas, err := tx.readCAs(ctx, []int32{caKey(id)}, selectCAsByIDSQL, region, id)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("CA certificate %s: %w", id, err), "")
	}
	return cas, nil
}

// readCAs runs a query of caColumns and seq with readSet.
func (tx *Tx) readCAs(ctx context.Context, keys []int32, query string, args ...any) ([]*fleetcert.CACertificate, error) {
	var cas []*fleetcert.CACertificate
	err := tx.readSet(ctx, keys, func(rows pgx.Rows) error {
		ca, err := scanCA(rows)
		if err == nil {
			cas = append(cas, ca)
		}
		return err
	}, query, args...)
	return cas, err
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
	keys := []int32{caKey(ca.ID), caSubjectKey(ca.Scope, ca.Subject)}
	err = tx.lockedQueryRow(ctx, keys, func(row pgx.Row) error { return row.Scan(&ca.Seq) }, insertCASQL, args...)
	return storeError(ctx, err, "CA certificate "+ca.ID)
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
	tag, err := tx.q.Exec(ctx, updateCASQL, args...)
	return rowsAffected(ctx, tag.RowsAffected(), err, "CA certificate "+ca.ID)
}

// DeleteCACertificate removes the CA certificate id in scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteCACertificate(ctx context.Context, scope fleetcert.Scope, id string) error {
	if err := tx.checkWritable("delete CA certificate"); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, deleteCASQL, scope.AccountID, scope.Region, id)
	return rowsAffected(ctx, tag.RowsAffected(), err, "CA certificate "+id)
}

// ListCACertificates returns up to q.Limit CA certificates of q.Scope
// matching q's filters, in (CreationDate, Seq) order, strictly after q.After
// when it is set. In an Update, a listing by subject also keeps CAs with
// that subject from being added until commit.
func (tx *Tx) ListCACertificates(ctx context.Context, q fleetcert.CAQuery) ([]*fleetcert.CACertificate, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	where := []string{"account_id = $1", "region = $2"}
	args := []any{q.AccountID, q.Region}
	var keys []int32
	if len(q.Subject) > 0 {
		args = append(args, q.Subject)
		where = append(where, fmt.Sprintf("subject = $%d", len(args)))
		keys = append(keys, caSubjectKey(q.Scope, q.Subject))
	}
	if q.TemplateName != "" {
		args = append(args, q.TemplateName)
		where = append(where, fmt.Sprintf("template_name = $%d", len(args)))
	}
	query, args := listSQL(caColumns, "ca_certificates", where, args, q.Ascending, q.After, q.Limit)
	cas, err := tx.readCAs(ctx, keys, query, args...)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("list CA certificates: %w", err), "")
	}
	return cas, nil
}

// RegistrationCode returns the registration code of scope. In an Update it
// stays as read (or absent) until commit.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) RegistrationCode(ctx context.Context, scope fleetcert.Scope) (string, error) {
	var code string
	err := tx.readRecord(ctx, registrationCodeKey(scope), func(row pgx.Row) error { return row.Scan(&code) },
		selectRegistrationCodeSQL, scope.AccountID, scope.Region)
	if err != nil {
		return "", storeError(ctx, err, "registration code")
	}
	return code, nil
}

// PutRegistrationCode sets the registration code of scope, replacing the
// one it has.
func (tx *Tx) PutRegistrationCode(ctx context.Context, scope fleetcert.Scope, code string) error {
	if err := tx.checkWritable("put registration code"); err != nil {
		return err
	}
	err := tx.lockedExec(ctx, []int32{registrationCodeKey(scope)}, putRegistrationCodeSQL, scope.AccountID, scope.Region, code)
	return storeError(ctx, err, "registration code")
}

// DeleteRegistrationCode removes the registration code of scope.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteRegistrationCode(ctx context.Context, scope fleetcert.Scope) error {
	if err := tx.checkWritable("delete registration code"); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, deleteRegistrationCodeSQL, scope.AccountID, scope.Region)
	return rowsAffected(ctx, tag.RowsAffected(), err, "registration code")
}
