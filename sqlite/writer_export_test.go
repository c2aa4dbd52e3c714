package sqlite

// WaitingWriters returns how many Updates wait for the write connection.
func (db *DB) WaitingWriters() int { return db.writer.waiting() }

// OnGroupCommit makes f be told the number of Updates of each group that
// commits. Set it before the first Update.
func (db *DB) OnGroupCommit(f func(members int)) { db.writer.stats = f }

// SetCheckpointPages sets the WAL growth, in frames, that wakes the
// checkpointer and the WAL size at which the writer checkpoints itself.
// Call it before the first Update.
func (db *DB) SetCheckpointPages(pages, restart uint32) {
	c := db.writer.ckpt
	c.pages, c.restart, c.nextRestart = pages, restart, restart
}

// Checkpoints returns how many checkpoints ran beside the writer and how
// many the writer ran itself; false when checkpoints run in commits.
func (db *DB) Checkpoints() (beside, writer int64, ok bool) {
	c := db.writer.ckpt
	if c == nil {
		return 0, 0, false
	}
	return c.runs.Load(), c.writerPasses.Load(), true
}

// WALFrames returns the number of frames in the WAL.
func (db *DB) WALFrames() uint32 {
	n, _ := db.stamps.frames()
	return n
}

// OnGather makes f wait for a group's members instead of the writer's
// sleep of gatherWait. Set it before the first Update.
func (db *DB) OnGather(f func()) { db.writer.gather = f }
