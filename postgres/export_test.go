package postgres

// ListCertificatesQuery is listCertificatesQuery, for the query-plan tests.
var ListCertificatesQuery = listCertificatesQuery
