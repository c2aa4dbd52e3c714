-- The index of a CA's candidates, ordered for the query a CA's page runs:
-- with ca_certificate_id right after issuer, the certificates of an issuer
-- registered without a CA are read in creation order and the page stops
-- the scan; the key id, last, is checked on the index entry. (Before, the
-- key id's IN and "not this CA" made every view sort all of the issuer's
-- entries.)
DROP INDEX certificates_by_issuer;
CREATE INDEX certificates_by_issuer ON certificates (account_id, region, issuer, ca_certificate_id, creation_date, seq, authority_key_id);
