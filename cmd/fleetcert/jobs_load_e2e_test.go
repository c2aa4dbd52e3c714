package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/sqlite"
)

// TestJobDevicesLoad measures the compromised-CA day end to end: fleetcert
// serve with FLEETCERT_JOB_DEVICES devices of one CA connected to its
// gateway over mutual TLS, and FLEETCERT_JOB_DEVICES_SEED more certificates
// under the CA (seeded through the store, as TestJobLoad does); a revoke
// job on the CA started with `fleetcert certificates revoke --detach`, so
// that the server runs it; DescribeCertificate called throughout by
// FLEETCERT_JOB_DEVICES_READERS clients, whose latencies are reported;
// and every device connection closed by the gateway by the end.
// FLEETCERT_JOB_DEVICES_SERVE_ARGS adds flags to the server's (e.g.
// "--pprof-addr 127.0.0.1:16061" to profile it during the job). It runs
// only when FLEETCERT_JOB_DEVICES is set:
//
//	FLEETCERT_JOB_DEVICES=10000 FLEETCERT_JOB_DEVICES_SEED=90000 \
//	  go test -run TestJobDevicesLoad -v -timeout 30m ./cmd/fleetcert/
//
// Each side holds one file descriptor per device: ulimit -n must allow it.
func TestJobDevicesLoad(t *testing.T) {
	devices, _ := strconv.Atoi(os.Getenv("FLEETCERT_JOB_DEVICES"))
	if devices <= 0 {
		t.Skip("set FLEETCERT_JOB_DEVICES=N to connect N devices of a CA and time its revocation job")
	}
	seed, _ := strconv.Atoi(os.Getenv("FLEETCERT_JOB_DEVICES_SEED"))
	readers := 2
	if n, _ := strconv.Atoi(os.Getenv("FLEETCERT_JOB_DEVICES_READERS")); n > 0 {
		readers = n
	}
	const (
		concurrency = 16               // dialers
		bound       = 20 * time.Minute // for every phase: connecting, the job, the drops
	)
	ctx := context.Background()
	s, mqttAddr, caFile := startGatewayServer(t, append([]string{"--device-policies", "off"},
		strings.Fields(os.Getenv("FLEETCERT_JOB_DEVICES_SERVE_ARGS"))...)...)
	c := s.defaultClient()
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Compromised CA"})
	ca, err := c.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{CaCertificate: aws.String(caCert.PEM),
		CertificateMode: types.CertificateModeSniOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	caID := aws.ToString(ca.CertificateId)

	// The devices' certificates, signed by the CA (one key for all: the
	// signatures are what cost), registered under it through the store.
	start := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certs := make([]*testpki.Cert, devices)
	for i := range certs {
		certs[i] = testpki.New(t, testpki.Options{Parent: caCert, Key: key, CommonName: fmt.Sprintf("device-%d", i)})
	}
	db := sqlite.NewDB(filepath.Join(s.dataDir, "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seedDevices(t, db, caID, caCert, certs, seed)
	t.Logf("%d device certificates and %d more under the CA seeded in %v", devices, seed, time.Since(start).Round(time.Millisecond))

	// Connect them all, 16 at a time, each with its own certificate.
	roots := x509.NewCertPool()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pemBytes)
	conns := make([]net.Conn, devices)
	var (
		next, failed atomic.Int64
		firstErr     atomic.Value
		wg           sync.WaitGroup
	)
	start = time.Now()
	deadline := start.Add(bound)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(devices) {
					return
				}
				cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
					Certificates: []tls.Certificate{{Certificate: [][]byte{certs[i].Cert.Raw}, PrivateKey: key, Leaf: certs[i].Cert}}}
				conn, err := connectDevice(mqttAddr, cfg, fmt.Sprintf("device-%d", i))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d devices failed to connect; the first: %v", n, devices, firstErr.Load())
	}
	t.Logf("%d devices connected in %v", devices, time.Since(start).Round(time.Millisecond))

	// Each connection is watched for the gateway closing it.
	var open atomic.Int64
	open.Store(int64(devices))
	var lastClose atomic.Int64 // Unix nanoseconds
	for _, conn := range conns {
		go func() {
			conn.SetReadDeadline(time.Now().Add(2 * bound))
			io.Copy(io.Discard, conn) // until the gateway closes it (or the deadline)
			lastClose.Store(time.Now().UnixNano())
			open.Add(-1)
		}()
	}
	t.Cleanup(func() {
		for _, conn := range conns {
			conn.Close()
		}
	})

	// DescribeCertificate throughout, on certificates of the CA.
	stopReads := make(chan struct{})
	var (
		readsMu   sync.Mutex
		latencies []time.Duration
		readErrs  atomic.Int64
		readWG    sync.WaitGroup
	)
	for r := range readers {
		readWG.Add(1)
		go func() {
			defer readWG.Done()
			var mine []time.Duration
			defer func() {
				readsMu.Lock()
				latencies = append(latencies, mine...)
				readsMu.Unlock()
			}()
			for i := r; ; i += readers {
				select {
				case <-stopReads:
					return
				default:
				}
				id := certificateIDOf(certs[i%devices])
				t0 := time.Now()
				_, err := c.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
				mine = append(mine, time.Since(t0))
				if err != nil {
					readErrs.Add(1)
				}
			}
		}()
	}

	pid := s.cmd.Process.Pid
	cpu0 := processCPU(t, pid)
	start = time.Now()
	store := []string{"--data-dir", s.dataDir, "--account-id", testAccount, "--region", testRegion}
	code, out, errOut := runFleetcert(t, nil, append([]string{"certificates", "revoke", "--ca", caID, "--detach"}, store...)...)
	if code != 0 {
		t.Fatalf("certificates revoke --detach: exit %d: %s", code, errOut)
	}
	jobID := jobLines(t, out)[0].JobID
	reg := fleetcert.NewRegistry(db, nil)
	scope := fleetcert.Scope{AccountID: testAccount, Region: testRegion}
	var job *fleetcert.Job
	for deadline := time.Now().Add(bound); ; time.Sleep(50 * time.Millisecond) {
		if job, err = reg.Job(ctx, scope, jobID); err != nil {
			t.Fatal(err)
		}
		if job.Finished() || time.Now().After(deadline) {
			break
		}
	}
	jobDone := time.Now()
	close(stopReads)
	readWG.Wait()
	if job.Status != fleetcert.JobCompleted || job.Progress.Changed != int64(devices+seed) {
		t.Fatalf("job = %s %+v, want COMPLETED with %d changed", job.Status, job.Progress, devices+seed)
	}
	cpu := processCPU(t, pid) - cpu0
	for deadline := time.Now().Add(bound); open.Load() > 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if n := open.Load(); n > 0 {
		t.Fatalf("%d of %d device connections still open %v after the job ended", n, devices, time.Since(jobDone).Round(time.Millisecond))
	}
	total := devices + seed
	ran := job.CompletedAt.Sub(job.CreatedAt)
	t.Logf("job: %d certificates revoked in %v by the job's record (%v from the command to COMPLETED seen): %.0f certificates/s; "+
		"server CPU time %v (%.1f µs per certificate)", total, ran.Round(time.Millisecond), jobDone.Sub(start).Round(time.Millisecond),
		float64(total)/ran.Seconds(), cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(total))
	last := time.Unix(0, lastClose.Load())
	t.Logf("devices: all %d connections closed by %v after the command; the last %v after the job's end (negative: before it)", devices,
		last.Sub(start).Round(time.Millisecond), last.Sub(job.CompletedAt).Round(time.Millisecond))
	slices.Sort(latencies)
	if len(latencies) == 0 {
		t.Fatal("no DescribeCertificate call completed during the job")
	}
	q := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	t.Logf("DescribeCertificate during the job (%d clients): %d calls, %d errors, p50 %v, p99 %v, max %v", readers, len(latencies),
		readErrs.Load(), q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), latencies[len(latencies)-1].Round(10*time.Microsecond))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s", strings.TrimSpace(string(load)))
	}
}

// seedDevices registers certs, and seed placeholder certificates, under CA
// caID of the test account through db, with their changes (so the running
// server's gateway learns of them), 10,000 per transaction. The devices'
// are spread evenly among the placeholders, so that the job drops devices
// from its first batch to its last.
func seedDevices(t *testing.T, db *sqlite.DB, caID string, caCert *testpki.Cert, certs []*testpki.Cert, seed int) {
	t.Helper()
	scope := fleetcert.Scope{AccountID: testAccount, Region: testRegion}
	now := time.Now().UTC().Truncate(time.Millisecond)
	total := len(certs) + seed
	stride := total / max(1, len(certs))
	device := 0
	for done := 0; done < total; {
		err := db.Update(context.Background(), func(tx fleetcert.Tx) error {
			for i := done; i < total && i < done+10_000; i++ {
				c := &fleetcert.Certificate{Scope: scope, CACertificateID: caID, Status: fleetcert.StatusActive,
					Mode: fleetcert.ModeSNIOnly, OwnedBy: testAccount, CreationDate: now, LastModifiedDate: now,
					CustomerVersion: 1, GenerationID: "seeded", Issuer: caCert.Cert.RawSubject, AuthorityKeyID: caCert.Cert.SubjectKeyId}
				if i%stride == 0 && device < len(certs) {
					d := certs[device]
					device++
					c.ID, c.PEM, c.NotBefore, c.NotAfter = certificateIDOf(d), d.PEM, d.Cert.NotBefore.UTC(), d.Cert.NotAfter.UTC()
					c.Serial, c.CommonName = d.Cert.SerialNumber.Bytes(), d.Cert.Subject.CommonName
				} else {
					sum := sha256.Sum256([]byte(fmt.Sprintf("placeholder-%d", i)))
					c.ID, c.PEM = hex.EncodeToString(sum[:]), "-----BEGIN CERTIFICATE-----\nseeded\n-----END CERTIFICATE-----\n"
					c.NotBefore, c.NotAfter = now.Add(-time.Hour).Truncate(time.Second), now.AddDate(1, 0, 0).Truncate(time.Second)
					c.Serial, c.CommonName = sum[:16], "seeded"
				}
				if err := tx.CreateCertificate(context.Background(), c); err != nil {
					return err
				}
				if err := tx.AppendChange(context.Background(), &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated,
					Scope: scope, CertificateID: c.ID, NewStatus: c.Status, Time: now}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		done += 10_000
	}
}

// certificateIDOf is a certificate's id: the SHA-256 of its DER, in hex.
func certificateIDOf(c *testpki.Cert) string {
	sum := sha256.Sum256(c.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// connectDevice opens a TLS connection to the gateway and sends MQTT 3.1.1
// CONNECT (clean session, keepalive 0: the broker sets no deadline), and
// returns the connection once CONNACK accepts it.
func connectDevice(addr string, cfg *tls.Config, clientID string) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Minute}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	// Variable header: protocol name "MQTT", level 4, flags (clean
	// session), keepalive 0; payload: the client id.
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, byte(len(clientID) >> 8), byte(len(clientID))}
	body = append(body, clientID...)
	packet := append([]byte{0x10, byte(len(body))}, body...) // len(body) < 128
	if _, err := conn.Write(packet); err != nil {
		conn.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK %x: refused", ack)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// processCPU is process pid's CPU time (user and system) so far, from
// /proc/pid/stat.
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the line, in clock ticks (100 per second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}
