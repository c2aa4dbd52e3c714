package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// maxGroup bounds the Updates that share one commit, so that the first of a
// group waits for at most maxGroup-1 others' functions.
const maxGroup = 64

// A group smaller than the recent ones waits for more members: when a
// member is done and none queues, the turn's holder waits up to gatherWait
// for another to queue before it commits (and hands it the turn as soon as
// one does), as long as the group has fewer members than gatherTarget and
// than the largest of the last len(writer.recent) groups.
// Under 16 clients registering certificates on two cores, groups committed
// as soon as none queued had 3.4 members: the clients' next requests were
// still being read and verified on the other core. Each commit writes the
// pages that all inserts share (the last pages of the feed, of the audit
// log and of each index ordered by time, page 1) once, so groups of ~10
// cost a registration a quarter fewer WAL writes and a tenth less CPU
// (BENCHMARKS.md, "Groups that wait for their members"). A lone writer's
// groups have one member, so it never waits; after a burst of concurrent
// Updates, the next few lone ones wait gatherWait each.
const (
	gatherWait   = 200 * time.Microsecond
	gatherTarget = 8
)

// writer takes turns on the one write connection and lets concurrent
// Updates share a transaction and its commit (group commit). Committing is
// most of what a small Update costs SQLite: the WAL frames of every page the
// transaction dirtied, written one system call each, and the pages that
// every insert touches — the last page of the change feed, of the audit
// log, of each index — are written once per commit however many Updates
// share it.
//
// The caller holding the turn runs its fn in its own goroutine (a panic or
// a test's t.Fatal stays where it happened). The first of a group runs
// straight in the transaction it began, as a lone Update always did: if it
// fails, the transaction, which holds nothing else, is rolled back. Each
// later member runs inside a savepoint, which undoing it rolls back to,
// leaving the others' writes. When a member is done it passes the turn to
// the next caller waiting, leaving the transaction open for it, or, when
// none waits (after waiting up to gatherWait for one, in a group smaller
// than the recent ones), or the group is full, or the transaction was lost,
// commits and wakes the group. So a lone Update commits at once, as
// before, and Updates arriving while one runs or commits form the next
// group.
type writer struct {
	mu    sync.Mutex
	busy  bool            // some caller holds the turn
	queue []chan struct{} // callers waiting for the turn, first come first served
	group *writeGroup     // the open transaction; only the turn's holder touches it
	// recent holds the sizes of the last groups committed, newest first;
	// only the turn's holder touches it.
	recent  [4]int
	stats   func(members int) // told the size of each group that commits (tests)
	gather  func()            // waits for members instead of sleeping gatherWait (tests)
	arrived chan<- struct{}   // told when a caller queues, while the holder waits for members

	// reporters are told of each transaction's changes as it commits
	// (DB.ReportCommits), with stamp, the store's CommitStamp.
	reporters []func(fleetcert.Commit)
	stamp     func() (uint64, bool)

	ckpt *checkpointer // checkpoints beside the writer; nil: SQLite's own, in commits
}

// writeGroup is one shared write transaction.
type writeGroup struct {
	tx      *sql.Tx
	ftx     *Tx // shared by the members, so statements are bound once
	members int
	alone   bool                     // an Update that shares its transaction with none
	checked bool                     // the transaction was found alive after its first member
	report  []func(fleetcert.Commit) // the writer's reporters when the group began
	stamp   func() (uint64, bool)
	err     error         // the transaction is lost (set by the turn's holder), or its commit failed
	done    chan struct{} // closed once committed or rolled back; err is final then
}

// updateKind says how an Update takes part in the writer's transactions.
type updateKind int

const (
	shared    updateKind = iota // a member of a group, inside a savepoint of its own (DB.Update)
	failFirst                   // a member of a group without a savepoint (DB.UpdateFailFirst)
	alone                       // in a transaction of its own (DB.UpdateBulk)
)

// update runs fn as one member of a group; see DB.Update. An Update alone
// runs in a transaction of its own, in turn: for Updates whose size is
// not bounded (pruning), whose savepoint would keep a copy of every page
// they change in memory. A failFirst one, which can fail only before it
// has changed a row, runs without a savepoint: if it fails having changed
// none, there is nothing of it to undo (SQLite backs a refused statement
// out by itself); if it fails having changed some, its group is lost.
func (w *writer) update(ctx context.Context, db *DB, kind updateKind, fn func(fleetcert.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	if err := w.acquire(ctx); err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	g, err := w.join(db, kind == alone)
	if err != nil {
		w.finish()
		return fmt.Errorf("begin write transaction: %w", err)
	}
	first := g.members == 0
	g.members++
	m := member{
		first:   first,
		guarded: !first && kind != failFirst,
		mark:    len(g.ftx.reported), // the entries earlier members appended
		changed: g.ftx.changed,
	}
	if m.guarded {
		if _, err := g.member(g.ftx.stmts.savepoint); err != nil {
			g.lose(err)
			w.finish()
			return fmt.Errorf("begin write transaction: %w", err)
		}
	}
	completed := false
	defer func() {
		if !completed {
			// fn panicked or ended its goroutine (runtime.Goexit): undo
			// it and let the group go on without it.
			w.undo(g, m)
			w.finish()
		}
	}()
	fnErr := fn(g.ftx)
	completed = true
	if fnErr != nil {
		w.undo(g, m)
	} else if m.guarded {
		if _, err := g.member(g.ftx.stmts.release); err != nil {
			// The savepoint is gone: SQLite rolled the whole transaction
			// back (an interrupted statement, a full disk).
			g.lose(err)
		}
	}
	w.finish()
	if fnErr != nil {
		// Undone whatever becomes of the others: fn's error unchanged.
		return fnErr
	}
	<-g.done
	return g.err
}

// acquire waits for the turn. A caller whose ctx ends while it waits leaves
// the queue, or, when the turn reached it meanwhile, passes it on.
func (w *writer) acquire(ctx context.Context) error {
	w.mu.Lock()
	if !w.busy {
		w.busy = true
		w.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	w.queue = append(w.queue, ch)
	if w.arrived != nil {
		w.arrived <- struct{}{}
		w.arrived = nil
	}
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	for i, c := range w.queue {
		if c == ch {
			w.queue = append(w.queue[:i], w.queue[i+1:]...)
			w.mu.Unlock()
			return ctx.Err()
		}
	}
	w.mu.Unlock()
	<-ch // given the turn as ctx ended: the group must not wait for us
	w.finish()
	return ctx.Err()
}

// join returns the group the turn's holder runs in: the open one, or a
// new one when there is none, when it was lost, or when the holder must
// be alone (an open group is committed first). Before a second member
// joins, the transaction is checked to be still open: the first member
// ran without a savepoint, and SQLite may have rolled the transaction
// back under it; a later member would then run in autocommit.
func (w *writer) join(db *DB, alone bool) (*writeGroup, error) {
	if g := w.group; g != nil && !g.alone && !alone && g.err == nil && !g.checked {
		g.checked = true
		if g.ended() {
			g.lose(errors.New("the transaction ended under its first Update"))
		}
	}
	if g := w.group; g != nil && (alone || g.err != nil) {
		w.end(g)
	}
	if w.group != nil {
		return w.group, nil
	}
	if w.ckpt != nil {
		w.ckpt.beforeTransaction(db.write)
	}
	// The transaction does not end with any one caller's context
	// (database/sql rolls a transaction back when the context it began
	// with ends).
	tx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	report, stamp := w.reporters, w.stamp
	w.mu.Unlock()
	w.group = &writeGroup{
		tx:     tx,
		ftx:    &Tx{tx: tx, stmts: db.writeStmts, writable: true, report: len(report) > 0},
		alone:  alone,
		done:   make(chan struct{}),
		report: report,
		stamp:  stamp,
	}
	return w.group, nil
}

// member is where one member of a group began.
type member struct {
	first   bool // the group's first: its transaction holds nothing else
	guarded bool // inside a savepoint of its own
	mark    int  // the change-feed entries earlier members appended
	changed int  // earlier members' statements that changed rows (Tx.changed)
}

// undo undoes the current member m of g: the whole transaction for its
// first member (it holds nothing else), back to the member's savepoint for
// a guarded one, and for a failFirst one nothing if it changed no row (a
// check that SQLite did not roll the transaction back under it aside),
// else the whole group; forgetting the changes it appended.
func (w *writer) undo(g *writeGroup, m member) {
	g.ftx.reported = g.ftx.reported[:m.mark]
	g.ftx.numbered.id = "" // its number may be rolled back with it
	if m.first {
		g.lose(errors.New("rolled back"))
		w.end(g)
		return
	}
	if g.err != nil {
		return
	}
	if !m.guarded {
		if g.ftx.changed != m.changed {
			g.lose(errors.New("an Update without a savepoint failed after changing rows"))
		} else if g.ended() { // the failure ended it (a full disk, an I/O error)
			g.lose(errors.New("the transaction ended under an Update"))
		}
		return
	}
	if _, err := g.member(g.ftx.stmts.rollbackTo); err != nil {
		g.lose(err)
		return
	}
	if _, err := g.member(g.ftx.stmts.release); err != nil {
		g.lose(err)
	}
}

// member runs one of the member savepoint's statements in g's transaction.
func (g *writeGroup) member(s *sql.Stmt) (sql.Result, error) {
	return g.ftx.stmt(context.Background(), s).Exec()
}

// ended reports whether SQLite has ended g's transaction under it (it
// rolls a transaction back by itself on some failures). BEGIN fails inside
// a transaction; when it succeeds, the one it begins is rolled back with
// the group, which the caller then loses.
func (g *writeGroup) ended() bool {
	_, err := g.tx.Exec("BEGIN")
	return err == nil
}

// lose records that g's transaction cannot commit: every member fails.
func (g *writeGroup) lose(err error) {
	if g.err == nil {
		g.err = fmt.Errorf("write transaction lost: %w", err)
	}
}

// finish ends the holder's turn: it passes the turn to the next caller
// waiting, keeping the group open for it, or ends the group and then
// passes the turn on.
func (w *writer) finish() {
	g := w.group
	w.mu.Lock()
	if g.joinable() && len(w.queue) == 0 && g.members < w.expected() {
		arrived := make(chan struct{}, 1)
		w.arrived = arrived
		w.mu.Unlock()
		if w.gather != nil {
			w.gather()
		} else {
			t := time.NewTimer(gatherWait)
			select {
			case <-arrived:
			case <-t.C:
			}
			t.Stop()
		}
		w.mu.Lock()
		w.arrived = nil
	}
	if g.joinable() && len(w.queue) > 0 {
		w.handOn()
		return
	}
	w.mu.Unlock()
	if g != nil {
		w.end(g)
	}
	w.mu.Lock()
	if len(w.queue) > 0 {
		w.handOn()
		return
	}
	w.busy = false
	w.mu.Unlock()
}

// joinable reports whether another Update may join g (g may be nil).
func (g *writeGroup) joinable() bool {
	return g != nil && !g.alone && g.err == nil && g.members < maxGroup
}

// expected is how many members a group waits for (see gatherWait).
func (w *writer) expected() int {
	n := 0
	for _, m := range w.recent {
		n = max(n, m)
	}
	return min(n, gatherTarget)
}

// end commits g, or rolls it back when lost, reports its changes, and
// wakes its members.
func (w *writer) end(g *writeGroup) {
	w.group = nil
	if g.err != nil {
		g.tx.Rollback()
		close(g.done)
		return
	}
	var before uint64
	var stamped bool
	if len(g.ftx.reported) > 0 {
		// The write lock is held: no process commits before ours.
		before, stamped = g.stamp()
	}
	if err := g.tx.Commit(); err != nil {
		g.err = fmt.Errorf("commit: %w", err)
		close(g.done)
		return
	}
	copy(w.recent[1:], w.recent[:])
	w.recent[0] = g.members
	if w.stats != nil {
		w.stats(g.members)
	}
	if w.ckpt != nil {
		w.ckpt.committed()
	}
	if c, ok := g.commit(before, stamped); ok {
		for _, fn := range g.report {
			fn(c)
		}
	}
	close(g.done)
}

// commit is g's report once it has committed, with before, the store's
// stamp taken before its commit; ok is false when it appended no change,
// or when its changes do not make one run of Seqs (a change appended
// some other way between them).
func (g *writeGroup) commit(before uint64, stamped bool) (fleetcert.Commit, bool) {
	chs := g.ftx.reported
	if len(chs) == 0 {
		return fleetcert.Commit{}, false
	}
	for i := range chs {
		if chs[i].Seq != chs[0].Seq+int64(i) {
			return fleetcert.Commit{}, false
		}
	}
	// The feed's Seqs are AUTOINCREMENT, given under the write lock: the
	// first is one above every Seq ever given, so none lies between it and
	// the one below.
	c := fleetcert.Commit{After: chs[0].Seq - 1, Changes: chs}
	if after, ok := g.stamp(); ok && stamped && oneCommitBetween(before, after) {
		c.Last, c.Stamp = true, after
	}
	return c, true
}

// handOn gives the turn to the first caller waiting. w.mu is held, and
// released.
func (w *writer) handOn() {
	next := w.queue[0]
	w.queue = w.queue[1:]
	w.mu.Unlock()
	next <- struct{}{}
}

// waiting returns how many callers wait for the turn (tests).
func (w *writer) waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}
