-- 0002: CA certificates, registration codes, transfers, and listing client
-- certificates by status.
--
-- Times as in 0001: INTEGER Unix nanoseconds (UTC), NULL for the zero time;
-- not_before and not_after in Unix microseconds.

-- ListCertificates filtered by status (ListOutgoingCertificates: the few
-- PENDING_TRANSFER certificates among many): a range on this index, so a
-- page costs its own rows rather than a scan of the account. The owned_by
-- filter is checked on the rows found.
CREATE INDEX certificates_by_status ON certificates (account_id, region, status, creation_date, seq);

-- seq as in certificates: the insertion sequence, never reused, the
-- tie-breaker of list order. (account_id, region, ca_certificate_id) is the
-- record's key.
CREATE TABLE ca_certificates (
	seq                      INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id               TEXT    NOT NULL,
	region                   TEXT    NOT NULL,
	ca_certificate_id        TEXT    NOT NULL,
	status                   TEXT    NOT NULL,
	pem                      TEXT    NOT NULL,
	mode                     TEXT    NOT NULL,
	auto_registration_status TEXT    NOT NULL DEFAULT '',
	template_body            TEXT    NOT NULL DEFAULT '',
	role_arn                 TEXT    NOT NULL DEFAULT '',
	template_name            TEXT    NOT NULL DEFAULT '',
	-- JSON array of {"Key": …, "Value": …}; NULL when there is no tag.
	tags                     TEXT,
	-- The raw DER subject; NULL when empty.
	subject                  BLOB,
	owned_by                 TEXT    NOT NULL DEFAULT '',
	creation_date            INTEGER NOT NULL,
	last_modified_date       INTEGER,
	customer_version         INTEGER NOT NULL,
	generation_id            TEXT    NOT NULL DEFAULT '',
	not_before               INTEGER,
	not_after                INTEGER,

	UNIQUE (account_id, region, ca_certificate_id)
) STRICT;

-- Keyset pagination of ListCACertificates, unfiltered, by subject (the
-- issuer lookup of registration and of the device gateway) and by template.
CREATE INDEX ca_certificates_by_creation ON ca_certificates (account_id, region, creation_date, seq);
CREATE INDEX ca_certificates_by_subject ON ca_certificates (account_id, region, subject, creation_date, seq);
CREATE INDEX ca_certificates_by_template ON ca_certificates (account_id, region, template_name, creation_date, seq);
-- CACertificatesByID: one CA's registrations in every account of a region.
CREATE INDEX ca_certificates_by_id ON ca_certificates (region, ca_certificate_id);

CREATE TABLE registration_codes (
	account_id TEXT NOT NULL,
	region     TEXT NOT NULL,
	code       TEXT NOT NULL,

	PRIMARY KEY (account_id, region)
) STRICT, WITHOUT ROWID;

-- Certificate transfers, kept after they end. seq orders transfers of equal
-- transfer_date: the one inserted last is the latest; an upsert keeps it.
CREATE TABLE transfers (
	seq               INTEGER PRIMARY KEY AUTOINCREMENT,
	region            TEXT    NOT NULL,
	certificate_id    TEXT    NOT NULL,
	source_account_id TEXT    NOT NULL,
	target_account_id TEXT    NOT NULL,
	message           TEXT    NOT NULL DEFAULT '',
	reject_reason     TEXT    NOT NULL DEFAULT '',
	transfer_date     INTEGER NOT NULL,
	accept_date       INTEGER,
	reject_date       INTEGER,
	cancel_date       INTEGER,

	-- Also LatestTransfer's index: a certificate's transfers by its
	-- (region, certificate_id) prefix.
	UNIQUE (region, certificate_id, source_account_id, transfer_date)
) STRICT;
