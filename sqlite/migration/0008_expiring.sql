-- Expiring state shared by every process on the store (the console's
-- sign-ins, messages, results and sign-in limiter). expires is Unix
-- nanoseconds.
CREATE TABLE expiring (
	kind    TEXT    NOT NULL,
	key     TEXT    NOT NULL,
	value   BLOB    NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY (kind, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX expiring_by_expires ON expiring (expires);
