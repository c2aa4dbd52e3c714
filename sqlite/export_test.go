package sqlite

import (
	"context"
	"database/sql"
)

// ListCertificatesSQL is listCertificatesSQL, for the query-plan tests.
var ListCertificatesSQL = listCertificatesSQL

// AuditEntriesSQL is auditEntriesSQL, for the query-plan tests.
var AuditEntriesSQL = auditEntriesSQL

// MigrateTo makes the store at path as a build whose last migration was
// version would have left it.
func MigrateTo(path string, version int) error {
	w, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		return err
	}
	defer w.Close()
	db := NewDB(path)
	db.write = w
	return db.migrateTo(context.Background(), version)
}

// Statements by certificate id, for the query-plan tests.
var (
	SelectCertificateSQL = selectCertificateSQL
	UpdateCertificateSQL = updateCertificateSQL
	DeleteCertificateSQL = deleteCertificateSQL
	CertificatesByIDSQL  = certificatesByIDSQL
)
