package mqtt

import (
	"context"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
)

// changePage is how many change-feed entries are read at once.
const changePage = 1000

// skipChanges moves past the end of the change feed.
func (g *Gateway) skipChanges(ctx context.Context) error {
	commits := g.Registry.Commits()
	for {
		changes, err := g.Registry.Store.Changes(ctx, g.lastSeq, changePage)
		if err != nil {
			return fmt.Errorf("read change feed: %w", err)
		}
		if len(changes) > 0 {
			g.lastSeq = changes[len(changes)-1].Seq
		}
		if len(changes) < changePage {
			g.seen.Store(g.lastSeq)
			g.caughtUp.Store(commits)
			return nil
		}
	}
}

// watchChanges consumes the change feed until ctx ends: at once when this
// process commits a change, and every PollInterval for other processes'.
func (g *Gateway) watchChanges(ctx context.Context) {
	defer g.watched.Done()
	poll := time.NewTicker(g.PollInterval)
	defer poll.Stop()
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
		case now := <-poll.C:
			if now.Sub(lastSweep) > 10*time.Second {
				g.sessions.sweep(now.Add(-10 * time.Second))
				lastSweep = now
			}
		}
	}
}

// readChanges applies the changes after lastSeq. A certificate a change
// concerns leaves the admission view before the change is recorded as read
// (noteChange), and comes back from a read of the store after its sessions
// were dealt with (see registryView).
func (g *Gateway) readChanges(ctx context.Context) {
	commits := g.Registry.Commits()
	for {
		changes, err := g.Registry.Store.Changes(ctx, g.lastSeq, changePage)
		if err != nil {
			if ctx.Err() == nil {
				g.Logger.Error("read change feed", "after", g.lastSeq, "err", err)
			}
			return
		}
		for i := range changes {
			c := &changes[i]
			certificate := isCertificateChange(c)
			if certificate {
				g.view.remove(c.CertificateID)
			}
			g.noteChange(c)
			g.applyChange(c)
			if certificate {
				g.refreshView(ctx, c.CertificateID)
			}
			g.lastSeq = c.Seq
		}
		if len(changes) < changePage {
			// Every change committed in this process before commits was
			// read above.
			g.caughtUp.Store(commits)
			return
		}
	}
}

// applyChange disconnects the sessions of a certificate that left ACTIVE.
// CA changes disconnect nobody: a deactivated CA's certificates keep
// working (AWS IoT, "Deactivate a CA certificate").
func (g *Gateway) applyChange(c *fleetcert.Change) {
	if !leavesActive(c) {
		return
	}
	for _, s := range g.sessions.forCertificate(c.Scope, c.CertificateID) {
		g.drop(s, c)
	}
}

var authError = DisconnectAuthError

// drop closes a session whose certificate left ACTIVE.
func (g *Gateway) drop(s *session, c *fleetcert.Change) {
	cl := s.cl
	if cl.Closed() {
		return
	}
	s.dropReason.Store(&authError)
	// A device that does not read must not hold the feed up.
	cl.Net.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if cl.Properties.ProtocolVersion >= 5 {
		// What mochi's Server.DisconnectClient writes: DISCONNECT 0x87
		// "not authorized". MQTT 3.1.1 has no DISCONNECT from the server.
		cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  packets.ErrNotAuthorized.Code,
			Properties:  packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason},
		})
	}
	// Close the connection rather than stop the client (as DisconnectClient
	// does): the session's read then fails and mochi sends the last will,
	// as AWS does for AUTH_ERROR. A client stopped before its session
	// reached its read loop would end without its will.
	cl.Net.Conn.Close()
	latency := time.Since(c.Time)
	g.metrics.observeDrop(latency)
	status := string(c.NewStatus)
	if status == "" {
		status = "DELETED"
	}
	g.Logger.Info("device disconnected by status change", "certificateId", s.certificateID, "clientId", s.clientID,
		"account", c.Scope.AccountID, "region", c.Scope.Region, "status", status, "latency", latency)
}
