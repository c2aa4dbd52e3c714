// Package connlimit caps the connections a net.Listener hands out: in total
// and, optionally, per remote address; and it reads the PROXY protocol
// (version 2) header that a trusted load balancer puts in front of a
// connection, so that the caps, logs and everything above see the client's
// real address.
//
// A connection over a cap is closed at once, counted and logged (at most
// one line per LogInterval and reason): it is neither queued nor left in
// the kernel's backlog. The total cap is checked in Accept. The per-address
// cap needs the real address, which for a proxied connection is in its
// PROXY header: the header is read, and the per-address cap applied, in the
// connection's own goroutine, on its first Read, Write or RemoteAddr, bounded
// by ProxyHeaderTimeout and by any deadline set before. A slow or silent
// peer therefore never holds up Accept.
//
// A PROXY header is honored only from peers in TrustedProxies, and there
// only in version 2 (the binary form, what load balancers send); from any
// other peer, a connection opening with a PROXY header is refused.
package connlimit

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// Reasons a connection is refused, as Stats and the log name them.
const (
	ReasonMaxConnections           = "max_connections"
	ReasonMaxConnectionsPerAddress = "max_connections_per_address"
	ReasonProxyHeader              = "proxy_header"
)

// Defaults of Listener's optional fields.
const (
	DefaultProxyHeaderTimeout = 5 * time.Second
	DefaultLogInterval        = 10 * time.Second
)

// Errors a refused connection's Read, Write and handshake see.
var (
	ErrTooManyFromAddress = errors.New("connlimit: too many connections from this address")
	ErrUntrustedProxy     = errors.New("connlimit: PROXY header from a peer that is not a trusted proxy")
	ErrProxyVersion       = errors.New("connlimit: only PROXY protocol version 2 is accepted")
)

// Listener wraps a net.Listener with connection caps. Create it with
// NewListener and set its fields before the first Accept.
type Listener struct {
	net.Listener

	// MaxConnections caps the connections open at once; 0 or less is no
	// cap. See DefaultMaxConnections.
	MaxConnections int

	// MaxConnectionsPerAddress caps the connections open at once from one
	// client IP address (after PROXY); 0 or less is no cap. Devices behind
	// a carrier-grade NAT, or a load balancer that sends no PROXY header,
	// share one address: turn it on only where addresses are one client's.
	MaxConnectionsPerAddress int

	// TrustedProxies are the peers whose PROXY protocol v2 header is read
	// (optional: a trusted peer may also connect without one, e.g. for
	// health checks, or as an HTTP reverse proxy; such a connection is not
	// counted against MaxConnectionsPerAddress, since it speaks for many
	// clients).
	TrustedProxies []netip.Prefix

	// ProxyHeaderTimeout bounds the wait for a trusted peer's PROXY header
	// (and the check of an untrusted peer's first bytes);
	// DefaultProxyHeaderTimeout when zero. A deadline set on the
	// connection before its first read bounds it too.
	ProxyHeaderTimeout time.Duration

	// Logger receives at most one line per LogInterval (default
	// DefaultLogInterval) and reason about refused connections; nil
	// logs nothing.
	Logger      *slog.Logger
	LogInterval time.Duration

	open   atomic.Int64
	counts [3]atomic.Uint64 // refused, by reason index
	logs   [3]rateLog

	optsOnce                   sync.Once
	trustedOpts, untrustedOpts []func(*proxyproto.Conn)

	mu     sync.Mutex
	byAddr map[netip.Addr]int
}

var reasons = [3]string{ReasonMaxConnections, ReasonMaxConnectionsPerAddress, ReasonProxyHeader}

const (
	reasonMax = iota
	reasonPerAddr
	reasonProxy
)

// NewListener returns a Listener on ln with no caps set.
func NewListener(ln net.Listener) *Listener {
	return &Listener{Listener: ln}
}

// Stats are a Listener's counters.
type Stats struct {
	// Open is the number of connections Accept returned that are not
	// closed yet.
	Open int64
	// Refused counts the connections refused since the start, by reason
	// (ReasonMaxConnections, ReasonMaxConnectionsPerAddress,
	// ReasonProxyHeader).
	Refused map[string]uint64
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	s := Stats{Open: l.open.Load(), Refused: make(map[string]uint64, len(reasons))}
	for i, r := range reasons {
		s.Refused[r] = l.counts[i].Load()
	}
	return s
}

// Accept returns the next connection under the total cap, closing at once
// those over it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if max := l.MaxConnections; max > 0 && l.open.Load() >= int64(max) {
			// Counted before it is closed: whoever sees it closed sees
			// it counted.
			l.refuse(reasonMax, raw.RemoteAddr(), nil)
			raw.Close()
			continue
		}
		l.open.Add(1)
		return l.wrap(raw), nil
	}
}

// wrap prepares raw for the checks that need its first bytes, which run in
// the connection's goroutine (see Conn.admit).
func (l *Listener) wrap(raw net.Conn) *Conn {
	l.optsOnce.Do(l.makeOpts)
	c := &Conn{Conn: raw, l: l, peer: raw.RemoteAddr()}
	// A trusted peer's header is used (if it sends one); any other peer's
	// is refused. The library reads the header through a 256-byte buffer
	// it drops once drained.
	opts := l.untrustedOpts
	if l.trusted(c.peer) {
		opts = l.trustedOpts
	}
	c.Conn = proxyproto.NewConn(raw, opts...)
	return c
}

// makeOpts makes the PROXY header options once, not per connection.
func (l *Listener) makeOpts() {
	timeout := l.ProxyHeaderTimeout
	if timeout <= 0 {
		timeout = DefaultProxyHeaderTimeout
	}
	common := []func(*proxyproto.Conn){proxyproto.SetReadHeaderTimeout(timeout), proxyproto.ValidateHeader(onlyV2)}
	l.trustedOpts = append([]func(*proxyproto.Conn){proxyproto.WithPolicy(proxyproto.USE)}, common...)
	l.untrustedOpts = append([]func(*proxyproto.Conn){proxyproto.WithPolicy(proxyproto.REJECT)}, common...)
}

func onlyV2(h *proxyproto.Header) error {
	if h.Version != 2 {
		return ErrProxyVersion
	}
	return nil
}

func (l *Listener) trusted(a net.Addr) bool {
	if len(l.TrustedProxies) == 0 {
		return false
	}
	ip, ok := addrIP(a)
	if !ok {
		return false
	}
	for _, p := range l.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrIP returns the IP address of a (a *net.TCPAddr, or anything whose
// String is host:port), IPv4-mapped IPv6 addresses as IPv4.
func addrIP(a net.Addr) (netip.Addr, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(t.IP)
		return ip.Unmap(), ok
	}
	if a == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// admit reads c's PROXY header (if its peer may send one) and applies the
// per-address cap to the real address. It runs once, in the goroutine of
// the connection's first Read, Write or RemoteAddr.
func (l *Listener) admit(c *Conn) error {
	// A zero-length read makes the library read (and check) the header
	// and nothing more: after the header, a read of no bytes returns at
	// once.
	if _, err := c.Conn.Read(nil); err != nil {
		if errors.Is(err, proxyproto.ErrSuperfluousProxyHeader) {
			err = ErrUntrustedProxy
		}
		var ne net.Error
		if !errors.As(err, &ne) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
			!errors.Is(err, net.ErrClosed) {
			// A header refused or malformed. A timeout, a reset or an
			// early close is the peer's business, not a refusal.
			l.refuse(reasonProxy, c.peer, err)
		}
		return err
	}
	if l.MaxConnectionsPerAddress <= 0 {
		return nil
	}
	ip, ok := addrIP(c.Conn.RemoteAddr())
	if !ok {
		return nil
	}
	if peer, _ := addrIP(c.peer); ip == peer && l.trusted(c.peer) {
		// A trusted proxy that sent no PROXY header speaks for many
		// clients (an HTTP reverse proxy, a load balancer): its own
		// address is no one client's, so it is not capped per address.
		return nil
	}
	l.mu.Lock()
	if l.byAddr == nil {
		l.byAddr = map[netip.Addr]int{}
	}
	n := l.byAddr[ip]
	if n >= l.MaxConnectionsPerAddress {
		l.mu.Unlock()
		l.refuse(reasonPerAddr, c.Conn.RemoteAddr(), nil)
		return ErrTooManyFromAddress
	}
	l.byAddr[ip] = n + 1
	l.mu.Unlock()
	c.addr = ip
	return nil
}

func (l *Listener) release(c *Conn) {
	l.open.Add(-1)
	if !c.addr.IsValid() {
		return
	}
	l.mu.Lock()
	if n := l.byAddr[c.addr]; n <= 1 {
		delete(l.byAddr, c.addr)
	} else {
		l.byAddr[c.addr] = n - 1
	}
	l.mu.Unlock()
}

// refuse counts a refused connection and logs it, at most once per
// LogInterval and reason, with how many were refused since the last line.
func (l *Listener) refuse(reason int, remote net.Addr, err error) {
	l.counts[reason].Add(1)
	if l.Logger == nil {
		return
	}
	interval := l.LogInterval
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	n, ok := l.logs[reason].due(time.Now(), interval)
	if !ok {
		return
	}
	attrs := []any{"reason", reasons[reason], "refused", n, "listener", l.Addr().String()}
	if remote != nil {
		attrs = append(attrs, "remote", remote.String())
	}
	switch reason {
	case reasonMax:
		attrs = append(attrs, "maxConnections", l.MaxConnections)
	case reasonPerAddr:
		attrs = append(attrs, "maxConnectionsPerAddress", l.MaxConnectionsPerAddress)
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	l.Logger.Warn("connections refused", attrs...)
}

// rateLog lets one log line through per interval and counts the events in
// between.
type rateLog struct {
	last    atomic.Int64 // Unix nanoseconds of the last line
	pending atomic.Uint64
}

// due records an event and reports whether to log it now, with the number
// of events since the last line (this one included).
func (r *rateLog) due(now time.Time, interval time.Duration) (uint64, bool) {
	r.pending.Add(1)
	last := r.last.Load()
	t := now.UnixNano()
	if last != 0 && t-last < int64(interval) {
		return 0, false
	}
	if !r.last.CompareAndSwap(last, t) {
		return 0, false
	}
	return r.pending.Swap(0), true
}

// Conn is a connection a Listener accepted. Its RemoteAddr is the client's
// address from the PROXY header when a trusted proxy sent one.
type Conn struct {
	net.Conn // a *proxyproto.Conn over the accepted connection
	l        *Listener
	peer     net.Addr   // the TCP peer (the proxy, for a proxied connection)
	addr     netip.Addr // counted against the per-address cap, when valid

	once   sync.Once
	err    error
	closed atomic.Bool
}

// admit runs the listener's checks once; a refused connection is closed.
func (c *Conn) admit() error {
	c.once.Do(func() {
		if c.err = c.l.admit(c); c.err != nil {
			c.Close()
		}
	})
	return c.err
}

// Read reads from the connection, after its checks.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.admit(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write writes to the connection, after its checks.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.admit(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// RemoteAddr returns the client's address: from the PROXY header of a
// trusted proxy, else the peer's. It waits for the header (bounded by the
// header timeout).
func (c *Conn) RemoteAddr() net.Addr {
	c.admit()
	return c.Conn.RemoteAddr()
}

// PeerAddr returns the address of the TCP peer: the proxy's, for a
// proxied connection.
func (c *Conn) PeerAddr() net.Addr { return c.peer }

// Close closes the connection and frees its place under the caps.
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c)
	}
	return c.Conn.Close()
}
