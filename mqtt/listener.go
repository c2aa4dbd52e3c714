package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
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

	ln     net.Listener
	closed atomic.Bool
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
		return
	}
	if l.confirm != nil && !l.confirm(tc, began) {
		tc.Close() // the refusal is logged and counted by confirm
		return
	}
	if l.connectTimeout > 0 {
		// From the handshake on, the device has connectTimeout to send
		// its CONNECT.
		tc.SetDeadline(time.Now().Add(l.connectTimeout))
	}
	// The session lives on a fresh goroutine: this one's stack grew for the
	// handshake (and the registry lookup in VerifyConnection) and would
	// stay that large for as long as an idle device stays connected.
	go func() {
		err := establish(l.id, tc)
		if err != nil {
			l.logger.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "err", err)
		}
		adm := l.handshakes.take(tc.ConnectionState()) // ended before its CONNECT took it
		if l.ended != nil {
			l.ended(tc, err, adm)
		}
	}()
}

func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		if l.ln != nil {
			l.ln.Close()
		}
		closeClients(l.id)
	}
}
