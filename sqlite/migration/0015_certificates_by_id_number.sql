-- 0015: the certificates table finds a certificate by its id's number
-- (audit_subjects, 0013) instead of by the id itself. A registration put
-- its new id into two indexes keyed on a hash, certificates_by_id and
-- audit_subjects_by_certificate: each at a random place, so each dirtied a
-- page of its own, written to the WAL by the commit and again by the
-- checkpoint. Of the 68 pages a commit of ~10 registrations wrote, those
-- two indexes were 33 (BENCHMARKS.md, "One index keyed on a hash instead of
-- two"). Ids are numbered in the order the store first holds them, so a
-- new certificate's number is the highest yet and its entry in
-- certificates_by_id_number goes at the end, beside the others of its
-- commit. The id → number index is the one random write left.
--
-- A lookup by id reads the number first (one more B-tree search, in the
-- same file) and then the certificate by its number.
--
-- Every stored certificate's id is numbered since 0013; the INSERT below
-- numbers any a store holds without one all the same. DEFAULT 0 is no
-- number (they start at 1) and is only there because SQLite adds a NOT NULL
-- column only with a default; CreateCertificate always sets it.
INSERT OR IGNORE INTO audit_subjects (certificate_id)
	SELECT certificate_id FROM certificates GROUP BY certificate_id ORDER BY min(seq);

ALTER TABLE certificates ADD COLUMN id_number INTEGER NOT NULL DEFAULT 0;
UPDATE certificates SET id_number = (SELECT id FROM audit_subjects s WHERE s.certificate_id = certificates.certificate_id);

DROP INDEX certificates_by_id;
-- The record's key, and the gateway's lookup by id across accounts (the
-- number alone, as its prefix).
CREATE UNIQUE INDEX certificates_by_id_number ON certificates (id_number, account_id, region);
