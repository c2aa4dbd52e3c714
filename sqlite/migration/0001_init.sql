-- 0001: client certificates, access keys and the change feed.
--
-- Times are INTEGER Unix nanoseconds (UTC), NULL for the zero time, so they
-- round-trip exactly; the Registry truncates its times to milliseconds.
-- not_before and not_after are Unix microseconds instead: X.509 validity may
-- end in 9999 (RFC 5280 4.1.2.5, "no well-defined expiration date"), past the
-- year 2262 where int64 nanoseconds stop.

-- seq is the rowid: assigned at insert, never reused (AUTOINCREMENT), the
-- tie-breaker of list order. (account_id, region, certificate_id) is the
-- record's key.
CREATE TABLE certificates (
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

	UNIQUE (account_id, region, certificate_id),
	CHECK (transfer_target_account_id IS NOT NULL OR (
		transfer_message IS NULL AND transfer_reject_reason IS NULL AND
		transfer_date IS NULL AND transfer_accept_date IS NULL AND
		transfer_reject_date IS NULL))
) STRICT;

-- Keyset pagination of ListCertificates and ListCertificatesByCA.
CREATE INDEX certificates_by_creation ON certificates (account_id, region, creation_date, seq);
CREATE INDEX certificates_by_ca ON certificates (account_id, region, ca_certificate_id, creation_date, seq);

CREATE TABLE access_keys (
	id         TEXT    PRIMARY KEY,
	secret     TEXT    NOT NULL,
	account_id TEXT    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE changes (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	kind           TEXT    NOT NULL,
	account_id     TEXT    NOT NULL,
	region         TEXT    NOT NULL,
	certificate_id TEXT    NOT NULL,
	old_status     TEXT    NOT NULL DEFAULT '',
	new_status     TEXT    NOT NULL DEFAULT '',
	time           INTEGER NOT NULL
) STRICT;
