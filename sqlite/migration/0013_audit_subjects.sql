-- 0013: the audit log's index by certificate keys on a number given to each
-- certificate (or CA) id in the order the store first held it, instead of
-- on the id. Ids are hashes: an index keyed on them takes each new entry at
-- a random place, so a bulk job's batch of 2,000 entries dirtied about
-- 2,000 pages of it, each written to the WAL and checkpointed again (at
-- 300,000 certificates a job spent two thirds of its time there). Numbered
-- in creation order, a job's entries, which follow a CA's certificates in
-- creation order, land beside each other. Only the lookup of an id's number
-- is random, and it only reads.
--
-- A number outlives its certificate and the audit entries: a deleted
-- certificate's history stays found by its id, and a certificate registered
-- again keeps its number.
CREATE TABLE audit_subjects (
	id             INTEGER PRIMARY KEY,
	certificate_id TEXT    NOT NULL
) STRICT;

INSERT INTO audit_subjects (certificate_id)
	SELECT certificate_id FROM certificates GROUP BY certificate_id ORDER BY min(seq);
INSERT INTO audit_subjects (certificate_id)
	SELECT certificate_id FROM audit
	WHERE certificate_id <> '' AND certificate_id NOT IN (SELECT certificate_id FROM certificates)
	GROUP BY certificate_id ORDER BY min(seq);
-- Built after the rows: sorting once is cheaper than a million random inserts.
CREATE UNIQUE INDEX audit_subjects_by_certificate ON audit_subjects (certificate_id);

ALTER TABLE audit ADD COLUMN subject INTEGER;
UPDATE audit SET subject = (SELECT id FROM audit_subjects s WHERE s.certificate_id = audit.certificate_id)
	WHERE certificate_id <> '';
DROP INDEX audit_by_certificate;
CREATE INDEX audit_by_subject ON audit (subject, time, seq) WHERE subject IS NOT NULL;
