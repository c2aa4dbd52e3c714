-- 0009: a ChangeCertificateCreated entry keeps the registration it made
-- (fleetcert.Change.Registration): the certificate's CA, mode, validity and
-- seq; NULL on every other entry (reg_mode is never NULL on one that has
-- it). Every node's admission view then adds a certificate registered on any
-- node from the entry alone: it read each back, a query per registration
-- for every node following the feed (BENCHMARKS.md). Nullable columns
-- without a default: adding them rewrites no row.
ALTER TABLE changes ADD COLUMN reg_ca_certificate_id text;
ALTER TABLE changes ADD COLUMN reg_mode text;
ALTER TABLE changes ADD COLUMN reg_not_before timestamptz;
ALTER TABLE changes ADD COLUMN reg_not_after timestamptz;
ALTER TABLE changes ADD COLUMN reg_seq bigint;
