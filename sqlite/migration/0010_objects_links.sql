-- 0010: AWS IoT's authorization model (things, thing types, thing groups,
-- policies) as objects, what is attached to what as links, and the change
-- feed's columns for changes to either.
--
-- Times as in 0001: INTEGER Unix nanoseconds (UTC), NULL for the zero time.
-- Text compares byte for byte (BINARY), the order the Store contract lists
-- names in. body is opaque to the store: the Registry's JSON.

-- (account_id, region, kind, name) is the record's key and, as the primary
-- key of a table without rowid, the order ListObjects pages in.
CREATE TABLE objects (
	account_id         TEXT    NOT NULL,
	region             TEXT    NOT NULL,
	kind               TEXT    NOT NULL,
	name               TEXT    NOT NULL,
	label              TEXT    NOT NULL DEFAULT '',
	body               BLOB    NOT NULL,
	version            INTEGER NOT NULL,
	creation_date      INTEGER NOT NULL,
	last_modified_date INTEGER,

	PRIMARY KEY (account_id, region, kind, name)
) STRICT, WITHOUT ROWID;

-- ListObjects by label (a thing type's things, a group's children), in name
-- order.
CREATE INDEX objects_by_label ON objects (account_id, region, kind, label, name);

-- The primary key lists the links from one record in "to" order; the index
-- those to one record in "from" order.
CREATE TABLE links (
	account_id    TEXT    NOT NULL,
	region        TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	"from"        TEXT    NOT NULL,
	"to"          TEXT    NOT NULL,
	body          BLOB    NOT NULL,
	creation_date INTEGER NOT NULL,

	PRIMARY KEY (account_id, region, kind, "from", "to")
) STRICT, WITHOUT ROWID;

CREATE INDEX links_by_to ON links (account_id, region, kind, "to", "from");

-- Change.Resource and Change.Target, '' for every other change.
ALTER TABLE changes ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN target TEXT NOT NULL DEFAULT '';
