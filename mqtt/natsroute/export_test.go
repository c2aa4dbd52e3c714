package natsroute

// RoundTrips is how many round trips the router has made to confirm
// QoS 1 messages.
func (rt *Router) RoundTrips() uint64 { return rt.confirmer.roundTrips.Load() }

// Waiting is how many publishes wait for a confirmation now, the round
// trip's under way included.
func (rt *Router) Waiting() int {
	rt.confirmer.mu.Lock()
	defer rt.confirmer.mu.Unlock()
	return len(rt.confirmer.waiting) + rt.confirmer.batch
}

// RetainedKey is the bucket's key of a topic.
var RetainedKey = retainedKey

// Pending is how many retained messages wait to be stored.
func (rt *Router) Pending() int {
	rt.retainMu.Lock()
	defer rt.retainMu.Unlock()
	return len(rt.pending)
}
