-- 0008: the audit log (SQLite's migration 0012). AppendChange writes one row
-- per change that carries an Operation, in the same statement as the
-- change, with its seq; the rows outlive the change feed's pruning and go
-- with PruneAudit (by time). Read in (time, seq) order: by time range, by
-- certificate (a certificate's or CA's history) or by resource (objects,
-- links, access keys), each an index range in that order.
--
-- The primary key is (time, seq), the read order, so that it is also the
-- time index: an entry costs the heap and one index, plus the certificate's
-- or the resource's when it has one. seq is the change's, unique.
CREATE TABLE audit (
	seq            bigint      NOT NULL,
	time           timestamptz NOT NULL,
	account_id     text        NOT NULL,
	region         text        NOT NULL,
	operation      text        NOT NULL,
	kind           text        NOT NULL,
	certificate_id text        NOT NULL,
	old_status     text        NOT NULL,
	new_status     text        NOT NULL,
	resource       text        NOT NULL,
	target         text        NOT NULL,
	actor          text        NOT NULL,
	actor_account  text        NOT NULL,
	source_ip      text        NOT NULL,
	PRIMARY KEY (time, seq)
);

CREATE INDEX audit_by_certificate ON audit (certificate_id, time, seq) WHERE certificate_id <> '';
CREATE INDEX audit_by_resource ON audit (resource, time, seq) WHERE resource <> '';
