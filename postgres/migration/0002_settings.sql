-- 0002: node-wide settings every node of a cluster agrees on (the issuing
-- CA, the device gateway's CA, the bootstrap key's claim); written once,
-- never replaced.
CREATE TABLE settings (
	name       text        PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
