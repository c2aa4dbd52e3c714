package mqtt

import (
	"context"
	"errors"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
)

// changePage is how many change-feed entries are read at once.
const changePage = 1000

// loadView loads a new admission view and makes it the gateway's, with the
// feed's position it reflects: the head read before loading. The watcher
// reads the changes after it.
func (g *Gateway) loadView(ctx context.Context) error {
	v := g.Registry.NewAdmissionView()
	head, err := v.Load(ctx)
	if err != nil {
		return err
	}
	// Every admission decided before now (seq below head) is checked
	// again at its CONNECT: the view it came from may have missed changes
	// between seen and head.
	for i := range g.dropSeq {
		if g.dropSeq[i].Load() < head {
			g.dropSeq[i].Store(head)
		}
	}
	// The view before the position it reflects (see verifyConnection).
	g.view.Store(v)
	g.lastSeq = head
	g.seen.Store(head)
	return nil
}

// watchChanges consumes the change feed until ctx ends: at once when this
// process commits a change, when the store says another process did, when
// a handshake found the view behind, and every PollInterval.
func (g *Gateway) watchChanges(ctx context.Context) {
	defer g.watched.Done()
	poll := time.NewTicker(g.PollInterval)
	defer poll.Stop()
	notify, err := g.Registry.NotifyChanges(ctx)
	if err != nil {
		// Polling still reads the feed.
		g.Logger.Error("change feed notifications", "err", err)
	}
	lastSweep := time.Now()
	for {
		// Take the signal before reading, so that a commit during the read
		// wakes the next wait.
		signal := g.Registry.ChangeSignal()
		g.readChanges(ctx)
		select {
		case <-ctx.Done():
			return
		case <-signal:
		case <-g.wake:
		case _, ok := <-notify:
			if !ok {
				notify = nil // ended with ctx
			}
		case now := <-poll.C:
			if now.Sub(lastSweep) > 10*time.Second {
				g.sessions.sweep(now.Add(-10 * time.Second))
				lastSweep = now
			}
		}
	}
}

// readChanges applies the changes after lastSeq. The view takes each change
// in (reading the certificate again) before the change is recorded as read
// (noteChange), so that the view reflects every change up to seen.
func (g *Gateway) readChanges(ctx context.Context) {
	for {
		changes, err := g.Registry.Changes(ctx, g.lastSeq, changePage)
		if errors.Is(err, fleetcert.ErrChangesPruned) {
			if !g.reload(ctx) {
				return // tried again at the next wake
			}
			continue // from the new head
		}
		if err != nil {
			if ctx.Err() == nil {
				g.Logger.Error("read change feed", "after", g.lastSeq, "err", err)
			}
			return
		}
		view := g.view.Load()
		for i := range changes {
			c := &changes[i]
			if err := view.Apply(ctx, c); err != nil && ctx.Err() == nil {
				// Out of the view: admission reads the store for it.
				g.Logger.Error("refresh admission view", "certificateId", c.CertificateID, "err", err)
			}
			g.noteChange(c)
			g.applyChange(c)
			g.lastSeq = c.Seq
		}
		if len(changes) < changePage {
			return
		}
	}
}

// reload replaces the view after the watcher fell behind the feed's pruned
// horizon: the changes it missed cannot be read, so the registrations are
// read again, and every session whose registration the new view does not
// hold ACTIVE is closed, as the missed changes would have closed it. It
// reports whether the view was reloaded.
func (g *Gateway) reload(ctx context.Context) bool {
	g.Logger.Warn("change feed pruned past the gateway's position; reloading the admission view", "after", g.lastSeq)
	if err := g.loadView(ctx); err != nil {
		if ctx.Err() == nil {
			g.Logger.Error("reload admission view", "err", err)
		}
		return false
	}
	view := g.view.Load()
	for _, s := range g.sessions.all() {
		// A session still being admitted has no scope yet: it is deciding
		// from a read of the store made now, after the missed changes.
		if scope, _ := s.state(); scope != (fleetcert.Scope{}) && !view.Active(scope, s.certificateID) {
			g.drop(s, scope, "NOT_ACTIVE", time.Time{})
		}
	}
	return true
}

// applyChange disconnects the sessions of a certificate that left ACTIVE.
// CA changes disconnect nobody: a deactivated CA's certificates keep
// working (AWS IoT, "Deactivate a CA certificate").
func (g *Gateway) applyChange(c *fleetcert.Change) {
	if c.Kind == fleetcert.ChangeSessionStarted {
		g.takeOver(c)
		return
	}
	if isAuthzChange(c) {
		g.authzChanged(c) // authz.go
		return
	}
	if !leavesActive(c) {
		return
	}
	status := string(c.NewStatus)
	if status == "" {
		status = "DELETED"
	}
	for _, s := range g.sessions.forCertificate(c.Scope, c.CertificateID) {
		g.drop(s, c.Scope, status, c.Time)
	}
}

var (
	authError   = DisconnectAuthError
	duplicateID = DisconnectDuplicateID
)

// takeOver ends this gateway's connection with the client id that c
// announces on another connection (in practice, another node), if this one
// was announced earlier: MQTT's rule that a new connection with a client id
// ends the old one, across a cluster. The connection that announced last
// stays, whichever node each gateway hears of first.
func (g *Gateway) takeOver(c *fleetcert.Change) {
	cl, ok := g.server.Clients.Get(internalClientID(c.Scope, c.ClientID))
	if !ok {
		return
	}
	s := g.sessions.get(cl)
	if s == nil || s.sessionID.String() == c.SessionID || cl.Closed() {
		return
	}
	s.claimMu.Lock() // waits for the session's own announcement
	claimed := s.claimSeq
	s.claimMu.Unlock()
	if claimed == 0 || claimed > c.Seq {
		// This connection is the newer one: announced later, or not yet
		// (mochi lists a session before it is established), in which case
		// its announcement will come after c, which has committed.
		return
	}
	scope, _ := s.state()
	closeSession(s, &duplicateID, packets.ErrSessionTakenOver)
	g.Logger.Info("device disconnected: its client id connected on another node",
		"certificateId", s.certificateID, "clientId", s.clientID, "account", scope.AccountID, "region", scope.Region,
		"latency", time.Since(c.Time))
}

// drop closes a session whose certificate left ACTIVE (for status) in
// scope, changed at changed (zero when not known).
func (g *Gateway) drop(s *session, scope fleetcert.Scope, status string, changed time.Time) {
	cl := s.cl
	if cl.Closed() {
		return
	}
	// What mochi's Server.DisconnectClient writes: DISCONNECT 0x87 "not
	// authorized".
	closeSession(s, &authError, packets.ErrNotAuthorized)
	attrs := []any{"certificateId", s.certificateID, "clientId", s.clientID,
		"account", scope.AccountID, "region", scope.Region, "status", status}
	if !changed.IsZero() {
		latency := time.Since(changed)
		g.metrics.observeDrop(latency)
		attrs = append(attrs, "latency", latency)
	}
	g.Logger.Info("device disconnected by status change", attrs...)
}

// dropUnauthorized closes a session whose policies no longer allow it to
// connect, after the change at changed.
func (g *Gateway) dropUnauthorized(s *session, scope fleetcert.Scope, changed time.Time) {
	if s.cl.Closed() {
		return
	}
	closeSession(s, &authError, packets.ErrNotAuthorized)
	latency := time.Since(changed)
	g.Logger.Info("device disconnected: its policies no longer allow it to connect", "certificateId", s.certificateID,
		"clientId", s.clientID, "account", scope.AccountID, "region", scope.Region, "latency", latency)
}

// closeSession ends a session the gateway decided to end, with reason as
// its lifecycle event's disconnectReason and, for MQTT 5 devices, code in a
// DISCONNECT (MQTT 3.1.1 has no DISCONNECT from the server). It closes the
// connection rather than stop the client (as mochi's DisconnectClient
// does): the session's read then fails and mochi sends the last will, as
// AWS does. A client stopped before its session reached its read loop
// would end without its will.
func closeSession(s *session, reason *string, code packets.Code) {
	cl := s.cl
	s.dropReason.Store(reason)
	// A device that does not read must not hold the feed up.
	cl.Net.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if cl.Properties.ProtocolVersion >= 5 {
		cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		})
	}
	cl.Net.Conn.Close()
}
