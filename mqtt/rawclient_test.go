package mqtt_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// startGatewayWith starts another gateway on e's registry, configured by
// configure before Start, and makes it e's gateway.
func (e *env) startGatewayWith(configure func(*mqtt.Gateway)) *mqtt.Gateway {
	e.gw = e.launchGateway(configure)
	return e.gw
}

// metric returns the value of the metric line that begins with name (and
// its labels), 0 when there is none.
func (e *env) metric(name string) int {
	for _, line := range strings.Split(e.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

func (e *env) quotaCount(quota string) int {
	return e.metric(fmt.Sprintf("fleetcert_mqtt_quota_exceeded_total{quota=%q}", quota))
}

// raw is an MQTT client that speaks packet by packet, to see the reason
// codes a library would hide.
type raw struct {
	t       *testing.T
	c       net.Conn
	r       *bufio.Reader
	version byte
	nextID  uint16
}

// rawTLS opens a TLS connection to the gateway with cert, through conn
// when not nil.
func (e *env) rawTLS(t *testing.T, cert *testpki.Cert, serverName string, conn net.Conn) *tls.Conn {
	t.Helper()
	if serverName == "" {
		serverName = "127.0.0.1"
	}
	cfg := &tls.Config{RootCAs: e.roots, ServerName: serverName,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}}}
	if conn == nil {
		var err error
		if conn, err = net.Dial("tcp", e.gw.ListenAddr()); err != nil {
			t.Fatal(err)
		}
	}
	c := tls.Client(conn, cfg)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(testwait.Deadline())
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c
}

// connectRaw connects over MQTT version (4 or 5) and returns the client
// and the CONNACK.
func (e *env) connectRaw(t *testing.T, cert *testpki.Cert, serverName, clientID string, version byte) (*raw, packets.Packet) {
	t.Helper()
	c := e.rawTLS(t, cert, serverName, nil)
	r := &raw{t: t, c: c, r: bufio.NewReader(c), version: version}
	name := "MQTT"
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte(name), Clean: true,
			Keepalive: 30, ClientIdentifier: clientID}})
	ack, err := r.read()
	if err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return r, ack
}

func (r *raw) send(pk packets.Packet) {
	r.t.Helper()
	pk.ProtocolVersion = r.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	default:
		r.t.Fatalf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.c.Write(buf.Bytes()); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// read reads the next packet.
func (r *raw) read() (packets.Packet, error) {
	pk := packets.Packet{ProtocolVersion: r.version}
	b, err := r.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(r.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// readType reads packets until one of type typ.
func (r *raw) readType(typ byte) packets.Packet {
	r.t.Helper()
	for {
		pk, err := r.read()
		if err != nil {
			r.t.Fatalf("waiting for packet type %d: %v", typ, err)
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

func (r *raw) id() uint16 {
	r.nextID++
	return r.nextID
}

// subscribe subscribes to filters at QoS 1 in one SUBSCRIBE and returns the
// SUBACK's reason codes.
func (r *raw) subscribe(filters ...string) []byte {
	r.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: r.id()}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	r.send(pk)
	return r.readType(packets.Suback).ReasonCodes
}

// publish publishes at QoS 1 and returns the PUBACK's reason code.
func (r *raw) publish(topic string, payload []byte, retain bool) byte {
	r.t.Helper()
	r.publishAsync(topic, payload, retain)
	return r.readType(packets.Puback).ReasonCode
}

func (r *raw) publishAsync(topic string, payload []byte, retain bool) {
	r.t.Helper()
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
		TopicName: topic, Payload: payload, PacketID: r.id()})
}

// waitClosed waits for the gateway to close the connection, reading (and
// dropping) what it sends first.
func (r *raw) waitClosed() error {
	r.t.Helper()
	for {
		if _, err := r.read(); err != nil {
			return err
		}
	}
}

// dialFrom returns a TCP connection to the gateway from the loopback
// address from, which first sends header when not nil.
func (e *env) dialFrom(t *testing.T, from netip.Addr, header []byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
	c, err := d.Dial("tcp", e.gw.ListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if header != nil {
		if _, err := c.Write(header); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// dialVia connects a paho device like dial, over a TCP connection from
// the loopback address from that first sends header when not nil.
func (e *env) dialVia(cert *testpki.Cert, clientID string, from netip.Addr, header []byte) (*device, error) {
	t := e.t
	t.Helper()
	tlsCert := tls.Certificate{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}
	d := &device{lost: make(chan error, 1), messages: make(chan paho.Message, 100)}
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + e.gw.ListenAddr()).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(testwait.Hang).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.messages <- m }).
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			dd := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
			c, err := dd.Dial("tcp", e.gw.ListenAddr())
			if err != nil {
				return nil, err
			}
			if header != nil {
				if _, err := c.Write(header); err != nil {
					c.Close()
					return nil, err
				}
			}
			tc := tls.Client(c, &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{tlsCert}})
			tc.SetDeadline(testwait.Deadline())
			if err := tc.Handshake(); err != nil {
				c.Close()
				return nil, err
			}
			tc.SetDeadline(time.Time{})
			return tc, nil
		})
	d.Client = paho.NewClient(opts)
	tok := d.Connect()
	if !tok.WaitTimeout(testwait.Hang) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.Disconnect(0) })
	return d, nil
}
