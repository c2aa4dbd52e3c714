package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session, the given
// keepalive (seconds; 0 disables it) and client id.
func connectPacket(clientID string, keepalive uint16) []byte {
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, byte(keepalive >> 8), byte(keepalive)}
	payload := append([]byte{byte(len(clientID) >> 8), byte(len(clientID))}, clientID...)
	rem := len(vh) + len(payload)
	b := []byte{0x10}
	for {
		d := byte(rem % 128)
		rem /= 128
		if rem > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if rem == 0 {
			break
		}
	}
	return append(append(b, vh...), payload...)
}

var disconnectPacket = []byte{0xe0, 0x00}

// clientConfig is the device's TLS configuration: its certificate, the
// broker's CA, no session resumption (every connection is a full
// handshake).
func clientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cfg, err := serverRoots(caFile, serverName)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// serverRoots is a device's TLS configuration without its certificate:
// the broker's CA and name.
func serverRoots(caFile, serverName string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// dialMQTT opens a TLS connection, sends CONNECT and reads a successful
// CONNACK, all within timeout.
func dialMQTT(addr string, cfg *tls.Config, clientID string, keepalive uint16, timeout time.Duration) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	c.SetDeadline(time.Now().Add(timeout))
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if _, err := c.Write(connectPacket(clientID, keepalive)); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("connack refused: % x", ack)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
