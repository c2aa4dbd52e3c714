package mqtt

import (
	"context"

	"github.com/fleetcert/fleetcert"
)

// PendingHandshakes is how many admissions decided in TLS handshakes wait
// for their CONNECT.
func (g *Gateway) PendingHandshakes() int {
	g.handshakes.mu.Lock()
	defer g.handshakes.mu.Unlock()
	return len(g.handshakes.m)
}

// SessionsBegun is how many connections have passed their handshake and
// its admission's confirmation (confirmAdmission) and begun a session.
func (g *Gateway) SessionsBegun() int64 { return g.listener.begun.Load() }

// ViewCaughtUp reports whether the gateway has read the change feed up to
// its head, so that admission may use its view.
func (g *Gateway) ViewCaughtUp() bool {
	head, err := g.Registry.ChangesHead(context.Background())
	return err == nil && g.seen.Load() >= head
}

// AuthzEpoch is how many authorization changes of scope the gateway has
// applied.
func (g *Gateway) AuthzEpoch(scope fleetcert.Scope) uint64 { return g.authzEpochs.get(scope) }
