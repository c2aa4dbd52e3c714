package sqlite

// WaitingWriters returns how many Updates wait for the write connection.
func (db *DB) WaitingWriters() int { return db.writer.waiting() }

// OnGroupCommit makes f be told the number of Updates of each group that
// commits. Set it before the first Update.
func (db *DB) OnGroupCommit(f func(members int)) { db.writer.stats = f }

// SetCheckpointPages sets the WAL growth, in frames, that wakes the
// checkpointer and the WAL size at which the writer checkpoints itself
// (when cheap; always at three times that). Call it before the first
// Update.
func (db *DB) SetCheckpointPages(pages, restart uint32) {
	c := db.writer.ckpt
	c.pages, c.restart, c.hard, c.cheap, c.nextRestart = pages, restart, 3*restart, pages/4, restart
}

// SetCheckpointHard sets the WAL size at which the writer checkpoints
// itself however much is left to copy (three times the restart size).
func (db *DB) SetCheckpointHard(frames uint32) { db.writer.ckpt.hard = frames }

// HoldCheckpoints keeps any checkpoint from starting, as a long pass
// beside the writer would, until release is called.
func (db *DB) HoldCheckpoints() (release func()) {
	c := db.writer.ckpt
	c.running.Lock()
	return c.running.Unlock
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
