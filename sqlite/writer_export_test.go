package sqlite

// WaitingWriters returns how many Updates wait for the write connection.
func (db *DB) WaitingWriters() int { return db.writer.waiting() }

// OnGroupCommit makes f be told the number of Updates of each group that
// commits. Set it before the first Update.
func (db *DB) OnGroupCommit(f func(members int)) { db.writer.stats = f }
