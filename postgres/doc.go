// Package postgres implements fleetcert.Store on PostgreSQL with pgx, for a
// cluster of fleetcert processes (nodes) sharing one database.
//
// Open connects a pool (connect_timeout defaults to one second) and applies
// the schema migrations embedded from migration/*.sql, once, under an
// advisory lock, however many nodes open an empty database at the same
// moment; schema_migrations records them.
//
// Isolation: an Update is a READ COMMITTED transaction that locks what it
// reads (rows FOR UPDATE, advisory locks on the keys of records found
// absent and of the sets it reads), so a read-check-write is atomic across
// nodes and writers of one record queue rather than abort; see DB.Update.
// A View reads outside a transaction, each statement seeing the latest
// commit.
//
// The change feed: an append takes its seq from a counter row updated in the
// same transaction, whose lock is held until commit, so changes commit in
// seq order and a watcher reading Changes(after lastSeen) never skips one;
// a rolled-back append gives its seq back, so the feed has no gaps.
// ChangesHead reads the counter; PruneChanges deletes by age and records the
// highest seq it removed, past which Changes answers
// fleetcert.ErrChangesPruned. The appending transaction also NOTIFYs, and
// NotifyChanges (fleetcert.ChangeNotifier) LISTENs on a connection of its
// own, pinging it after a quiet spell (a partitioned connection is never
// closed), reconnecting with backoff and signalling after every
// (re)connect.
//
// Database loss: while the server cannot be reached, every call fails
// within about the connect timeout with ServiceUnavailableException
// wrapping the driver's error; the pool reconnects by itself when the
// server is back. (A statement already sent on a connection that is then
// cut off without being closed waits for the caller's context or TCP.)
package postgres
