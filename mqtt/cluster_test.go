package mqtt_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
	"github.com/fleetcert/fleetcert/sqlite"
)

// otherProcess returns a Registry on e's database file through a second
// handle: what another fleetcert process sharing the store would be. Its
// commits wake none of e's watchers in-process.
func (e *env) otherProcess(t *testing.T) *fleetcert.Registry {
	t.Helper()
	db := sqlite.NewDB(e.path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return fleetcert.NewRegistry(db, nil)
}

// session connects to addr as cert (MQTT 3.1.1, admitted) and returns the
// open connection.
func (e *env) session(t *testing.T, addr string, cert *testpki.Cert, clientID string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs: e.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(testwait.Deadline())
	if rc := connect(t, c, clientID); rc != 0 {
		t.Fatalf("CONNACK return code %d, want 0", rc)
	}
	return c
}

// A certificate revoked through another process is refused by this one's
// gateway at once: its view is trusted only once it has read the feed up
// to a head read after the handshake began, whichever process committed.
// (Before, the view trusted itself once it had read this process's
// commits, and admitted the device until the next poll.) The device's
// live session is dropped when the watcher reads the change.
func TestAdmissionAcrossProcesses(t *testing.T) {
	e := newEnvWith(t, policiesOff)
	ctx := context.Background()
	other := e.otherProcess(t)
	// No poll within the test: only the head check can refuse, and only
	// the handshake that found the view behind wakes the watcher, which
	// drops the live session.
	gw := e.launchGateway(func(g *mqtt.Gateway) { g.PollInterval = time.Hour })
	for _, status := range []fleetcert.Status{fleetcert.StatusRevoked, fleetcert.StatusInactive} {
		t.Run("refused/at-once-after-"+string(status)+"-elsewhere", func(t *testing.T) {
			for i := 0; i < 3; i++ {
				c := testpki.Leaf(t)
				cert := e.register(c, scopeA, fleetcert.StatusActive)
				// Reads are counted for every gateway on e's store.
				waitCaughtUp(t, e.gw)
				waitCaughtUp(t, gw)
				e.admittedFromView(t, gw.ListenAddr(), c, fmt.Sprint("before-", i))
				live := e.session(t, gw.ListenAddr(), c, fmt.Sprint("live-", i))
				if err := other.UpdateCertificate(ctx, scopeA, cert.ID, status); err != nil {
					t.Fatal(err)
				}
				if rc := e.connectTo(t, gw.ListenAddr(), c, fmt.Sprint("at-once-", i)); rc == 0 {
					t.Fatalf("attempt %d: admitted right after another process set %s", i, status)
				}
				waitClosed(t, live)
			}
		})
	}
	t.Run("dropped/within-poll-interval", func(t *testing.T) {
		c := testpki.Leaf(t)
		cert := e.register(c, scopeA, fleetcert.StatusActive)
		d := e.mustDial(c, dialOptions{}) // e.gw polls every 50 ms
		if err := other.UpdateCertificate(ctx, scopeA, cert.ID, fleetcert.StatusRevoked); err != nil {
			t.Fatal(err)
		}
		d.waitLost(t)
	})
}

// notifyingRegistry is a Registry whose store notifies watchers of every
// process's commits (fleetcert.ChangeNotifier), on the test's cue.
type notifyingRegistry struct {
	*fleetcert.Registry
	notify chan struct{}
}

func (r notifyingRegistry) NotifyChanges(ctx context.Context) (<-chan struct{}, error) {
	return r.notify, nil
}

// A store's notification wakes the watcher for another process's commit,
// without waiting for the poll.
func TestWatcherWokenByStoreNotification(t *testing.T) {
	e := newEnvWith(t, policiesOff)
	ctx := context.Background()
	other := e.otherProcess(t)
	reg := notifyingRegistry{Registry: e.reg, notify: make(chan struct{}, 1)}
	gw := e.launchGatewayOn(reg, func(g *mqtt.Gateway) { g.PollInterval = time.Hour })
	c := testpki.Leaf(t)
	cert := e.register(c, scopeA, fleetcert.StatusActive)
	waitCaughtUp(t, gw)
	live := e.session(t, gw.ListenAddr(), c, "notified")
	if err := other.UpdateCertificate(ctx, scopeA, cert.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	reg.notify <- struct{}{}
	waitClosed(t, live)
}

// A gateway whose position fell behind the feed's pruned horizon (here: it
// was not woken while another process changed registrations and pruned the
// feed) reloads its view from the store, drops the sessions the missed
// changes took out of ACTIVE, and goes on from the new head.
func TestWatcherReloadsAfterPrune(t *testing.T) {
	// No gateway polls, e's own included: one that read the feed between
	// the other process's changes and their pruning would leave them in
	// e.reg's memo of the feed, and gw would read them from there (rightly:
	// they are the changes it missed) instead of learning of the pruning.
	e := newEnvWith(t, func(g *mqtt.Gateway) { policiesOff(g); g.PollInterval = time.Hour })
	ctx := context.Background()
	other := e.otherProcess(t)
	gw := e.launchGateway(nil)
	revoked, kept, fresh := testpki.Leaf(t), testpki.Leaf(t), testpki.Leaf(t)
	revokedCert := e.register(revoked, scopeA, fleetcert.StatusActive)
	keptCert := e.register(kept, scopeA, fleetcert.StatusActive)
	waitCaughtUp(t, gw)
	revokedLive := e.session(t, gw.ListenAddr(), revoked, "revoked")
	keptLive := e.session(t, gw.ListenAddr(), kept, "kept")
	// Listed once established, which the device may learn (CONNACK) first.
	testwait.For(t, "the session to be listed", func() bool { return len(gw.SessionsOf(scopeA, keptCert.ID)) == 1 })

	// Unseen by gw: no notification, no poll, no commit of its process.
	if err := other.UpdateCertificate(ctx, scopeA, revokedCert.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if _, err := other.RegisterCertificateWithoutCA(ctx, scopeA, fresh.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	if n, err := other.PruneChanges(ctx, -time.Hour); err != nil || n == 0 {
		t.Fatalf("PruneChanges = %d, %v; want every change pruned", n, err)
	}
	// A commit of gw's process wakes its watcher, which finds its
	// position pruned.
	e.register(testpki.Leaf(t), scopeB, fleetcert.StatusActive)
	waitClosed(t, revokedLive)
	testwait.For(t, "the reload to be logged", func() bool {
		return strings.Contains(e.logs.String(), "reloading the admission view")
	})
	waitCaughtUp(t, gw)
	waitCaughtUp(t, e.gw) // its reads are counted too
	if n := len(gw.SessionsOf(scopeA, keptCert.ID)); n != 1 {
		t.Fatalf("%d sessions of the certificate still ACTIVE after the reload, want 1", n)
	}
	e.admittedFromView(t, gw.ListenAddr(), fresh, "registered-while-behind")
	if rc := e.connectTo(t, gw.ListenAddr(), revoked, "revoked-again"); rc == 0 {
		t.Fatal("a certificate revoked while the gateway was behind was admitted")
	}
	// From the new head on, changes apply as usual.
	e.setStatus(scopeA, keptCert.ID, fleetcert.StatusInactive)
	waitClosed(t, keptLive)
}

// One session per client id across processes: a device connecting to
// gateway B with a client id connected on gateway A (another process on the
// store) ends A's connection, with DUPLICATE_CLIENTID as its disconnect
// reason; the newer connection stays, whichever gateway reads which
// announcement first. Without AnnounceSessions both stay connected.
func TestSessionTakeoverAcrossProcesses(t *testing.T) {
	e := newEnvWith(t, policiesOff)
	other := e.otherProcess(t)
	announce := func(g *mqtt.Gateway) { g.AnnounceSessions = true }
	a := e.launchGateway(announce)
	b := e.launchGatewayOn(other, announce)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	waitCaughtUp(t, a)
	waitCaughtUp(t, b)

	for i, gws := range [][2]*mqtt.Gateway{{a, b}, {b, a}} {
		clientID := fmt.Sprint("sensor-", i)
		older := e.session(t, gws[0].ListenAddr(), c, clientID)
		// The connection announced last stays: the test connects the newer
		// one once the older one's announcement (made just after its
		// CONNACK) has committed.
		testwait.For(t, "the first connection to be announced", func() bool {
			return announced(t, e.reg, clientID) == 1
		})
		newer := e.session(t, gws[1].ListenAddr(), c, clientID)
		waitClosed(t, older)
		testwait.For(t, "the takeover's disconnect reason", func() bool {
			return strings.Contains(e.logs.String(), "clientId="+clientID+" reason="+mqtt.DisconnectDuplicateID)
		})
		// Both gateways have read both announcements: the newer stays.
		waitCaughtUp(t, a)
		waitCaughtUp(t, b)
		if err := ping(newer); err != nil {
			t.Fatalf("round %d: the newer connection ended: %v", i, err)
		}
		newer.Close()
		testwait.For(t, "the newer session to end", func() bool { return len(gws[1].Sessions(scopeA)) == 0 })
	}

	t.Run("ok/off-for-a-single-node", func(t *testing.T) {
		head, err := e.reg.ChangesHead(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		x := e.launchGateway(nil)
		y := e.launchGatewayOn(other, nil)
		e.session(t, x.ListenAddr(), c, "alone")
		e.session(t, y.ListenAddr(), c, "alone")
		testwait.For(t, "both sessions listed", func() bool {
			return len(x.Sessions(scopeA)) == 1 && len(y.Sessions(scopeA)) == 1
		})
		// Nothing announced them, so nothing can end either.
		changes, err := e.reg.Changes(context.Background(), head, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range changes {
			if ch.Kind == fleetcert.ChangeSessionStarted {
				t.Fatalf("a gateway without AnnounceSessions announced %q", ch.ClientID)
			}
		}
	})
}

// ping sends PINGREQ on an MQTT connection and reads the PINGRESP: the
// connection is alive.
func ping(c *tls.Conn) error {
	c.SetDeadline(testwait.Deadline())
	if _, err := c.Write([]byte{0xc0, 0}); err != nil {
		return err
	}
	resp := make([]byte, 2)
	if _, err := io.ReadFull(c, resp); err != nil {
		return err
	}
	if resp[0] != 0xd0 {
		return fmt.Errorf("answer 0x%x to PINGREQ, want PINGRESP", resp[0])
	}
	return nil
}

// announced returns how many connections of clientID the change feed holds.
func announced(t *testing.T, reg *fleetcert.Registry, clientID string) int {
	t.Helper()
	changes, err := reg.Changes(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range changes {
		if ch.Kind == fleetcert.ChangeSessionStarted && ch.ClientID == clientID {
			n++
		}
	}
	return n
}
