package mqtt_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/mqtt"
	"github.com/fleetcert/fleetcert/sqlite"
)

// BenchmarkConnect measures the connect rate of registered ACTIVE devices
// (the admission view's path): a TLS 1.3 handshake with a client
// certificate, CONNECT, CONNACK, close, over loopback, in parallel.
func BenchmarkConnect(b *testing.B) {
	dir := b.TempDir()
	db := sqlite.NewDB(filepath.Join(dir, "fleetcert.db"))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	reg := fleetcert.NewRegistry(db, nil)
	files, err := mqtt.LoadOrCreateServerFiles(dir, nil, region, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	const devices = 64
	certs := make([]tls.Certificate, devices)
	for i := range certs {
		c := testpki.Leaf(b)
		if _, err := reg.RegisterCertificateWithoutCA(context.Background(), scopeA, c.PEM, fleetcert.StatusActive); err != nil {
			b.Fatal(err)
		}
		certs[i] = tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}
	}
	gw := mqtt.NewGateway(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	gw.Addr = "127.0.0.1:0"
	gw.CertFile, gw.KeyFile = files.CertFile, files.KeyFile
	gw.Region = region
	gw.DefaultAccountID = scopeA.AccountID
	gw.MaxConnectionsPerAddress = -1
	if err := gw.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	addr := gw.ListenAddr()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			c, err := tls.Dial("tcp", addr, &tls.Config{
				RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
				Certificates: []tls.Certificate{certs[i%devices]},
			})
			if err != nil {
				b.Error(err)
				return
			}
			clientID := fmt.Sprint("bench-", i)
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
			c.Close()
		}
	})
}
