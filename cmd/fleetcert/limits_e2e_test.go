package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// dialFrom opens a TCP connection to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: testwait.Hang}
	return d.Dial("tcp", addr)
}

// idleHealthz sends GET /healthz on c and reads the answer, leaving the
// connection open and idle (keep-alive); it reports whether it was served.
func idleHealthz(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(testwait.Hang))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: fleetcert\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// An attacker holding idle connections to the API from one address holds
// at most the per-address cap: the rest are closed at once, and another
// address's API call and a device's handshake go through.
func TestAPIConnectionLimits(t *testing.T) {
	s, mqttAddr, caFile := startGatewayServer(t, "--api-max-connections-per-address", "4")
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	served := 0
	for i := 0; i < 40; i++ {
		c, err := dialFrom(t, "127.0.0.2", s.addr)
		if err != nil {
			continue
		}
		held = append(held, c)
		if idleHealthz(c) {
			served++
		}
	}
	if served != 4 {
		t.Fatalf("%d idle connections from one address were served, want the cap of 4", served)
	}
	// Another address: an API call.
	register(t, s.defaultClient(), testpki.Leaf(t).PEM, "")
	// A device's handshake.
	cert, _ := registerDevice(t, s.defaultClient(), types.CertificateStatusActive)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: testwait.Hang}, "tcp", mqttAddr, &tls.Config{
		RootCAs: roots, ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}},
	})
	if err != nil {
		t.Fatalf("device handshake while the API is flooded: %v", err)
	}
	conn.Close()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `fleetcert_api_connections_limited_total{reason="max_connections_per_address"} 36`) {
		t.Errorf("metrics do not count the 36 refused connections:\n%s", b)
	}
}

// Behind a TLS-terminating proxy named by --trusted-proxy, the console's
// cookies are Secure; the same headers from anyone else change nothing.
func TestTrustedProxy(t *testing.T) {
	s := &server{t: t, dataDir: t.TempDir(), args: []string{"--trusted-proxy", "127.0.0.2"}}
	s.start()
	t.Cleanup(s.stop)
	get := func(from string) *http.Response {
		t.Helper()
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialFrom(t, from, addr)
		}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, s.url+"/console/signin", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range get("127.0.0.2").Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s behind the trusted TLS proxy is not Secure", c.Name)
		}
	}
	for _, c := range get("127.0.0.3").Cookies() {
		if c.Secure {
			t.Errorf("cookie %s is Secure on the word of an untrusted peer", c.Name)
		}
	}
}

// --throttle applies per account: over its rate an account's calls answer
// ThrottlingException (400, as the model says), and another account's
// calls go through.
func TestThrottle(t *testing.T) {
	s := &server{t: t, dataDir: t.TempDir(), args: []string{"--throttle", "DescribeCertificate=0.01/2"}, env: []string{
		"FLEETCERT_ACCESS_KEY_ID=" + testKeyID, "FLEETCERT_SECRET_ACCESS_KEY=" + testSecret, "FLEETCERT_ACCOUNT_ID=" + testAccount,
	}}
	s.start()
	t.Cleanup(s.stop)
	c := s.defaultClient()
	id := register(t, c, testpki.Leaf(t).PEM, "")
	describe(t, c, id)
	describe(t, c, id)
	_, err := c.DescribeCertificate(context.Background(), &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	wantError(t, err, "ThrottlingException", 400)
	other := s.secondAccount(t, "444455556666")
	otherID := register(t, other, testpki.Leaf(t).PEM, "")
	describe(t, other, otherID)
}
