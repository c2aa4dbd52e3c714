package mqtt

// PendingHandshakes is how many admissions decided in TLS handshakes wait
// for their CONNECT.
func (g *Gateway) PendingHandshakes() int {
	g.handshakes.mu.Lock()
	defer g.handshakes.mu.Unlock()
	return len(g.handshakes.m)
}
