-- 0012: the audit log. AppendChange writes one row per change that carries
-- an Operation, in the same transaction, with the change's seq; the rows
-- outlive the change feed's pruning and go with PruneAudit (by time). Read
-- in (time, seq) order: by time range, by certificate (a certificate's or
-- CA's history) or by resource (objects, links, access keys), each an
-- index range in that order. time is Unix nanoseconds, as in changes.
CREATE TABLE audit (
	seq            INTEGER PRIMARY KEY,
	time           INTEGER NOT NULL,
	account_id     TEXT    NOT NULL,
	region         TEXT    NOT NULL,
	operation      TEXT    NOT NULL,
	kind           TEXT    NOT NULL,
	certificate_id TEXT    NOT NULL,
	old_status     TEXT    NOT NULL,
	new_status     TEXT    NOT NULL,
	resource       TEXT    NOT NULL,
	target         TEXT    NOT NULL,
	actor          TEXT    NOT NULL,
	actor_account  TEXT    NOT NULL,
	source_ip      TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_by_time ON audit (time, seq);
CREATE INDEX audit_by_certificate ON audit (certificate_id, time, seq) WHERE certificate_id <> '';
CREATE INDEX audit_by_resource ON audit (resource, time, seq) WHERE resource <> '';
