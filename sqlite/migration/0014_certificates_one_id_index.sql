-- 0014: one index by certificate id instead of two. The table's
-- UNIQUE (account_id, region, certificate_id) and certificates_by_id
-- (certificate_id), for the gateway's lookup across accounts, were two
-- indexes keyed on a hash: each stored certificate went into each at a
-- random place, and a batch of 1,000 dirtied ~1,000 pages of each, written
-- to the WAL and again by the checkpoint (seeding 1,000,000 was bound by
-- those writes and their fsync). One unique index on (certificate_id,
-- account_id, region) answers both: the record's key in any column order,
-- and the id alone as its prefix.
--
-- SQLite cannot drop a table's own UNIQUE constraint, so the table is
-- rebuilt (https://www.sqlite.org/lang_altertable.html#otheralter): same
-- columns in the same order, same rows and seq, and the AUTOINCREMENT
-- counter carried over, so that no seq of a deleted row is ever given again.
CREATE TABLE certificates_new (
	seq                        INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id                 TEXT    NOT NULL,
	region                     TEXT    NOT NULL,
	certificate_id             TEXT    NOT NULL,
	ca_certificate_id          TEXT    NOT NULL DEFAULT '',
	status                     TEXT    NOT NULL,
	pem                        TEXT    NOT NULL,
	mode                       TEXT    NOT NULL,
	owned_by                   TEXT    NOT NULL DEFAULT '',
	previous_owned_by          TEXT    NOT NULL DEFAULT '',
	creation_date              INTEGER NOT NULL,
	last_modified_date         INTEGER,
	customer_version           INTEGER NOT NULL,
	generation_id              TEXT    NOT NULL DEFAULT '',
	not_before                 INTEGER,
	not_after                  INTEGER,
	-- Transfer: all NULL when there is no transfer; transfer_target_account_id
	-- is set whenever there is one.
	transfer_target_account_id TEXT,
	transfer_message           TEXT,
	transfer_reject_reason     TEXT,
	transfer_date              INTEGER,
	transfer_accept_date       INTEGER,
	transfer_reject_date       INTEGER,
	-- 0004, 0011: filled from the PEM (backfill.go); NULL until then.
	issuer                     BLOB,
	authority_key_id           BLOB,
	common_name                TEXT,
	serial                     BLOB,

	CHECK (transfer_target_account_id IS NOT NULL OR (
		transfer_message IS NULL AND transfer_reject_reason IS NULL AND
		transfer_date IS NULL AND transfer_accept_date IS NULL AND
		transfer_reject_date IS NULL))
) STRICT;

INSERT INTO certificates_new (seq, account_id, region, certificate_id, ca_certificate_id, status, pem, mode,
	owned_by, previous_owned_by, creation_date, last_modified_date, customer_version, generation_id,
	not_before, not_after, transfer_target_account_id, transfer_message, transfer_reject_reason,
	transfer_date, transfer_accept_date, transfer_reject_date, issuer, authority_key_id, common_name, serial)
SELECT seq, account_id, region, certificate_id, ca_certificate_id, status, pem, mode,
	owned_by, previous_owned_by, creation_date, last_modified_date, customer_version, generation_id,
	not_before, not_after, transfer_target_account_id, transfer_message, transfer_reject_reason,
	transfer_date, transfer_accept_date, transfer_reject_date, issuer, authority_key_id, common_name, serial
FROM certificates ORDER BY seq;

-- The counter: the highest seq ever given, which may belong to a deleted row.
INSERT INTO sqlite_sequence (name, seq)
	SELECT 'certificates_new', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'certificates_new');
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'certificates'), 0))
	WHERE name = 'certificates_new';

DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;

-- The record's key, and the gateway's lookup by id across accounts.
CREATE UNIQUE INDEX certificates_by_id ON certificates (certificate_id, account_id, region);
-- The others, as before (0001, 0002, 0004, 0009, 0011).
CREATE INDEX certificates_by_creation ON certificates (account_id, region, creation_date, seq);
CREATE INDEX certificates_by_ca ON certificates (account_id, region, ca_certificate_id, creation_date, seq);
CREATE INDEX certificates_by_status ON certificates (account_id, region, status, creation_date, seq);
CREATE INDEX certificates_by_common_name ON certificates (account_id, region, common_name);
CREATE INDEX certificates_by_expiry ON certificates (account_id, region, not_after, seq);
CREATE INDEX certificates_unfilled ON certificates (seq) WHERE common_name IS NULL;
CREATE INDEX certificates_by_issuer ON certificates (account_id, region, issuer, ca_certificate_id, creation_date, seq, authority_key_id);
CREATE INDEX certificates_by_serial ON certificates (serial);
CREATE INDEX certificates_unusable_by_issuer ON certificates (issuer, seq) WHERE status <> 'ACTIVE';
CREATE INDEX certificates_serial_unfilled ON certificates (seq) WHERE serial IS NULL;
