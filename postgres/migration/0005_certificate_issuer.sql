-- 0005: what a certificate's contents say, kept beside it so that the
-- console can find every certificate a CA signed (not only those registered
-- under it), search by subject common name and sort by expiry (SQLite's
-- migration 0004). authority_key_id is an empty bytea without the
-- extension, so that "this key id or none" is an IN on the index.
ALTER TABLE certificates ADD COLUMN issuer bytea;
ALTER TABLE certificates ADD COLUMN authority_key_id bytea NOT NULL DEFAULT ''::bytea;
ALTER TABLE certificates ADD COLUMN common_name text NOT NULL DEFAULT '';

CREATE INDEX certificates_by_issuer ON certificates (account_id, region, issuer, authority_key_id, ca_certificate_id, creation_date, seq);
-- COLLATE "C": the prefix range compares bytes, whatever the database's
-- collation.
CREATE INDEX certificates_by_common_name ON certificates (account_id, region, common_name COLLATE "C");
CREATE INDEX certificates_by_expiry ON certificates (account_id, region, not_after, seq);
