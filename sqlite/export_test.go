package sqlite

// ListCertificatesSQL is listCertificatesSQL, for the query-plan tests.
var ListCertificatesSQL = listCertificatesSQL

// AuditEntriesSQL is auditEntriesSQL, for the query-plan tests.
var AuditEntriesSQL = auditEntriesSQL
