package fleetcert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/sqlite"
)

// TestJobLoad measures a bulk revocation on the embedded store. It runs
// only when FLEETCERT_JOB_LOAD is set to the number of certificates to
// seed under one CA (through the Store, in batches of 10,000), and
// FLEETCERT_JOB_LOAD_SIGNED to the number of certificates signed by the
// CA but registered without it (real signatures, for the discovery):
//
//	FLEETCERT_JOB_LOAD=100000 FLEETCERT_JOB_LOAD_SIGNED=10000 \
//	  go test -run TestJobLoad -v -timeout 30m .
//
// It reports the seeding, the signature-verified discovery on its own
// (certificates per second), the job (certificates per second), and the
// time an admission view (the gateway's) takes to apply the job's changes.
// loadPEM stands in for a device certificate's PEM: its size (an ECDSA
// P-256 certificate is about 700 bytes of PEM) is most of a row.
var loadPEM = "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(strings.Repeat("A", 64)+"\n", 10) + "-----END CERTIFICATE-----\n"

func TestJobLoad(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLEETCERT_JOB_LOAD"))
	if n <= 0 {
		t.Skip("set FLEETCERT_JOB_LOAD=N to seed N certificates under one CA and time a revocation job")
	}
	nSigned, _ := strconv.Atoi(os.Getenv("FLEETCERT_JOB_LOAD_SIGNED"))
	ctx := context.Background()
	dir := t.TempDir()
	if d := os.Getenv("FLEETCERT_JOB_LOAD_DIR"); d != "" {
		dir = d
	}
	db := sqlite.NewDB(filepath.Join(dir, "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := fleetcert.NewRegistry(db, nil)
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Load CA"})
	ca, err := reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	must(t, err)

	start := time.Now()
	now := time.Now().UTC().Truncate(time.Millisecond)
	const seedBatch = 10000
	for done := 0; done < n; {
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			for i := 0; i < seedBatch && done+i < n; i++ {
				sum := sha256.Sum256([]byte(fmt.Sprintf("load-%d", done+i)))
				c := &fleetcert.Certificate{Scope: scope, ID: hex.EncodeToString(sum[:]), CACertificateID: ca.ID,
					Status: fleetcert.StatusActive, PEM: loadPEM,
					Mode: fleetcert.ModeSNIOnly, OwnedBy: scope.AccountID, CreationDate: now, LastModifiedDate: now,
					CustomerVersion: 1, GenerationID: "load", NotBefore: now.Add(-time.Hour).Truncate(time.Second),
					NotAfter: now.AddDate(1, 0, 0).Truncate(time.Second), Issuer: caCert.Cert.RawSubject,
					AuthorityKeyID: caCert.Cert.SubjectKeyId, Serial: sum[:16], CommonName: "load"}
				if err := tx.CreateCertificate(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
		must(t, err)
		done += seedBatch
	}
	seeded := time.Since(start)
	t.Logf("seeded %d certificates under the CA in %v (%.0f/s)", n, seeded.Round(time.Millisecond), float64(n)/seeded.Seconds())

	if nSigned > 0 {
		start = time.Now()
		leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		for i := 0; i < nSigned; i++ {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(1_000_000 + i)), Subject: pkix.Name{CommonName: "signed"},
				NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), AuthorityKeyId: caCert.Cert.SubjectKeyId}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert.Cert, &leafKey.PublicKey, caCert.Key)
			must(t, err)
			_, err = reg.RegisterCertificateWithoutCA(ctx, scope, fleetcert.EncodeCertificatePEM(der), fleetcert.StatusActive)
			must(t, err)
		}
		t.Logf("registered %d certificates signed by the CA without it in %v", nSigned, time.Since(start).Round(time.Millisecond))

		// The discovery alone, on a Registry whose signature cache is empty.
		fresh := fleetcert.NewRegistry(db, nil)
		start = time.Now()
		found, size := 0, fleetcert.MaxPageSize
		for marker := ""; ; {
			p, err := fresh.ListCertificatesSignedBy(ctx, scope, ca.ID, fleetcert.ListOptions{PageSize: &size, Marker: marker, Ascending: true})
			must(t, err)
			found += len(p.Certificates)
			if marker = p.NextMarker; marker == "" {
				break
			}
		}
		took := time.Since(start)
		if found != nSigned {
			t.Fatalf("discovery found %d, want %d", found, nSigned)
		}
		t.Logf("discovery: %d certificates found by signature in %v: %.0f certificates/s", found, took.Round(time.Millisecond), float64(found)/took.Seconds())
	}

	head, err := reg.ChangesHead(ctx)
	must(t, err)
	jobReg := fleetcert.NewRegistry(db, nil) // cold signature cache, as a job on another node
	jr := quietRunner(jobReg, loadBatch())
	start, cpu := time.Now(), cpuTime()
	j, err := jr.Start(ctx, scope, fleetcert.JobInput{CACertificateID: ca.ID, Action: fleetcert.StatusRevoked, StartedBy: "load test"})
	must(t, err)
	j, err = jr.RunJob(ctx, scope, j.ID)
	must(t, err)
	took := time.Since(start)
	total := n + nSigned
	if j.Status != fleetcert.JobCompleted || j.Progress.Changed != int64(total) {
		t.Fatalf("job = %+v, want %d changed", j, total)
	}
	t.Logf("job: %d certificates revoked in %v: %.0f certificates/s (process CPU time %v)", total, took.Round(time.Millisecond),
		float64(total)/took.Seconds(), (cpuTime() - cpu).Round(time.Millisecond))

	// The gateway's watcher: an admission view applying the job's changes.
	view := reg.NewAdmissionView()
	_, err = view.Load(ctx)
	must(t, err)
	start = time.Now()
	applied := 0
	for after := head; ; {
		chs, err := reg.Changes(ctx, after, 1000)
		must(t, err)
		for i := range chs {
			must(t, view.Apply(ctx, &chs[i]))
			after = chs[i].Seq
		}
		applied += len(chs)
		if len(chs) < 1000 {
			break
		}
	}
	t.Logf("admission view: %d changes read and applied in %v", applied, time.Since(start).Round(time.Millisecond))
}

// cpuTime is the CPU time the process used so far (user and system): on a
// busy machine, how much of a wall-clock figure was this process's work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadBatch is FLEETCERT_JOB_LOAD_BATCH, else the default batch size.
func loadBatch() int {
	if n, _ := strconv.Atoi(os.Getenv("FLEETCERT_JOB_LOAD_BATCH")); n > 0 {
		return n
	}
	return fleetcert.DefaultJobBatchSize
}
