-- Node-wide settings every process sharing the store agrees on: the
-- issuing CA, the device gateway's CA, the bootstrap key's claim. Written
-- once, never replaced.
CREATE TABLE settings (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
