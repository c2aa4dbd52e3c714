package mqtt

// PendingHandshakes is how many admissions decided in TLS handshakes wait
// for their CONNECT.
func (g *Gateway) PendingHandshakes() int {
	g.handshakes.mu.Lock()
	defer g.handshakes.mu.Unlock()
	return len(g.handshakes.m)
}

// ViewCaughtUp reports whether the gateway has read every change made
// through its registry, so that admission may use its view.
func (g *Gateway) ViewCaughtUp() bool {
	return g.caughtUp.Load() == g.Registry.Commits()
}
