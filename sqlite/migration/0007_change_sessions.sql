-- Session announcements in the change feed (ChangeSessionStarted): the
-- device's client id and the connection's id, '' for every other change.
ALTER TABLE changes ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE changes ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
