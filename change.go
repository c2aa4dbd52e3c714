package fleetcert

import (
	"context"
	"sync"
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

// Commits returns how many mutations made through this Registry have
// committed. Each is counted after its commit and before its caller
// returns, so a read of the change feed that begins after Commits returned
// n sees the changes of all n.
func (r *Registry) Commits() int64 { return r.commits.Load() }

// update runs fn in a store transaction and wakes the feed's consumers
// when it commits.
func (r *Registry) update(ctx context.Context, fn func(Tx) error) error {
	err := r.Store.Update(ctx, fn)
	if err == nil {
		r.commits.Add(1)
		r.signal.notify()
	}
	return err
}
