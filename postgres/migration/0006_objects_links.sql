-- 0006: AWS IoT's authorization model (things, thing types, thing groups,
-- policies) as objects, what is attached to what as links, and the change
-- feed's columns for changes to either (SQLite's migration 0010).
--
-- Times as in 0001: timestamptz, NULL for the zero time. Text columns are
-- COLLATE "C": keys compare byte for byte, the order the Store contract
-- lists names in, whatever the database's collation. body is opaque to the
-- store: the Registry's JSON.

-- (account_id, region, kind, name) is the record's key and the order
-- ListObjects pages in.
CREATE TABLE objects (
	account_id         text COLLATE "C" NOT NULL,
	region             text COLLATE "C" NOT NULL,
	kind               text COLLATE "C" NOT NULL,
	name               text COLLATE "C" NOT NULL,
	label              text COLLATE "C" NOT NULL DEFAULT '',
	body               bytea            NOT NULL,
	version            bigint           NOT NULL,
	creation_date      timestamptz      NOT NULL,
	last_modified_date timestamptz,

	PRIMARY KEY (account_id, region, kind, name)
);

-- ListObjects by label (a thing type's things, a group's children), in name
-- order.
CREATE INDEX objects_by_label ON objects (account_id, region, kind, label, name);

-- The primary key lists the links from one record in "to" order; the index
-- those to one record in "from" order.
CREATE TABLE links (
	account_id    text COLLATE "C" NOT NULL,
	region        text COLLATE "C" NOT NULL,
	kind          text COLLATE "C" NOT NULL,
	"from"        text COLLATE "C" NOT NULL,
	"to"          text COLLATE "C" NOT NULL,
	body          bytea            NOT NULL,
	creation_date timestamptz      NOT NULL,

	PRIMARY KEY (account_id, region, kind, "from", "to")
);

CREATE INDEX links_by_to ON links (account_id, region, kind, "to", "from");

-- Change.Resource and Change.Target, '' for every other change.
ALTER TABLE changes ADD COLUMN resource text NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN target text NOT NULL DEFAULT '';
