package mqtt_test

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// waitCaughtUp waits until gw has read every change made so far.
func waitCaughtUp(t *testing.T, gw *mqtt.Gateway) {
	t.Helper()
	testwait.For(t, "the gateway to read the change feed", gw.ViewCaughtUp)
}

// connectTo opens a connection to addr as cert and sends CONNECT; it
// returns the CONNACK's return code, or -1 when the gateway refused the
// handshake or closed the connection first.
func (e *env) connectTo(t *testing.T, addr string, cert *testpki.Cert, clientID string) int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs: e.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}},
	})
	if err != nil {
		return -1
	}
	defer c.Close()
	c.SetDeadline(testwait.Deadline())
	return connect(t, c, clientID)
}

// admittedFromView connects to addr as cert and checks that it was admitted
// without a read of certificates from the store (the feed's head is read).
func (e *env) admittedFromView(t *testing.T, addr string, cert *testpki.Cert, clientID string) {
	t.Helper()
	// Every gateway on e's store re-reads a changed certificate: none may
	// be doing so while this connection's reads are counted.
	for _, gw := range e.gateways {
		waitCaughtUp(t, gw)
	}
	before := e.reads.Load()
	if rc := e.connectTo(t, addr, cert, clientID); rc != 0 {
		t.Fatalf("CONNACK return code %d, want 0", rc)
	}
	if n := e.reads.Load() - before; n != 0 {
		t.Errorf("%d certificate reads from the store to admit an ACTIVE certificate, want 0", n)
	}
}

// The common connection, a registered ACTIVE certificate, is admitted from
// the gateway's view of the registry without a read of the store; every
// other case still reads it, and the view follows every change.
func TestAdmissionView(t *testing.T) {
	e := newEnvWith(t, policiesOff)
	t.Run("ok/no-store-read", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		waitCaughtUp(t, e.gw)
		e.admittedFromView(t, e.gw.ListenAddr(), c, "from-view")
	})
	t.Run("ok/loaded-at-start", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		// The store's reads are counted for every gateway of e: the first
		// must have re-read this registration before the count starts.
		waitCaughtUp(t, e.gw)
		gw := e.startGateway()
		waitCaughtUp(t, gw)
		e.admittedFromView(t, gw.ListenAddr(), c, "loaded")
	})
	// Right after the API's answer, before the watcher has read the change
	// (it reads the feed 20 ms late here): the view must not admit what the
	// store refuses.
	for _, status := range []fleetcert.Status{fleetcert.StatusRevoked, fleetcert.StatusInactive} {
		t.Run("refused/at-once-after-"+string(status), func(t *testing.T) {
			e.feedDelay.Store(int64(20 * time.Millisecond))
			defer e.feedDelay.Store(0)
			for i := 0; i < 5; i++ {
				c := testpki.Leaf(t)
				cert := e.register(c, scopeA, fleetcert.StatusActive)
				waitCaughtUp(t, e.gw)
				e.setStatus(scopeA, cert.ID, status)
				if rc := e.connectTo(t, e.gw.ListenAddr(), c, fmt.Sprint("at-once-", i)); rc == 0 {
					t.Fatalf("attempt %d: admitted right after UpdateCertificate %s", i, status)
				}
			}
		})
	}
	t.Run("refused/deleted", func(t *testing.T) {
		c := testpki.Leaf(t)
		cert := e.register(c, scopeA, fleetcert.StatusInactive)
		if err := e.reg.DeleteCertificate(t.Context(), scopeA, cert.ID, true); err != nil { // detaches its policy
			t.Fatal(err)
		}
		if rc := e.connectTo(t, e.gw.ListenAddr(), c, "deleted"); rc == 0 {
			t.Fatal("a deleted certificate was admitted")
		}
	})
	t.Run("ok/reactivated", func(t *testing.T) {
		c := testpki.Leaf(t)
		cert := e.register(c, scopeA, fleetcert.StatusInactive)
		waitCaughtUp(t, e.gw)
		if rc := e.connectTo(t, e.gw.ListenAddr(), c, "inactive"); rc == 0 {
			t.Fatal("an INACTIVE certificate was admitted")
		}
		e.setStatus(scopeA, cert.ID, fleetcert.StatusActive)
		if rc := e.connectTo(t, e.gw.ListenAddr(), c, "reactivated"); rc != 0 {
			t.Fatalf("CONNACK return code %d after activation, want 0", rc)
		}
		waitCaughtUp(t, e.gw)
		e.admittedFromView(t, e.gw.ListenAddr(), c, "reactivated-again")
	})
	t.Run("refused/expired", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		waitCaughtUp(t, e.gw)
		e.offset.Store(int64(c.Cert.NotAfter.Sub(time.Now()) + time.Hour))
		defer e.offset.Store(0)
		if rc := e.connectTo(t, e.gw.ListenAddr(), c, "expired"); rc == 0 {
			t.Fatal("an expired certificate was admitted")
		}
	})
	// SNI_ONLY in another account than the default one: without a server
	// name naming it, the store refuses it, and so must the view; a copy
	// in the default account is what such a device means.
	t.Run("refused/sni-only-in-another-account", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeB, fleetcert.StatusActive)
		waitCaughtUp(t, e.gw)
		if rc := e.connectTo(t, e.gw.ListenAddr(), c, "needs-sni"); rc == 0 {
			t.Fatal("an SNI_ONLY certificate of another account was admitted without a server name")
		}
		e.register(c, scopeA, fleetcert.StatusActive)
		waitCaughtUp(t, e.gw)
		e.admittedFromView(t, e.gw.ListenAddr(), c, "default-account")
	})
}
