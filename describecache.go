package fleetcert

import (
	"context"
	"errors"
	"sync"
)

// DefaultDescribeCacheSize is a size for Registry.DescribeCacheSize: with
// a certificate's record at about 2 KB (its PEM most of it), 16,384 of them
// hold about 32 MB.
const DefaultDescribeCacheSize = 16384

// describeCache keeps the certificates DescribeCertificate read, so that
// describing one again reads no certificate from the store. It answers as
// a read of the store would: a certificate is served from memory only once
// the cache has applied every change of the feed up to a read of the feed
// that began after the Describe did. Every change naming a certificate
// drops what the cache holds of it (in any scope), so what is left has not
// changed since it was read. Any process's commit counts (the feed is the
// store's), so an UpdateCertificate that returned, on this node or another,
// is seen by every DescribeCertificate that begins after it.
//
// On a store that stamps commits (CommitStamper: SQLite's WAL index, in
// shared memory), a Describe whose stamp equals the one taken before the
// last feed read knows that nothing committed since, and reads nothing.
// Otherwise the feed reads are shared: one runs at a time, and every
// Describe that arrives while it runs waits for the next, which begins once
// it ends and serves all of them.
//
// The cache holds at most size entries, dropping an arbitrary one when
// full, and never holds what was not found.
type describeCache struct {
	store   Store
	changes func(ctx context.Context, after int64, limit int) ([]Change, error) // Registry.Changes
	stamper CommitStamper                                                       // nil when the store has none
	size    int

	mu      sync.Mutex
	started bool  // seen was read from the head
	seen    int64 // the feed position applied
	// stamp is the store's commit stamp taken before the feed read that
	// applied up to seen (stampOK: there was one).
	stamp   uint64
	stampOK bool
	entries map[string][]*describeEntry
	count   int

	rounds sync.Mutex
	// running is the feed read under way, pending the one that begins when
	// it ends; a Describe joins pending, or starts a read when none runs.
	running, pending *feedRound
}

// describeEntry is one registration of a certificate; cert is nil while
// the certificate is being read (a reservation: a change applied meanwhile
// drops it, and the read is then not kept).
type describeEntry struct {
	scope Scope
	cert  *Certificate
}

// feedRound is one shared read of the feed.
type feedRound struct {
	done chan struct{}
	err  error
}

// describeCacheFeedPage is how many changes one feed read applies at most
// before reading again.
const describeCacheFeedPage = 1000

func newDescribeCache(store Store, changes func(context.Context, int64, int) ([]Change, error), size int) *describeCache {
	d := &describeCache{store: store, changes: changes, size: size, entries: map[string][]*describeEntry{}}
	d.stamper, _ = store.(CommitStamper)
	return d
}

// commitStamp returns the store's commit stamp, if it has one now.
func (d *describeCache) commitStamp() (uint64, bool) {
	if d.stamper == nil {
		return 0, false
	}
	return d.stamper.CommitStamp()
}

// describe returns the certificate as DescribeCertificate's store read
// would; read reads it from the store.
func (d *describeCache) describe(ctx context.Context, scope Scope, id string, read func() (*Certificate, error)) (*Certificate, error) {
	stamp, ok := d.commitStamp()
	d.mu.Lock()
	if !ok || !d.stampOK || stamp != d.stamp {
		// Something committed since the last feed read, or the store cannot
		// tell: read the feed (with whoever else is asking) first.
		d.mu.Unlock()
		if err := d.catchUp(ctx); err != nil {
			// The feed could not be read: the store decides, as without a
			// cache.
			return read()
		}
		d.mu.Lock()
	}
	for _, e := range d.entries[id] {
		if e.scope == scope && e.cert != nil {
			c := *e.cert
			d.mu.Unlock()
			return &c, nil
		}
	}
	e := d.reserve(scope, id)
	d.mu.Unlock()
	c, err := read()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || !d.holds(id, e) {
		d.remove(id, e)
		return c, err
	}
	kept := *c
	e.cert = &kept
	return c, nil
}

// reserve adds an empty entry for (scope, id), making room. d.mu is held.
func (d *describeCache) reserve(scope Scope, id string) *describeEntry {
	for d.count >= d.size && d.count > 0 {
		for evict := range d.entries { // an arbitrary id
			d.count -= len(d.entries[evict])
			delete(d.entries, evict)
			break
		}
	}
	e := &describeEntry{scope: scope}
	d.entries[id] = append(d.entries[id], e)
	d.count++
	return e
}

// holds reports whether e is still id's entry. d.mu is held.
func (d *describeCache) holds(id string, e *describeEntry) bool {
	for _, x := range d.entries[id] {
		if x == e {
			return true
		}
	}
	return false
}

// remove drops e if it is still there. d.mu is held.
func (d *describeCache) remove(id string, e *describeEntry) {
	es := d.entries[id]
	for i, x := range es {
		if x == e {
			es = append(es[:i:i], es[i+1:]...)
			d.count--
			break
		}
	}
	if len(es) == 0 {
		delete(d.entries, id)
	} else {
		d.entries[id] = es
	}
}

// catchUp returns once the cache has applied the feed up to a read that
// began after catchUp was called.
func (d *describeCache) catchUp(ctx context.Context) error {
	d.rounds.Lock()
	r := d.pending
	if r == nil {
		r = &feedRound{done: make(chan struct{})}
		d.pending = r
	}
	lead := d.running == nil
	if lead {
		d.running, d.pending = r, nil
	}
	d.rounds.Unlock()
	if lead {
		d.run(ctx, r)
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run reads the feed for r, then for the round that gathered meanwhile, in
// a goroutine of its own so that the caller who led r is not kept.
func (d *describeCache) run(ctx context.Context, r *feedRound) {
	// A read serves every caller of the round: the leader's cancellation
	// must not fail it.
	ctx = context.WithoutCancel(ctx)
	r.err = d.readFeed(ctx)
	close(r.done)
	d.rounds.Lock()
	next := d.pending
	d.running, d.pending = next, nil
	d.rounds.Unlock()
	if next != nil {
		go d.run(ctx, next)
	}
}

// readFeed applies every change after seen: each drops what the cache holds
// of its certificate. The first read only takes the head, as the cache is
// empty; a position the feed has pruned empties the cache.
func (d *describeCache) readFeed(ctx context.Context) error {
	// Taken before the read: a commit after it changes the stamp, one
	// before it is in what the read returns.
	stamp, stampOK := d.commitStamp()
	d.mu.Lock()
	started, seen := d.started, d.seen
	d.mu.Unlock()
	if !started {
		head, err := d.store.ChangesHead(ctx)
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.started, d.seen = true, head
		d.stamp, d.stampOK = stamp, stampOK
		d.mu.Unlock()
		return nil
	}
	for {
		chs, err := d.changes(ctx, seen, describeCacheFeedPage)
		if errors.Is(err, ErrChangesPruned) {
			head, err := d.store.ChangesHead(ctx)
			if err != nil {
				return err
			}
			d.mu.Lock()
			clear(d.entries)
			d.count, d.seen = 0, head
			d.stamp, d.stampOK = stamp, stampOK
			d.mu.Unlock()
			return nil
		} else if err != nil {
			return err
		}
		if len(chs) == 0 {
			d.mu.Lock()
			d.stamp, d.stampOK = stamp, stampOK
			d.mu.Unlock()
			return nil
		}
		d.mu.Lock()
		for _, ch := range chs {
			if ch.CertificateID != "" {
				d.count -= len(d.entries[ch.CertificateID])
				delete(d.entries, ch.CertificateID)
			}
		}
		seen = chs[len(chs)-1].Seq
		d.seen = seen
		last := len(chs) < describeCacheFeedPage
		if last {
			d.stamp, d.stampOK = stamp, stampOK
		}
		d.mu.Unlock()
		if last {
			return nil
		}
	}
}
