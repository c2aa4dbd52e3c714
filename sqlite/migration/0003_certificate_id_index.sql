-- The device gateway looks a presented certificate up by its id (SHA-256
-- fingerprint) across every account and region.
CREATE INDEX certificates_by_id ON certificates (certificate_id);
