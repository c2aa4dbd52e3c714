package mqtt_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
	"github.com/fleetcert/fleetcert/sqlite"
	"github.com/mochi-mqtt/server/v2/packets"
)

// benchGateway starts a gateway on a fresh store with devices ACTIVE
// certificates, each onboarded as thing bench-{i} with the thing-name
// policy (thingPolicy), or with device policies off.
//
// The last device's certificate also gets openPolicy, for a backend
// connection that is not a thing (client id "backend").
func benchGateway(b *testing.B, devices int, policiesOff bool) (addr string, roots *x509.CertPool, certs []tls.Certificate) {
	dir := b.TempDir()
	db := sqlite.NewDB(filepath.Join(dir, "fleetcert.db"))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	reg := fleetcert.NewRegistry(db, nil)
	files, err := mqtt.LoadOrCreateServerFiles(dir, nil, region, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	ctx := context.Background()
	for name, doc := range map[string]string{"thing": thingPolicy, "open": openPolicy} {
		if _, err := reg.CreatePolicy(ctx, scopeA, name, doc, nil); err != nil {
			b.Fatal(err)
		}
	}
	certs = make([]tls.Certificate, devices)
	for i := range certs {
		c := testpki.Leaf(b)
		cert, err := reg.RegisterCertificateWithoutCA(ctx, scopeA, c.PEM, fleetcert.StatusActive)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprint("bench-", i)
		if _, err := reg.CreateThing(ctx, scopeA, fleetcert.CreateThingInput{Name: name}); err != nil {
			b.Fatal(err)
		}
		if err := reg.AttachThingPrincipal(ctx, scopeA, name, cert.ARN(), fleetcert.ExclusiveThing); err != nil {
			b.Fatal(err)
		}
		if err := reg.AttachPolicy(ctx, scopeA, "thing", cert.ARN()); err != nil {
			b.Fatal(err)
		}
		if i == devices-1 {
			if err := reg.AttachPolicy(ctx, scopeA, "open", cert.ARN()); err != nil {
				b.Fatal(err)
			}
		}
		certs[i] = tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}
	}
	gw := mqtt.NewGateway(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	gw.Addr = "127.0.0.1:0"
	gw.CertFile, gw.KeyFile = files.CertFile, files.KeyFile
	gw.Region = region
	gw.DefaultAccountID = scopeA.AccountID
	gw.MaxConnectionsPerAddress = -1
	gw.MaxPublishesPerSecond = -1
	gw.DevicePoliciesOff = policiesOff
	if err := gw.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gw.Close() })
	return gw.ListenAddr(), roots, certs
}

// benchDial connects device i as thing bench-{i} (MQTT 3.1.1).
func benchDial(b *testing.B, addr string, roots *x509.CertPool, cert tls.Certificate, clientID string) *tls.Conn {
	c, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
	})
	if err != nil {
		b.Error(err)
		return nil
	}
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, byte(len(clientID) >> 8), byte(len(clientID))}
	pk := append([]byte{0x10, byte(len(vh) + len(clientID))}, append(vh, clientID...)...)
	var ack [4]byte
	if _, err := c.Write(pk); err != nil {
		b.Error(err)
	} else if _, err := io.ReadFull(c, ack[:]); err != nil {
		b.Error(err)
	} else if ack[3] != 0 {
		b.Errorf("CONNACK return code %d", ack[3])
	}
	return c
}

// BenchmarkConnect measures the connect rate of registered ACTIVE devices
// (the admission view's path): a TLS 1.3 handshake with a client
// certificate, CONNECT, CONNACK, close, over loopback, in parallel; each
// device connects as its thing under AWS's thing-name policy, or with
// device policies off.
//
//	go test -run '^$' -bench Connect -benchtime 2000x ./mqtt/
func BenchmarkConnect(b *testing.B) {
	for _, off := range []bool{false, true} {
		name := "thing-policy"
		if off {
			name = "policies-off"
		}
		b.Run(name, func(b *testing.B) {
			const devices = 64
			addr, roots, certs := benchGateway(b, devices, off)
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1)) % devices
					if c := benchDial(b, addr, roots, certs[i], fmt.Sprint("bench-", i)); c != nil {
						c.Close()
					}
				}
			})
		})
	}
}

// BenchmarkPublish measures one device's QoS 1 publishes, each waiting for
// its PUBACK, to a topic under its thing's name, delivered to a backend
// connection subscribed to every thing's data: with policies, each message
// costs an iot:Publish check and an iot:Receive check.
//
//	go test -run '^$' -bench Publish -benchtime 20000x ./mqtt/
func BenchmarkPublish(b *testing.B) {
	for _, off := range []bool{false, true} {
		name := "thing-policy"
		if off {
			name = "policies-off"
		}
		b.Run(name, func(b *testing.B) {
			addr, roots, certs := benchGateway(b, 2, off)
			sub := benchDial(b, addr, roots, certs[1], "backend")
			filter := "things/+/data"
			pk := append([]byte{0x82, byte(2 + 2 + len(filter) + 1), 0, 1, 0, byte(len(filter))}, filter...)
			pk = append(pk, 1)
			var suback [5]byte
			if _, err := sub.Write(pk); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(sub, suback[:]); err != nil || suback[4] != 1 {
				b.Fatalf("SUBACK %x %v", suback, err)
			}
			// The backend reads its deliveries and acknowledges them.
			var delivered atomic.Int64
			go func() {
				r := bufio.NewReader(sub)
				for {
					h, err := r.ReadByte()
					if err != nil {
						return
					}
					l, _, err := packets.DecodeLength(r)
					if err != nil {
						return
					}
					body := make([]byte, l)
					if _, err := io.ReadFull(r, body); err != nil {
						return
					}
					if h>>4 == packets.Publish {
						delivered.Add(1)
						tl := int(body[0])<<8 | int(body[1])
						id := body[2+tl : 4+tl]
						sub.Write([]byte{0x40, 2, id[0], id[1]})
					}
				}
			}()
			pub := benchDial(b, addr, roots, certs[0], "bench-0")
			topic := "things/bench-0/data"
			payload := []byte(`{"temperature": 21.5}`)
			var ack [4]byte
			b.ResetTimer()
			for i := range b.N {
				id := uint16(i%65535 + 1)
				body := append([]byte{0, byte(len(topic))}, topic...)
				body = append(body, byte(id>>8), byte(id))
				body = append(body, payload...)
				if _, err := pub.Write(append([]byte{0x32, byte(len(body))}, body...)); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(pub, ack[:]); err != nil || ack[0] != 0x40 {
					b.Fatalf("PUBACK %x %v", ack, err)
				}
			}
			// Every message delivered, too: the time is end to end.
			for deadline := time.Now().Add(testwait.Hang); delivered.Load() < int64(b.N); {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d messages delivered to the backend", delivered.Load(), b.N)
				}
				runtime.Gosched()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			pub.Close()
			sub.Close()
		})
	}
}
