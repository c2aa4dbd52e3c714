package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// Checkpoints copy the WAL's pages back into the database file and fsync
// both files, ~19 ms each on this project's disks. SQLite runs one inside
// the commit that takes the WAL past 1,000 pages (wal_autocheckpoint), on
// the one write connection: under 16 clients registering, the writer sat
// in those fsyncs a quarter of the time, and every Update queued behind it
// waited too (BENCHMARKS.md). So the writer's automatic checkpoint is off,
// and a connection of its own, a goroutine beside the writer, checkpoints
// instead, woken after each commit that took the WAL another
// checkpointPages past where the last wake found it.
//
// A checkpoint running beside a stream of commits never copies the last
// one, so the WAL would never start over from its beginning (SQLite
// rewinds it only when a write transaction begins with every frame copied
// and no reader on it) and would grow without end. So once it holds
// restartPages frames, the writer checkpoints itself before its next
// transaction, with nothing committing meanwhile: that copies the few
// pages left, and the transaction after it rewinds the WAL. The WAL stays
// under ~16 MiB, and the writer waits for a checkpoint once per 16 MiB
// written instead of once per 4 MiB. (At 64 MiB registration was as
// fast, and in one 1M-job run the readers beside it got a third fewer
// calls done: more of the pages they read were in the WAL, which SQLite
// reads with a system call per page, not through the memory map.)
const (
	checkpointPages = 1000     // SQLite's wal_autocheckpoint default
	restartPages    = 4 * 1024 // 16 MiB of 4 KiB pages
)

// checkpointer checkpoints a database's WAL beside its writer.
type checkpointer struct {
	conn    *sql.DB               // one connection, not the writer's
	mxFrame func() (uint32, bool) // frames in the WAL now (commitStamps)
	wake    chan struct{}         // buffered: wakes pending coalesce
	stop    context.CancelFunc    // ends run
	stopped sync.WaitGroup        // run has returned
	runs    atomic.Int64          // checkpoints run beside the writer (tests)
	running sync.Mutex            // held by a checkpoint of either
	pages   uint32                // checkpointPages, or smaller in tests
	restart uint32                // restartPages, or smaller in tests

	// The writer's, touched only by the turn's holder.
	woken        uint32       // frames in the WAL at the last wake
	nextRestart  uint32       // frames at which the writer checkpoints itself
	writerPasses atomic.Int64 // checkpoints the writer ran itself (tests)
}

// startCheckpointer starts checkpointing conn's database beside its
// writer; mxFrame reads the WAL's frame count.
func startCheckpointer(conn *sql.DB, mxFrame func() (uint32, bool)) *checkpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{conn: conn, mxFrame: mxFrame, wake: make(chan struct{}, 1), stop: stop,
		pages: checkpointPages, restart: restartPages, nextRestart: restartPages}
	c.stopped.Add(1)
	go c.run(ctx)
	return c
}

// run checkpoints once per wake until ctx ends. A checkpoint that fails
// (another process's checkpoint under way, a reader holding frames) is
// left to the next wake: the next checkpoint copies what this one did not.
func (c *checkpointer) run(ctx context.Context) {
	defer c.stopped.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.running.Lock()
		c.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		c.running.Unlock()
		c.runs.Add(1)
	}
}

// committed is told by the writer after each commit: it wakes run when the
// WAL has grown checkpointPages since the last wake (or was rewound).
func (c *checkpointer) committed() {
	n, ok := c.mxFrame()
	if !ok {
		return
	}
	if n < c.woken {
		c.woken = 0 // rewound
	}
	if n-c.woken < c.pages {
		return
	}
	c.woken = n
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// beforeTransaction is run by the writer before it begins a transaction,
// on its connection: when the WAL holds restartPages frames (more than
// that since a pass that could not copy them all), it checkpoints itself,
// so that the transaction rewinds the WAL.
func (c *checkpointer) beforeTransaction(write *sql.DB) {
	n, ok := c.mxFrame()
	if !ok {
		return
	}
	if n < c.restart {
		c.nextRestart = c.restart // rewound
		return
	}
	if n < c.nextRestart {
		return
	}
	// After the checkpoint beside, if one is under way: a checkpoint
	// cannot run while another does.
	c.running.Lock()
	defer c.running.Unlock()
	c.writerPasses.Add(1)
	var busy, frames, copied int
	err := write.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	if err != nil || busy != 0 {
		return // another process's checkpoint, or an error: again next time
	}
	if copied < frames {
		// A reader holding old frames (a backup's long read) kept it
		// from copying them all: try again after as many more frames,
		// not before every transaction.
		c.nextRestart = n + c.restart
	}
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	c.stop()
	c.stopped.Wait()
	return c.conn.Close()
}
