package mqtt_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
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

// Closing the gateway ends every connection, and does not wait for a
// device to leave: not for one that finished its handshake and never sent
// CONNECT, nor for one whose CONNECT (keepalive 0: no deadline from
// mochi) arrives once the gateway has begun to close.
func TestCloseEndsConnectionsBeforeConnect(t *testing.T) {
	e := newEnv(t)
	gw := e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.HandshakeTimeout = testwait.Hang
		gw.ConnectTimeout = testwait.Hang
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	silent := e.rawTLS(t, c, "", nil)
	late := e.rawTLS(t, c, "", nil)

	closed := closeGateway(gw)
	testwait.For(t, "the listener to close", func() bool {
		conn, err := net.Dial("tcp", gw.ListenAddr())
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 0, ClientIdentifier: "late"}}
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	late.Write(buf.Bytes()) // fails if the connection is already closed

	closed(t, "connections that never became sessions")
	for name, conn := range map[string]net.Conn{"silent": silent, "late": late} {
		conn.SetReadDeadline(time.Now().Add(testwait.Hang / 4))
		if _, err := io.ReadAll(conn); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s connection still open after Close", name)
		}
	}
}

// Closing the gateway does not wait for a device that stopped reading
// while messages were on their way to it: its DISCONNECT cannot be
// written, and the connection is closed after the grace.
func TestCloseDoesNotWaitForADeviceThatDoesNotRead(t *testing.T) {
	e := newEnv(t)
	gw := e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.MaxInboundBytesPerSecond = -1
		gw.MaxPublishesPerSecond = -1
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	stuck := &raw{t: t, version: 5}
	stuck.c = e.rawTLS(t, c, "", nil)
	stuck.r = bufio.NewReader(stuck.c)
	stuck.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 0, ClientIdentifier: "stuck"}})
	if ack, err := stuck.read(); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v, %v", ack.ReasonCode, err)
	}
	stuck.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "stuck/#"}}})
	if ack, err := stuck.read(); err != nil || ack.FixedHeader.Type != packets.Suback {
		t.Fatalf("SUBACK: %v, %v", ack.FixedHeader.Type, err)
	}
	// stuck reads no more. 30 MB of messages to it: more than its
	// socket's buffers and mochi's queue of 128 writes hold.
	pub, _ := e.connectRaw(t, c, "", "publisher", 5)
	payload := bytes.Repeat([]byte("x"), 100_000)
	for range 300 {
		pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "stuck/t", Payload: payload})
	}

	closeGateway(gw)(t, "a device that does not read")
}

// closeGateway closes gw on another goroutine; the function it returns
// waits for Close to return, and fails t when it still waits, for what,
// after a quarter of testwait.Hang.
func closeGateway(gw *mqtt.Gateway) func(t *testing.T, what string) {
	closed := make(chan error, 1)
	go func() { closed <- gw.Close() }()
	return func(t *testing.T, what string) {
		t.Helper()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(testwait.Hang / 4):
			t.Fatalf("Close still waits after %s for %s", testwait.Hang/4, what)
		}
	}
}
