package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/fleetcert/fleetcert/internal/connlimit"
)

// tlsListener is a mochi listener on TCP that completes the TLS handshake
// (and so the registry's check of the device certificate) before handing
// the connection to the broker, bounding the handshake and the wait for
// CONNECT by timeout: mochi's own TCP listener leaves both unbounded.
type tlsListener struct {
	id      string
	address string
	config  *tls.Config
	timeout time.Duration
	logger  *slog.Logger

	// handshakes holds what the handshakes decided until CONNECT takes it;
	// a connection that ends before that must not leave it behind.
	handshakes *handshakeAdmissions

	// connectTimeout bounds the wait for CONNECT after the handshake.
	connectTimeout time.Duration
	// configure sets the connection caps; wrap wraps each connection
	// under TLS; ended learns how a connection ended, with its handshake's
	// admission if CONNECT never took it. Each may be nil.
	configure func(*connlimit.Listener)
	wrap      func(net.Conn) net.Conn
	ended     func(*tls.Conn, error, *admission)
	// confirm reports, once the handshake (begun at the time it gets) is
	// over, whether the connection may go on; nil means it may.
	confirm func(*tls.Conn, time.Time) bool
	limited *connlimit.Listener

	ln net.Listener

	// conns are the connections accepted and not yet ended, from the
	// handshake on; Close ends those mochi does not know of yet.
	mu    sync.Mutex
	conns map[*tls.Conn]struct{}
	// closed is set by Close, under mu as it takes conns: accepting ends,
	// and a connection accepted after it is closed at once.
	closed atomic.Bool
	served sync.WaitGroup // sessions begun (serving) and not yet ended
	begun  atomic.Int64   // sessions begun, ever: connections past their admission's confirmation (tests)
}

var _ listeners.Listener = (*tlsListener)(nil)

func (l *tlsListener) ID() string       { return l.id }
func (l *tlsListener) Protocol() string { return "tcp+tls" }

func (l *tlsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *tlsListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	// Over a cap, a connection is closed as it is accepted; the PROXY
	// header and the per-address cap are dealt with in serveConn's
	// goroutine, on the handshake's first read.
	l.limited = connlimit.NewListener(ln)
	if l.configure != nil {
		l.configure(l.limited)
	}
	l.ln = l.limited
	return nil
}

func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop serving.
			l.logger.Warn("mqtt accept failed", "err", err, "retryIn", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		go l.serveConn(conn, establish)
	}
}

func (l *tlsListener) serveConn(conn net.Conn, establish listeners.EstablishFn) {
	under := conn
	if l.wrap != nil {
		under = l.wrap(conn)
	}
	tc := tls.Server(under, l.config)
	if !l.track(tc) {
		tc.Close()
		return
	}
	// The deadline covers the handshake (and the PROXY header before it),
	// then connectTimeout the wait for CONNECT; mochi replaces it by the
	// keepalive deadline once CONNECT is read. (A handshake
	// context would bound the same wait with a goroutine and a timer more
	// per connection.)
	began := time.Now()
	tc.SetDeadline(began.Add(l.timeout))
	if err := tc.Handshake(); err != nil {
		// Refusals by the registry are logged by VerifyConnection; the rest
		// (scanners, clients that distrust the server certificate) are noise.
		l.logger.Debug("mqtt tls handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		l.handshakes.take(tc.ConnectionState()) // admitted before a later step failed
		tc.Close()
		l.untrack(tc)
		return
	}
	if l.confirm != nil && !l.confirm(tc, began) {
		tc.Close() // the refusal is logged and counted by confirm
		l.untrack(tc)
		return
	}
	if l.connectTimeout > 0 {
		// From the handshake on, the device has connectTimeout to send
		// its CONNECT.
		tc.SetDeadline(time.Now().Add(l.connectTimeout))
	}
	if !l.serving() {
		tc.NetConn().Close() // the gateway is closing
		l.handshakes.take(tc.ConnectionState())
		l.untrack(tc)
		return
	}
	// The session lives on a fresh goroutine: this one's stack grew for the
	// handshake (and the registry lookup in VerifyConnection) and would
	// stay that large for as long as an idle device stays connected.
	go func() {
		defer l.served.Done()
		err := establish(l.id, tc)
		if err != nil {
			l.logger.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "err", err)
		}
		adm := l.handshakes.take(tc.ConnectionState()) // ended before its CONNECT took it
		if l.ended != nil {
			l.ended(tc, err, adm)
		}
		l.untrack(tc)
	}()
}

// track records tc as live, unless Close has run: then it reports false.
func (l *tlsListener) track(tc *tls.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	if l.conns == nil {
		l.conns = make(map[*tls.Conn]struct{})
	}
	l.conns[tc] = struct{}{}
	return true
}

// serving counts a session about to begin (served), unless Close has run:
// then it reports false. mochi counts the sessions it waits for as they
// begin, which must not be while it waits (sync.WaitGroup: an Add from
// zero concurrent with Wait), so Close waits for these to end first.
func (l *tlsListener) serving() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.served.Add(1)
	l.begun.Add(1)
	return true
}

func (l *tlsListener) untrack(tc *tls.Conn) {
	l.mu.Lock()
	delete(l.conns, tc)
	l.mu.Unlock()
}

// Close stops accepting and ends every connection. mochi disconnects the
// clients it holds (closeClients: an MQTT 5 device is told the server is
// shutting down), then waits for every connection it began serving.
// Two kinds of connection would hold that wait, and with it the process's
// shutdown, for as long as their devices please:
//   - one still in its handshake or before its CONNECT was read, which
//     closeClients does not know of: were its CONNECT read after, its
//     session would run on (with keepalive 0, with no deadline at all);
//   - one whose device does not read: the DISCONNECT's write waits for
//     room in its socket, and each packet the device sends (a PINGREQ)
//     moves mochi's deadline on.
//
// So Close ends every connection it accepted once closeClients returns or
// shutdownGrace has passed, whichever is first (closing a connection ends
// a write blocked on it), and a connection accepted meanwhile is closed as
// it begins. It returns once every session begun has ended.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return
	}
	l.closed.Store(true)
	conns := l.conns // no longer written to: untrack deletes from l.conns
	l.conns = nil
	l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
	}
	closeAll := func() {
		// The socket, not the TLS session: a close_notify alert is one
		// more write that could wait on a device that does not read.
		for tc := range conns {
			tc.NetConn().Close()
		}
	}
	grace := time.AfterFunc(shutdownGrace, closeAll)
	closeClients(l.id)
	if grace.Stop() {
		closeAll()
	}
	l.served.Wait() // their sockets are closed: they end at once
}

// shutdownGrace bounds the time the gateway's devices are given to take
// their DISCONNECT when it closes.
const shutdownGrace = time.Second
