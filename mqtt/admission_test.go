package mqtt_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// ticketSignal is a client session cache that reports the server's TLS 1.3
// session ticket: the server sends it once it has verified the client's
// certificate (after VerifyConnection).
type ticketSignal chan struct{}

func (s ticketSignal) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (s ticketSignal) Put(string, *tls.ClientSessionState) {
	select {
	case s <- struct{}{}:
	default:
	}
}

// handshake opens a TLS 1.3 connection as cert, waits for the gateway to
// have admitted it in the handshake and confirmed that admission after it
// (a status change before the confirmation refuses the connection there,
// not at CONNECT), and stops before MQTT CONNECT.
func (e *env) handshake(t *testing.T, cert *testpki.Cert) *tls.Conn {
	t.Helper()
	begun := e.gw.SessionsBegun()
	ticket := make(ticketSignal, 1)
	c, err := tls.Dial("tcp", e.gw.ListenAddr(), &tls.Config{
		RootCAs: e.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		Certificates:       []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}},
		ClientSessionCache: ticket,
	})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	// Reading processes the ticket; the read itself times out.
	for deadline := testwait.Deadline(); len(ticket) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no session ticket: the gateway did not admit the device in the handshake")
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("waiting for the session ticket: %v", err)
		}
	}
	testwait.For(t, "the gateway to confirm the handshake's admission", func() bool { return e.gw.SessionsBegun() > begun })
	c.SetDeadline(testwait.Deadline())
	return c
}

// connect sends an MQTT 3.1.1 CONNECT (clean session, keepalive 60 s) and
// returns the CONNACK's return code, or -1 when the connection ends first.
func connect(t *testing.T, c *tls.Conn, clientID string) int {
	t.Helper()
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, byte(len(clientID) >> 8), byte(len(clientID))}
	pk := append([]byte{0x10, byte(len(vh) + len(clientID))}, append(vh, clientID...)...)
	if _, err := c.Write(pk); err != nil {
		return -1
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return -1
	}
	if ack[0] != 0x20 {
		t.Fatalf("not a CONNACK: % x", ack)
	}
	return int(ack[3])
}

// waitClosed waits for the server to close c.
func waitClosed(t *testing.T, c *tls.Conn) {
	t.Helper()
	c.SetReadDeadline(testwait.Deadline())
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("connection still open after the status change: %v", err)
	}
}

// The handshake's admission is carried to the CONNECT without reading the
// store again: a status change in between must still refuse the device.
func TestStatusChangeBetweenHandshakeAndConnect(t *testing.T) {
	e := newEnv(t)
	reasons := map[fleetcert.Status]string{fleetcert.StatusRevoked: fleetcert.ReasonRevoked, fleetcert.StatusInactive: fleetcert.ReasonInactive}
	for status, reason := range reasons {
		t.Run("refused/"+string(status)+"-applied-before-connect", func(t *testing.T) {
			c := testpki.Leaf(t)
			cert := e.register(c, scopeA, fleetcert.StatusActive)
			conn := e.handshake(t, c)
			e.setStatus(scopeA, cert.ID, status)
			e.dropAnother(t) // the watcher has read the change
			before := e.refusedCount(reason)
			if rc := connect(t, conn, "between-"+string(status)); rc != 5 {
				t.Fatalf("CONNACK return code %d, want 5 (not authorized)", rc)
			}
			if got := e.refusedCount(reason); got != before+1 {
				t.Errorf("refused{reason=%s} = %d, want %d", reason, got, before+1)
			}
		})
	}
	t.Run("ok/reactivated-before-connect", func(t *testing.T) {
		c := testpki.Leaf(t)
		cert := e.register(c, scopeA, fleetcert.StatusActive)
		conn := e.handshake(t, c)
		e.setStatus(scopeA, cert.ID, fleetcert.StatusInactive)
		e.setStatus(scopeA, cert.ID, fleetcert.StatusActive)
		e.dropAnother(t)
		if rc := connect(t, conn, "reactivated"); rc != 0 {
			t.Fatalf("CONNACK return code %d, want 0", rc)
		}
	})
	t.Run("refused/expired-before-connect", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		conn := e.handshake(t, c)
		e.offset.Store(int64(c.Cert.NotAfter.Sub(time.Now()) + time.Hour))
		defer e.offset.Store(0)
		if rc := connect(t, conn, "expired"); rc != 5 {
			t.Fatalf("CONNACK return code %d, want 5 (not authorized)", rc)
		}
	})
	t.Run("ok/other-certificate-changed", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		conn := e.handshake(t, c)
		e.dropAnother(t)
		if rc := connect(t, conn, "unrelated"); rc != 0 {
			t.Fatalf("CONNACK return code %d, want 0", rc)
		}
	})
	// A revocation racing the CONNECT: whatever the order, the device ends
	// up disconnected (refused, or admitted and dropped).
	t.Run("dropped/revoked-during-connect", func(t *testing.T) {
		for i := 0; i < 40; i++ {
			c := testpki.Leaf(t)
			cert := e.register(c, scopeA, fleetcert.StatusActive)
			conn := e.handshake(t, c)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i%8) * 250 * time.Microsecond)
				e.setStatus(scopeA, cert.ID, fleetcert.StatusRevoked)
			}()
			connect(t, conn, fmt.Sprintf("race-%d", i))
			wg.Wait()
			waitClosed(t, conn)
		}
	})
}

// An admission waits from the handshake to the CONNECT only: a connection
// that ends before sending CONNECT leaves none behind.
func TestHandshakeAdmissionsDoNotOutliveTheirConnection(t *testing.T) {
	e := newEnv(t)
	waitNone := func(t *testing.T) {
		t.Helper()
		testwait.For(t, "no handshake admission left behind", func() bool { return e.gw.PendingHandshakes() == 0 })
	}
	t.Run("taken-by-connect", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		conn := e.handshake(t, c)
		if n := e.gw.PendingHandshakes(); n != 1 {
			t.Fatalf("%d handshake admissions before CONNECT, want 1", n)
		}
		if rc := connect(t, conn, "takes-its-admission"); rc != 0 {
			t.Fatalf("CONNACK return code %d, want 0", rc)
		}
		if n := e.gw.PendingHandshakes(); n != 0 {
			t.Fatalf("%d handshake admissions after CONNACK, want 0", n)
		}
	})
	t.Run("closed-before-connect", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		conn := e.handshake(t, c)
		conn.Close()
		waitNone(t)
	})
	t.Run("not-mqtt", func(t *testing.T) {
		c := testpki.Leaf(t)
		e.register(c, scopeA, fleetcert.StatusActive)
		conn := e.handshake(t, c)
		conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		waitClosed(t, conn)
		waitNone(t)
	})
}
