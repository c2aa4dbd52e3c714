-- 0004: expiring state shared by every node (the console's sign-ins,
-- messages, results and sign-in limiter).
CREATE TABLE expiring (
	kind    text        NOT NULL,
	key     text        NOT NULL,
	value   bytea       NOT NULL,
	expires timestamptz NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX expiring_by_expires ON expiring (expires);
