package fleetcert

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// changeSignal wakes the change feed's consumers in this process when a
// mutation commits, so that they read the feed at once instead of polling.
// Other processes (cluster nodes) learn of changes from the store.
type changeSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (s *changeSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *changeSignal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// ChangeSignal returns a channel that is closed when the next mutation made
// through this Registry commits. Read the feed with Store.Changes after it
// fires; take a new channel before each read so no change is missed.
func (r *Registry) ChangeSignal() <-chan struct{} {
	return r.signal.wait()
}

// Changes returns up to limit entries of the change feed after Seq after
// (Store.Changes, whose contract says what a watcher may rely on). An
// error wrapping ErrChangesPruned means the watcher fell behind the pruned
// horizon: it must reload what it derived from the feed.
//
// The newest entries read are kept (feedMemo), so that this process's
// watchers read each from the store once: the entries after after that the
// memo holds come from it, and the store is read only for the rest.
func (r *Registry) Changes(ctx context.Context, after int64, limit int) ([]Change, error) {
	held, next, ok, all := r.feed.take(after, limit, r.commitStamp)
	if ok && (len(held) == limit || all) {
		return held, nil
	}
	if !ok {
		next = after
	}
	// Taken before the read: when the read returns fewer than asked for,
	// they end at the head as of this stamp.
	stamp, stamped := r.commitStamp()
	more, err := r.Store.Changes(ctx, next, limit-len(held))
	if err != nil {
		return nil, err
	}
	r.feed.add(next, more, stamped && len(more) < limit-len(held), stamp)
	return append(held, more...), nil
}

// commitStamp is the store's CommitStamp, where it has one.
func (r *Registry) commitStamp() (uint64, bool) {
	if s, ok := r.Store.(CommitStamper); ok {
		return s.CommitStamp()
	}
	return 0, false
}

// ChangesHead returns the Seq of the newest committed change in any process
// sharing the store (Store.ChangesHead): a reader that has read the feed up
// to it has read every change committed before ChangesHead was called.
func (r *Registry) ChangesHead(ctx context.Context) (int64, error) {
	return r.Store.ChangesHead(ctx)
}

// NotifyChanges returns the store's channel that wakes the feed's watchers
// when any process commits (ChangeNotifier), or a nil channel (which never
// fires) when the store has none: watchers then poll for other processes'
// changes, and ChangeSignal wakes them for this process's.
func (r *Registry) NotifyChanges(ctx context.Context) (<-chan struct{}, error) {
	if n, ok := r.Store.(ChangeNotifier); ok {
		return n.NotifyChanges(ctx)
	}
	return nil, nil
}

// PruneChanges removes the change-feed entries older than retention and
// returns how many it removed. A watcher that had not read them reloads
// its view (ErrChangesPruned).
func (r *Registry) PruneChanges(ctx context.Context, retention time.Duration) (int64, error) {
	n, err := r.Store.PruneChanges(ctx, r.now().Add(-retention))
	if err != nil {
		return 0, fmt.Errorf("prune change feed: %w", err)
	}
	if n > 0 {
		r.feed.forget()
	}
	return n, nil
}

// update runs fn in a store transaction and wakes the feed's consumers
// when it commits. Every change fn appends is stamped with op (the AWS
// operation, or fleetcert's own) and the Actor of ctx (ActorSystem when
// none), so that the store writes its audit entry; with op "" (no
// mutation: a session announcement) nothing is audited.
func (r *Registry) update(ctx context.Context, op string, fn func(Tx) error) error {
	return r.updateWith(ctx, r.Store.Update, op, fn)
}

// updateBulk is update for an Update of thousands of rows: in a
// transaction of its own where the store offers one (BulkUpdater).
func (r *Registry) updateBulk(ctx context.Context, op string, fn func(Tx) error) error {
	if b, ok := r.Store.(BulkUpdater); ok {
		return r.updateWith(ctx, b.UpdateBulk, op, fn)
	}
	return r.update(ctx, op, fn)
}

// updateFailFirst is update for an fn that can fail only before it has
// changed a row (FailFirstUpdater), where the store offers it.
func (r *Registry) updateFailFirst(ctx context.Context, op string, fn func(Tx) error) error {
	if u, ok := r.Store.(FailFirstUpdater); ok {
		return r.updateWith(ctx, u.UpdateFailFirst, op, fn)
	}
	return r.update(ctx, op, fn)
}

func (r *Registry) updateWith(ctx context.Context, update func(context.Context, func(Tx) error) error, op string, fn func(Tx) error) error {
	actor := actorOr(ctx, ActorSystem)
	err := update(ctx, func(tx Tx) error { return fn(auditTx{Tx: tx, op: op, actor: actor}) })
	if err == nil {
		r.signal.notify()
	}
	return err
}

// AnnounceSession records in the change feed that a device connected as
// clientID in scope with certificate certificateID, on the connection
// sessionID, and returns the entry's Seq. Every gateway sharing the store
// reads it and ends its own connection of that client id if it began
// earlier (a lower Seq): one session per client id across a cluster, as
// MQTT's session takeover gives on one broker.
func (r *Registry) AnnounceSession(ctx context.Context, scope Scope, certificateID, clientID, sessionID string) (int64, error) {
	ch := &Change{Kind: ChangeSessionStarted, Scope: scope, CertificateID: certificateID,
		ClientID: clientID, SessionID: sessionID, Time: r.now()}
	// One row: it can fail only before changing one.
	err := r.updateFailFirst(ctx, "", func(tx Tx) error { return tx.AppendChange(ctx, ch) })
	if err != nil {
		return 0, fmt.Errorf("announce session of %s: %w", clientID, err)
	}
	return ch.Seq, nil
}
