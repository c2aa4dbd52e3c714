package fleetcert

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// registrar stores registrations that arrive together in one Update, with
// the store's CreateCertificates and AppendChanges: statements of many rows
// instead of four statements per certificate, and one member of the
// store's group commit instead of one per certificate (BENCHMARKS.md,
// "Registrations stored together"); on PostgreSQL, one transaction, one
// turn of the change feed's lock and one commit for the batch instead of
// one each ("Registrations stored together on PostgreSQL"). Used where the
// store is a FailFirstUpdater whose Tx is a CertificatesCreator (both).
//
// Registrations queue. One caller leads: it takes what has queued (up to
// maxRegistrationBatch) and stores it, again until its own registration is
// stored, then hands the lead to the first caller still queued, so that
// no caller registers others' certificates for long. The others wait for
// their batch to commit; one whose ctx ends while still queued leaves the
// queue with ctx's error. A batch that fails fails each of its
// registrations with its error; a certificate its account holds already,
// or that comes twice in a batch, fails alone, as ResourceAlreadyExists.
type registrar struct {
	mu      sync.Mutex
	queue   []*registration
	leading bool // some caller leads
	// recent holds the sizes of the last batches, newest first, and
	// arrived is told of a caller queuing while the leader gathers; only
	// the leader touches recent.
	recent  [4]int
	arrived chan struct{}
}

// A batch smaller than the recent ones waits for more registrations, as the
// store's group commit waits for members (sqlite/writer.go): up to
// gatherWait for each next one, while it has fewer than gatherTarget and
// than the largest of the recent batches.
const (
	gatherWait   = 200 * time.Microsecond
	gatherTarget = 8
)

// maxRegistrationBatch bounds a batch, as the store's group commit bounds
// its groups.
const maxRegistrationBatch = 64

// registration is one queued call of Registry.create.
type registration struct {
	c     *Certificate
	op    string
	actor Actor
	// check, when not nil, runs in the batch's transaction before c is
	// stored (Registry.createChecked); it only reads. An *Error from it
	// fails this registration alone, any other error the batch.
	check func(context.Context, Tx) error
	err   error         // its outcome, set before done closes
	done  chan struct{} // closed once its batch committed or failed
	lead  chan struct{} // closed when it is to lead
}

// create stores c as Registry.create does, in a batch with the
// registrations queued beside it.
func (q *registrar) create(ctx context.Context, r *Registry, u FailFirstUpdater, op string, c *Certificate, check func(context.Context, Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("register certificate %s: %w", c.ID, err)
	}
	g := &registration{c: c, op: op, actor: actorOr(ctx, ActorSystem), check: check, done: make(chan struct{}), lead: make(chan struct{})}
	q.mu.Lock()
	q.queue = append(q.queue, g)
	if q.arrived != nil {
		select {
		case q.arrived <- struct{}{}:
		default:
		}
	}
	if q.leading {
		q.mu.Unlock()
		select {
		case <-g.done:
			return g.err
		case <-g.lead:
		case <-ctx.Done():
			if q.leave(g) {
				return ctx.Err()
			}
			// Taken into a batch meanwhile (one handed the lead is still
			// queued, and left): its outcome is the batch's.
			<-g.done
			return g.err
		}
	} else {
		q.leading = true
		q.mu.Unlock()
	}
	defer func() {
		if p := recover(); p != nil {
			// Storing panicked (storeBatch failed its batch): the lead
			// must not stay with a caller that is gone.
			q.mu.Lock()
			q.remove(g)
			q.handOnLocked()
			q.mu.Unlock()
			panic(p)
		}
	}()
	// The batch does not end with the leader's ctx: it stores others'.
	bctx := context.WithoutCancel(ctx)
	for {
		q.gather()
		q.mu.Lock()
		n := min(len(q.queue), maxRegistrationBatch)
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		q.mu.Unlock()
		copy(q.recent[1:], q.recent[:])
		q.recent[0] = n
		r.storeBatch(bctx, u, batch)
		select {
		case <-g.done:
		default:
			continue // ours is further back
		}
		break
	}
	q.handOn()
	return g.err
}

// gather waits, as the leader, while fewer registrations are queued than
// the recent batches had (see gatherWait).
func (q *registrar) gather() {
	expected := 0
	for _, n := range q.recent {
		expected = max(expected, n)
	}
	expected = min(expected, gatherTarget)
	q.mu.Lock()
	if len(q.queue) >= expected {
		q.mu.Unlock()
		return
	}
	arrived := make(chan struct{}, 1)
	q.arrived = arrived
	q.mu.Unlock()
	t := time.NewTimer(gatherWait)
	defer t.Stop()
	for {
		select {
		case <-arrived:
		case <-t.C:
			q.mu.Lock()
			q.arrived = nil
			q.mu.Unlock()
			return
		}
		q.mu.Lock()
		if len(q.queue) >= expected {
			q.arrived = nil
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		t.Reset(gatherWait)
	}
}

// leave takes g, whose caller's ctx ended, out of the queue, and reports
// whether it was there. When g had been handed the lead, it hands it on.
func (q *registrar) leave(g *registration) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.remove(g) {
		return false
	}
	select {
	case <-g.lead:
		q.handOnLocked()
	default:
	}
	return true
}

// remove takes g out of the queue, and reports whether it was there. q.mu
// is held.
func (q *registrar) remove(g *registration) bool {
	for i, h := range q.queue {
		if h == g {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			return true
		}
	}
	return false
}

// handOn gives the lead to the first caller queued, or ends it.
func (q *registrar) handOn() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.handOnLocked()
}

func (q *registrar) handOnLocked() {
	if len(q.queue) == 0 {
		q.leading = false
		return
	}
	close(q.queue[0].lead)
}

// storeBatch stores the certificates of batch and their change-feed and
// audit entries in one Update, then closes each registration's done.
func (r *Registry) storeBatch(ctx context.Context, u FailFirstUpdater, batch []*registration) {
	ended := false
	defer func() {
		if !ended { // fn panicked: its callers must not wait for ever
			for _, g := range batch {
				g.err = errors.New("register certificate " + g.c.ID + ": the batch storing it panicked")
				close(g.done)
			}
		}
	}()
	refused := make([]error, len(batch)) // by its check
	stored := make([]bool, len(batch))
	// It fails before changing a row, or its transaction fails
	// (CertificatesCreator): an UpdateFailFirst. The store may run it
	// again (PostgreSQL, after a deadlock): it starts afresh each time.
	err := u.UpdateFailFirst(ctx, func(tx Tx) error {
		cc, ok := tx.(CertificatesCreator)
		if !ok {
			return errors.New("the store's transaction cannot create certificates together")
		}
		var cs []*Certificate
		var at []int // the index in batch of each of cs
		for i, g := range batch {
			refused[i], stored[i] = nil, false
			if g.check != nil {
				if err := g.check(ctx, tx); err != nil {
					var e *Error
					if !errors.As(err, &e) {
						return err
					}
					refused[i] = err
					continue
				}
			}
			cs, at = append(cs, g.c), append(at, i)
		}
		if len(cs) == 0 {
			return nil
		}
		created, err := cc.CreateCertificates(ctx, cs)
		if err != nil {
			return err
		}
		var chs []*Change
		for j, i := range at {
			if !created[j] {
				continue
			}
			stored[i] = true
			g := batch[i]
			ch := createdChange(g.c)
			ch.Operation = g.op
			ch.Actor, ch.ActorAccount, ch.SourceIP = g.actor.ID, g.actor.AccountID, g.actor.SourceIP
			chs = append(chs, ch)
		}
		return tx.AppendChanges(ctx, chs)
	})
	ended = true
	if err == nil {
		r.signal.notify()
	}
	for i, g := range batch {
		switch {
		case err != nil:
			g.err = duplicate(err, g.c.Scope, g.c.ID)
		case refused[i] != nil:
			g.err = refused[i]
		case !stored[i]:
			g.err = duplicate(&Error{Code: EResourceAlreadyExists}, g.c.Scope, g.c.ID)
		}
		close(g.done)
	}
}
