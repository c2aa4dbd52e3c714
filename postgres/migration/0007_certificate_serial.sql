-- 0007: the certificate's serial number (big-endian, no leading zeros), so
-- that the OCSP responder finds a certificate by it (Tx.CertificatesBySerial),
-- and the registrations a CRL lists: those not ACTIVE, by issuer
-- (Tx.UnusableCertificatesByIssuer), few beside the ACTIVE ones, hence a
-- partial index (SQLite's migration 0011). serial is empty when the PEM
-- gave none, NULL for rows stored before this migration until DB.Open
-- fills them.
ALTER TABLE certificates ADD COLUMN serial bytea;

CREATE INDEX certificates_by_serial ON certificates (serial);
CREATE INDEX certificates_unusable_by_issuer ON certificates (issuer, seq) WHERE status <> 'ACTIVE';
CREATE INDEX certificates_serial_unfilled ON certificates (seq) WHERE serial IS NULL;
