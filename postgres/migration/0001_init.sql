-- 0001: the registry's records and the change feed, as the SQLite store's
-- migrations 0001-0003 built them.
--
-- Times are timestamptz (microseconds, UTC), NULL for the zero time; the
-- Registry truncates its times to milliseconds, and X.509 validity may end
-- in 9999 (RFC 5280 4.1.2.5), well inside timestamptz's range.

-- seq is the insertion sequence: assigned at insert, never reused, the
-- tie-breaker of list order. (account_id, region, certificate_id) is the
-- record's key.
CREATE TABLE certificates (
	seq                        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id                 text        NOT NULL,
	region                     text        NOT NULL,
	certificate_id             text        NOT NULL,
	ca_certificate_id          text        NOT NULL DEFAULT '',
	status                     text        NOT NULL,
	pem                        text        NOT NULL,
	mode                       text        NOT NULL,
	owned_by                   text        NOT NULL DEFAULT '',
	previous_owned_by          text        NOT NULL DEFAULT '',
	creation_date              timestamptz NOT NULL,
	last_modified_date         timestamptz,
	customer_version           integer     NOT NULL,
	generation_id              text        NOT NULL DEFAULT '',
	not_before                 timestamptz,
	not_after                  timestamptz,
	-- Transfer: all NULL when there is no transfer; transfer_target_account_id
	-- is set whenever there is one.
	transfer_target_account_id text,
	transfer_message           text,
	transfer_reject_reason     text,
	transfer_date              timestamptz,
	transfer_accept_date       timestamptz,
	transfer_reject_date       timestamptz,

	UNIQUE (account_id, region, certificate_id),
	CHECK (transfer_target_account_id IS NOT NULL OR (
		transfer_message IS NULL AND transfer_reject_reason IS NULL AND
		transfer_date IS NULL AND transfer_accept_date IS NULL AND
		transfer_reject_date IS NULL))
);

-- Keyset pagination of ListCertificates: unfiltered, by CA, by status (the
-- few PENDING_TRANSFER certificates among many). The device gateway looks a
-- presented certificate up by its id across every account and region.
CREATE INDEX certificates_by_creation ON certificates (account_id, region, creation_date, seq);
CREATE INDEX certificates_by_ca ON certificates (account_id, region, ca_certificate_id, creation_date, seq);
CREATE INDEX certificates_by_status ON certificates (account_id, region, status, creation_date, seq);
CREATE INDEX certificates_by_id ON certificates (certificate_id);

CREATE TABLE access_keys (
	id         text        PRIMARY KEY,
	secret     text        NOT NULL,
	account_id text        NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE TABLE ca_certificates (
	seq                      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id               text        NOT NULL,
	region                   text        NOT NULL,
	ca_certificate_id        text        NOT NULL,
	status                   text        NOT NULL,
	pem                      text        NOT NULL,
	mode                     text        NOT NULL,
	auto_registration_status text        NOT NULL DEFAULT '',
	template_body            text        NOT NULL DEFAULT '',
	role_arn                 text        NOT NULL DEFAULT '',
	template_name            text        NOT NULL DEFAULT '',
	-- JSON array of {"Key": …, "Value": …}; NULL when there is no tag.
	tags                     text,
	-- The raw DER subject; NULL when empty.
	subject                  bytea,
	owned_by                 text        NOT NULL DEFAULT '',
	creation_date            timestamptz NOT NULL,
	last_modified_date       timestamptz,
	customer_version         integer     NOT NULL,
	generation_id            text        NOT NULL DEFAULT '',
	not_before               timestamptz,
	not_after                timestamptz,

	UNIQUE (account_id, region, ca_certificate_id)
);

CREATE INDEX ca_certificates_by_creation ON ca_certificates (account_id, region, creation_date, seq);
CREATE INDEX ca_certificates_by_subject ON ca_certificates (account_id, region, subject, creation_date, seq);
CREATE INDEX ca_certificates_by_template ON ca_certificates (account_id, region, template_name, creation_date, seq);
CREATE INDEX ca_certificates_by_id ON ca_certificates (region, ca_certificate_id);

CREATE TABLE registration_codes (
	account_id text NOT NULL,
	region     text NOT NULL,
	code       text NOT NULL,

	PRIMARY KEY (account_id, region)
);

-- Certificate transfers, kept after they end. seq orders transfers of equal
-- transfer_date: the one inserted last is the latest; an upsert keeps it.
CREATE TABLE transfers (
	seq               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	region            text        NOT NULL,
	certificate_id    text        NOT NULL,
	source_account_id text        NOT NULL,
	target_account_id text        NOT NULL,
	message           text        NOT NULL DEFAULT '',
	reject_reason     text        NOT NULL DEFAULT '',
	transfer_date     timestamptz NOT NULL,
	accept_date       timestamptz,
	reject_date       timestamptz,
	cancel_date       timestamptz,

	UNIQUE (region, certificate_id, source_account_id, transfer_date)
);

-- The change feed. seq is not a sequence's: a sequence hands numbers out
-- before commit, so a reader could see seq 8 committed while 7 is still to
-- commit, and skip 7 for good. An append takes the next number from
-- change_feed.head instead, in the same transaction: the row's lock is held
-- until commit, so appends commit in seq order (see change.go).
CREATE TABLE changes (
	seq            bigint      PRIMARY KEY,
	kind           text        NOT NULL,
	account_id     text        NOT NULL,
	region         text        NOT NULL,
	certificate_id text        NOT NULL,
	old_status     text        NOT NULL DEFAULT '',
	new_status     text        NOT NULL DEFAULT '',
	time           timestamptz NOT NULL
);
CREATE INDEX changes_by_time ON changes (time);

-- One row each. head: the last seq handed out, which commits with the
-- append. pruned: the highest seq PruneChanges removed. Two rows, so that
-- pruning never waits for the appends' lock on head, nor they for it.
CREATE TABLE change_feed (
	name text   PRIMARY KEY CHECK (name IN ('head', 'pruned')),
	seq  bigint NOT NULL
);
INSERT INTO change_feed (name, seq) VALUES ('head', 0), ('pruned', 0);
