-- 0005: the change feed's pruned horizon.
--
-- PruneChanges deletes old entries of changes and records here the highest
-- Seq it deleted, so that Changes can tell a reader asking for what was
-- pruned (ErrChangesPruned) from one that is simply up to date, across
-- restarts. The head of the feed is the larger of max(changes.seq) and this
-- Seq: it never decreases, even when every entry was pruned (AUTOINCREMENT
-- never reuses a Seq either).
CREATE TABLE change_horizon (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	pruned_seq INTEGER NOT NULL
) STRICT;
INSERT INTO change_horizon (id, pruned_seq) VALUES (1, 0);
