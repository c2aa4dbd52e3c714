-- 0004: what a certificate's contents say, kept beside it so that the
-- console can find every certificate a CA signed (not only those registered
-- under it), search by subject common name and sort by expiry.
--
-- issuer is the raw DER issuer name, authority_key_id the authority key
-- identifier (an empty blob without the extension, so that "this key id or
-- none" is an IN on the index), common_name the subject common name. NULL common_name marks a row stored before this migration: DB.Open
-- fills the three from the stored PEM (backfillCertificates), so nothing
-- already stored is left out.
ALTER TABLE certificates ADD COLUMN issuer BLOB;
ALTER TABLE certificates ADD COLUMN authority_key_id BLOB;
ALTER TABLE certificates ADD COLUMN common_name TEXT;

-- The candidates a CA signed: its subject as their issuer, its key id as
-- their authority key id (or none), not registered under it; the Registry
-- confirms each signature. ca_certificate_id is in the index so that the
-- many certificates registered under the CA are passed over in the index,
-- without reading their rows.
CREATE INDEX certificates_by_issuer ON certificates (account_id, region, issuer, authority_key_id, ca_certificate_id, creation_date, seq);
-- Search by the start of the common name (a range on the index).
CREATE INDEX certificates_by_common_name ON certificates (account_id, region, common_name);
-- Keyset pagination by end of validity.
CREATE INDEX certificates_by_expiry ON certificates (account_id, region, not_after, seq);
-- The backfill's scan of the rows it has not filled yet.
CREATE INDEX certificates_unfilled ON certificates (seq) WHERE common_name IS NULL;
