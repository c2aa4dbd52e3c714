package sqlite

// ListCertificatesSQL is listCertificatesSQL, for the query-plan tests.
var ListCertificatesSQL = listCertificatesSQL
