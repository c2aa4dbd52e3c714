package connlimit_test

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/fleetcert/fleetcert/internal/connlimit"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// Only loopback addresses: 127.0.0.2 stands for a trusted proxy (a client
// can bind any address of 127.0.0.0/8), 127.0.0.1 for everyone else, and
// the "real" client addresses a proxy reports are written in headers only.
var (
	direct  = netip.MustParseAddr("127.0.0.1")
	proxy   = netip.MustParseAddr("127.0.0.2")
	trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
)

// server is an echo server behind a connlimit.Listener: it first writes the
// client's address as it sees it (RemoteAddr) on a line of its own.
type server struct {
	ln   *connlimit.Listener
	logs *testwait.Buffer
	wg   sync.WaitGroup
}

func newServer(t *testing.T, configure func(*connlimit.Listener)) *server {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: connlimit.NewListener(raw), logs: &testwait.Buffer{}}
	s.ln.Logger = slog.New(slog.NewTextHandler(s.logs, nil))
	configure(s.ln)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				// The client speaks first, as in TLS and HTTP.
				r := bufio.NewReader(c)
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				if _, err := io.WriteString(c, c.RemoteAddr().String()+"\n"); err != nil {
					return
				}
				io.Copy(c, r)
			}()
		}
	}()
	t.Cleanup(func() {
		s.ln.Close()
		s.wg.Wait()
	})
	return s
}

// client is a connection to a server and the address the server saw.
type client struct {
	net.Conn
	r    *bufio.Reader
	seen string
}

// dial connects from the local address from, sends header first when not
// nil, then a line, and reads the address the server saw; err is set when
// the server closed the connection instead. The connection stays open
// until t ends.
func (s *server) dial(t *testing.T, from netip.Addr, header []byte) (*client, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), Timeout: testwait.Hang}
	c, err := d.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(testwait.Deadline())
	if _, err := c.Write(append(header, "hello\n"...)); err != nil {
		return nil, err
	}
	cl := &client{Conn: c, r: bufio.NewReader(c)}
	line, err := cl.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	cl.seen = strings.TrimSuffix(line, "\n")
	return cl, nil
}

func (s *server) mustDial(t *testing.T, from netip.Addr, header []byte) *client {
	t.Helper()
	c, err := s.dial(t, from, header)
	if err != nil {
		t.Fatalf("connection from %s refused: %v", from, err)
	}
	return c
}

// echo checks that the connection still works.
func (c *client) echo(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := c.r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
}

// refused checks that the server closed the connection without a word.
func refused(t *testing.T, c *client, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted, seen as %s", c.seen)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("want the connection closed, got %v", err)
	}
}

// proxyHeader is a PROXY v2 (or v1) header for a TCP connection from src.
func proxyHeader(t *testing.T, version byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:8883")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMaxConnections(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) { l.MaxConnections = 2 })
	a := s.mustDial(t, direct, nil)
	b := s.mustDial(t, direct, nil)
	c, err := s.dial(t, direct, nil)
	refused(t, c, err)
	a.echo(t)
	b.echo(t)
	if got := s.ln.Stats().Refused[connlimit.ReasonMaxConnections]; got != 1 {
		t.Fatalf("refused{max_connections} = %d", got)
	}
	a.Close()
	testwait.For(t, "the closed connection's place freed", func() bool { return s.ln.Stats().Open == 1 })
	s.mustDial(t, direct, nil).echo(t)
	b.echo(t)
}

func TestMaxConnectionsPerAddress(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) { l.MaxConnectionsPerAddress = 1 })
	a := s.mustDial(t, direct, nil)
	c, err := s.dial(t, direct, nil)
	refused(t, c, err)
	// Another address has its own place.
	s.mustDial(t, proxy, nil).echo(t)
	a.echo(t)
	a.Close()
	testwait.For(t, "the closed connection's place freed", func() bool { return s.ln.Stats().Open == 1 })
	s.mustDial(t, direct, nil).echo(t)
	if got := s.ln.Stats().Refused[connlimit.ReasonMaxConnectionsPerAddress]; got != 1 {
		t.Fatalf("refused{max_connections_per_address} = %d", got)
	}
}

func TestProxyProtocol(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) {
		l.TrustedProxies = trusted
		l.MaxConnectionsPerAddress = 1
	})
	for _, tt := range []struct {
		name   string
		from   netip.Addr
		header []byte
		seen   string // "" means refused
	}{
		{"ok/v2-from-trusted-proxy", proxy, proxyHeader(t, 2, "127.0.9.9:4242"), "127.0.9.9:4242"},
		{"ok/per-address-cap-on-the-real-address", proxy, proxyHeader(t, 2, "127.0.9.10:4242"), "127.0.9.10:4242"},
		{"fail/per-address-cap-on-the-real-address", proxy, proxyHeader(t, 2, "127.0.9.9:4343"), ""},
		{"fail/v2-from-untrusted-peer", direct, proxyHeader(t, 2, "127.0.9.11:4242"), ""},
		{"fail/v1-from-untrusted-peer", direct, proxyHeader(t, 1, "127.0.9.11:4242"), ""},
		{"fail/v1-from-trusted-proxy", proxy, proxyHeader(t, 1, "127.0.9.12:4242"), ""},
	} {
		// One after the other on t, not as subtests: each connection stays
		// open for the cases after it.
		c, err := s.dial(t, tt.from, tt.header)
		if tt.seen == "" {
			refused(t, c, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.seen != tt.seen {
			t.Fatalf("%s: server saw %s, want %s", tt.name, c.seen, tt.seen)
		}
		c.echo(t)
	}
	st := s.ln.Stats()
	if st.Refused[connlimit.ReasonProxyHeader] != 3 || st.Refused[connlimit.ReasonMaxConnectionsPerAddress] != 1 {
		t.Fatalf("refused: %v", st.Refused)
	}
	if !strings.Contains(s.logs.String(), "reason=proxy_header") {
		t.Fatalf("no log line for the refused headers:\n%s", s.logs)
	}
}

// TestTrustedProxyWithoutHeader: a trusted peer may connect without a
// header (a load balancer's health check): it is seen as itself.
func TestTrustedProxyWithoutHeader(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) {
		l.TrustedProxies = trusted
		l.ProxyHeaderTimeout = 50 * time.Millisecond
	})
	c := s.mustDial(t, proxy, nil)
	if !strings.HasPrefix(c.seen, "127.0.0.2:") {
		t.Fatalf("seen as %s", c.seen)
	}
	c.echo(t)
}

// TestTrustedProxyNotCappedPerAddress: a trusted proxy that sends no
// header (an HTTP reverse proxy) speaks for many clients; the per-address
// cap does not count its connections, but still counts everyone else's.
func TestTrustedProxyNotCappedPerAddress(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) {
		l.TrustedProxies = trusted
		l.MaxConnectionsPerAddress = 1
	})
	for i := 0; i < 3; i++ {
		s.mustDial(t, proxy, nil).echo(t)
	}
	s.mustDial(t, direct, nil).echo(t)
	c, err := s.dial(t, direct, nil)
	refused(t, c, err)
}

// TestSilentTrustedPeer: a trusted peer that sends nothing holds only its
// own connection; Accept goes on and others are served at once.
func TestSilentTrustedPeer(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) {
		l.TrustedProxies = trusted
		l.ProxyHeaderTimeout = testwait.Hang
	})
	var silent []net.Conn
	for range 3 {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(proxy, 0))}
		c, err := d.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
	}
	testwait.For(t, "the silent connections accepted", func() bool { return s.ln.Stats().Open == 3 })
	s.mustDial(t, direct, nil).echo(t)
	s.mustDial(t, proxy, proxyHeader(t, 2, "127.0.9.9:1")).echo(t)
	for _, c := range silent {
		c.Close()
	}
	testwait.For(t, "the silent connections closed", func() bool { return s.ln.Stats().Open == 2 })
}

// TestRefusalsLoggedRateLimited: a flood of refused connections writes one
// line per interval, which counts them.
func TestRefusalsLoggedRateLimited(t *testing.T) {
	s := newServer(t, func(l *connlimit.Listener) {
		l.MaxConnections = 1
		l.LogInterval = time.Hour
	})
	s.mustDial(t, direct, nil)
	for range 5 {
		c, err := s.dial(t, direct, nil)
		refused(t, c, err)
	}
	if n := strings.Count(s.logs.String(), `msg="connections refused"`); n != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", n, s.logs)
	}
	if got := s.ln.Stats().Refused[connlimit.ReasonMaxConnections]; got != 5 {
		t.Fatalf("refused = %d", got)
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	n := connlimit.DefaultMaxConnections()
	if n <= 0 {
		t.Skip("no file limit on this machine")
	}
	if n < 64 {
		t.Fatalf("DefaultMaxConnections = %d", n)
	}
}
