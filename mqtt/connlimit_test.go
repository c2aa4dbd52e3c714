package mqtt_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// Loopback addresses only: 127.0.0.2 stands for a trusted load balancer,
// 127.0.0.1 for devices connecting directly; the device addresses a
// balancer reports are written in PROXY headers only.
var (
	deviceAddr  = netip.MustParseAddr("127.0.0.1")
	balancer    = netip.MustParseAddr("127.0.0.2")
	balancerNet = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
)

func proxyV2(t *testing.T, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:8883")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMaxConnections: at the cap, a new connection is closed at once;
// the devices connected keep working, and once one leaves another gets in.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) { gw.MaxConnections = 2 })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	a := e.mustDial(c, dialOptions{clientID: "cap-a"})
	b := e.mustDial(c, dialOptions{clientID: "cap-b"})
	if _, err := e.dial(c, dialOptions{clientID: "cap-c"}); err == nil {
		t.Fatal("a third connection admitted")
	}
	if got := e.metric(`fleetcert_mqtt_connections_limited_total{reason="max_connections"}`); got != 1 {
		t.Fatalf("connections limited = %d", got)
	}
	a.mustPublish(t, "fleet/cap", 1, false, "still here")
	b.mustPublish(t, "fleet/cap", 1, false, "still here")
	a.Disconnect(100)
	testwait.For(t, "a place freed", func() bool { return e.metric("fleetcert_mqtt_connections_open") == 1 })
	e.mustDial(c, dialOptions{clientID: "cap-c"}).mustPublish(t, "fleet/cap", 1, false, "in")
}

func TestMaxConnectionsPerAddress(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) { gw.MaxConnectionsPerAddress = 1 })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	e.mustDial(c, dialOptions{})
	if _, err := e.dial(c, dialOptions{}); err == nil {
		t.Fatal("a second connection from 127.0.0.1 admitted")
	}
	if _, err := e.dialVia(c, "from-2", balancer, nil); err != nil {
		t.Fatalf("from another address: %v", err)
	}
	if got := e.metric(`fleetcert_mqtt_connections_limited_total{reason="max_connections_per_address"}`); got != 1 {
		t.Fatalf("connections limited = %d", got)
	}
}

// TestProxyProtocol: behind a trusted load balancer, the device's address
// is the one its PROXY v2 header gives, in Sessions, the logs and the
// per-address cap; a PROXY header from any other peer is refused.
func TestProxyProtocol(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.TrustedProxies = balancerNet
		gw.MaxConnectionsPerAddress = 1
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)

	t.Run("ok/address-from-trusted-proxy", func(t *testing.T) {
		if _, err := e.dialVia(c, "behind-lb", balancer, proxyV2(t, "127.0.9.9:4242")); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, "the session listed", func() bool { return len(e.gw.Sessions(scopeA)) == 1 })
		if s := e.gw.Sessions(scopeA)[0]; s.RemoteAddr != "127.0.9.9:4242" {
			t.Fatalf("session's address %s", s.RemoteAddr)
		}
		// The session is listed just before its connected line is written.
		testwait.For(t, "the connected line to give the device's address", func() bool {
			return strings.Contains(e.logs.String(), "clientId=behind-lb account="+accountA+" region="+region+" remote=127.0.9.9:4242")
		})
	})
	t.Run("ok/per-address-cap-on-the-device-address", func(t *testing.T) {
		if _, err := e.dialVia(c, "behind-lb-2", balancer, proxyV2(t, "127.0.9.10:4242")); err != nil {
			t.Fatalf("another device behind the balancer: %v", err)
		}
		if _, err := e.dialVia(c, "behind-lb-3", balancer, proxyV2(t, "127.0.9.9:4343")); err == nil {
			t.Fatal("a second connection of 127.0.9.9 admitted")
		}
	})
	t.Run("fail/proxy-header-from-untrusted-peer", func(t *testing.T) {
		if _, err := e.dialVia(c, "spoofer", deviceAddr, proxyV2(t, "127.0.9.11:4242")); err == nil {
			t.Fatal("admitted")
		}
		if got := e.metric(`fleetcert_mqtt_connections_limited_total{reason="proxy_header"}`); got != 1 {
			t.Fatalf("proxy_header refusals = %d", got)
		}
	})
}

// TestSilentTrustedPeer: a trusted peer that sends nothing holds up no one
// else.
func TestSilentTrustedPeer(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.TrustedProxies = balancerNet
		gw.HandshakeTimeout = testwait.Hang
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	for range 3 {
		e.dialFrom(t, balancer, nil)
	}
	testwait.For(t, "the silent connections accepted", func() bool { return e.metric("fleetcert_mqtt_connections_open") == 3 })
	e.mustDial(c, dialOptions{}).mustPublish(t, "fleet/x", 1, false, "through")
	if _, err := e.dialVia(c, "lb-device", balancer, proxyV2(t, "127.0.9.9:1")); err != nil {
		t.Fatal(err)
	}
}

// TestConnectTimeout: a connection that completes the TLS handshake and
// sends no CONNECT is closed after ConnectTimeout, long before the
// handshake's own timeout.
func TestConnectTimeout(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.HandshakeTimeout = testwait.Hang
		gw.ConnectTimeout = 100 * time.Millisecond
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	conn := e.rawTLS(t, c, "", nil)
	conn.SetReadDeadline(time.Now().Add(testwait.Hang / 4))
	_, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("still open after %s", testwait.Hang/4)
	}
	if err != nil {
		t.Fatalf("closed with %v", err)
	}
}
