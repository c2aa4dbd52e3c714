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
//
// Even that once is a stall every write queued behind the writer shares:
// at 1,000,000 certificates, where each update writes pages all over the
// file, the writer waited 20–45 ms for the pass beside to end (its fsync)
// or copied up to ~1,000 frames and fsynced them itself, 28–60 ms, and
// UpdateCertificate's p99 was that stall. So the writer checkpoints
// itself only when it is cheaper: when no pass beside is under way and the
// last pass left few frames uncopied — at most cheapPages, or those
// committed while one pass beside ran since the writer asked for it.
// Otherwise it wakes the pass beside, or lets it finish, and looks again
// before its next transaction, and the WAL's growth wakes no further pass
// until the writer's has run; past hardRestartPages it waits as before, so
// the WAL stays bounded whatever the load. Its pass still syncs the WAL and
// the database file, 15–30 ms on this project's disks, whatever it copies
// (BENCHMARKS.md, "The writer's checkpoint without the wait").
const (
	checkpointPages  = 1000     // SQLite's wal_autocheckpoint default
	restartPages     = 4 * 1024 // 16 MiB of 4 KiB pages
	hardRestartPages = 3 * restartPages
	cheapPages       = checkpointPages / 4
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
	hard    uint32                // hardRestartPages, or smaller in tests
	cheap   uint32                // cheapPages, or smaller in tests
	copied  atomic.Uint32         // frames the last pass left copied (SQLite's nBackfill)

	// The writer's, touched only by the turn's holder.
	woken        uint32       // frames in the WAL at the last wake
	asked        int64        // runs when the writer woke a pass to copy for its restart; -1: none (no wakes from growth meanwhile)
	nextRestart  uint32       // frames at which the writer checkpoints itself
	writerPasses atomic.Int64 // checkpoints the writer ran itself (tests)
}

// startCheckpointer starts checkpointing conn's database beside its
// writer; mxFrame reads the WAL's frame count.
func startCheckpointer(conn *sql.DB, mxFrame func() (uint32, bool)) *checkpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{conn: conn, mxFrame: mxFrame, wake: make(chan struct{}, 1), stop: stop,
		pages: checkpointPages, restart: restartPages, hard: hardRestartPages, cheap: cheapPages, nextRestart: restartPages, asked: -1}
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
		c.pass(ctx, c.conn)
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
		c.copied.Store(0)
	}
	if n-c.woken < c.pages || c.asked >= 0 {
		return
	}
	c.woken = n
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pass checkpoints on conn (the holder of running) and records how far
// it copied; it returns the pragma's answer.
func (c *checkpointer) pass(ctx context.Context, conn *sql.DB) (busy, frames, copied int, err error) {
	err = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	if err == nil && busy == 0 && copied >= 0 {
		c.copied.Store(uint32(copied))
	}
	return busy, frames, copied, err
}

// beforeTransaction is run by the writer before it begins a transaction,
// on its connection: when the WAL holds restartPages frames (more than
// that since a pass that could not copy them all), it checkpoints itself,
// so that the transaction rewinds the WAL, if that is cheap now (see the
// top of the file); else it leaves the copying to the pass beside and
// looks again next time, up to hardRestartPages.
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
	hard := n >= c.nextRestart+c.hard-c.restart
	if !c.running.TryLock() {
		if !hard {
			return // a pass beside is copying: look again after it
		}
		c.running.Lock() // a checkpoint cannot run while another does
	}
	defer c.running.Unlock()
	left := n - min(n, c.copied.Load())
	if !hard && left > c.cheap && (c.asked < 0 || c.runs.Load() == c.asked) {
		// Much to copy and sync: beside the writer, not in its turn.
		// Once that pass has run, what is left is what was committed
		// meanwhile, and the writer copies it.
		if c.asked < 0 {
			c.asked = c.runs.Load()
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	c.asked = -1
	c.writerPasses.Add(1)
	busy, frames, copied, err := c.pass(context.Background(), write)
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
