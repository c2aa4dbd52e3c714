package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

// cliJob is a job as fleetcert jobs and certificates revoke print it.
type cliJob struct {
	JobID     string `json:"jobId"`
	Status    string `json:"status"`
	Phase     string `json:"phase"`
	Processed int    `json:"processed"`
	Changed   int    `json:"changed"`
	Signed    int    `json:"signed"`
	Owner     string `json:"owner"`
}

func jobLines(t *testing.T, out string) []cliJob {
	t.Helper()
	var jobs []cliJob
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var j cliJob
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("job line %q: %v", line, err)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// TestBulkJobCommands: `fleetcert certificates deactivate --ca` runs a job
// to its end in the CLI process, covering the certificates registered
// under the CA and those signed by it registered without it; `fleetcert
// jobs` lists it. Then `certificates revoke --ca` is killed (SIGKILL) in
// the middle of its job: the running server takes the job over once the
// CLI's lease lapses and finishes it from the cursor, every certificate
// changed exactly once.
func TestBulkJobCommands(t *testing.T) {
	ctx := context.Background()
	s := startServer(t)
	c := s.defaultClient()
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Bulk CA"})
	ca, err := c.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{CaCertificate: aws.String(caCert.PEM),
		CertificateMode: types.CertificateModeSniOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	caID := aws.ToString(ca.CertificateId)
	var signed []string
	for range 2 {
		out, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
			CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: caCert, CommonName: "loose"}).PEM), Status: types.CertificateStatusActive})
		if err != nil {
			t.Fatal(err)
		}
		signed = append(signed, aws.ToString(out.CertificateId))
	}
	// Many certificates under the CA, written through the store beside the
	// running server (as keys create does), so that a job of batches of one
	// runs long enough to be killed in its middle.
	const n = 3000
	seedUnderCA(t, filepath.Join(s.dataDir, "fleetcert.db"), caID, caCert, n)
	total := n + len(signed)

	store := []string{"--data-dir", s.dataDir, "--account-id", testAccount, "--region", testRegion}
	code, out, errOut := runFleetcert(t, nil, append([]string{"certificates", "deactivate", "--ca", caID, "--batch-size", "500"}, store...)...)
	if code != 0 {
		t.Fatalf("certificates deactivate: exit %d: %s", code, errOut)
	}
	lines := jobLines(t, out)
	last := lines[len(lines)-1]
	if last.Status != "COMPLETED" || last.Changed != total || last.Signed != len(signed) {
		t.Fatalf("deactivate ended %+v, want COMPLETED with %d changed, %d signed", last, total, len(signed))
	}
	d, err := c.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(signed[0])})
	if err != nil || d.CertificateDescription.Status != types.CertificateStatusInactive {
		t.Fatalf("a certificate signed by the CA after the job: %v, %v", d, err)
	}
	code, out, errOut = runFleetcert(t, nil, append([]string{"jobs"}, store...)...)
	if listed := jobLines(t, out); code != 0 || len(listed) != 1 || listed[0].JobID != last.JobID || listed[0].Status != "COMPLETED" {
		t.Fatalf("fleetcert jobs: exit %d %v %s", code, listed, errOut)
	}
	code, _, errOut = runFleetcert(t, nil, append([]string{"certificates", "revoke", "--ca", "00"}, store...)...)
	if code == 0 || !strings.Contains(errOut, "caCertificateId") {
		t.Fatalf("revoke of a malformed CA id: exit %d: %s", code, errOut)
	}

	// Revoke, one certificate per batch, killed once it has made progress.
	cli := exec.Command(binary, append([]string{"certificates", "revoke", "--ca", caID, "--batch-size", "1", "--job-lease", "2s"}, store...)...)
	cli.Env = os.Environ()
	cliOut, cliErr := &testwait.Buffer{}, &testwait.Buffer{}
	cli.Stdout, cli.Stderr = cliOut, cliErr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()
	// Killed as soon as it prints progress (its first line is the job's
	// start): a run of another command per look (fleetcert jobs) left the
	// job time to finish.
	var seen cliJob
	testwait.For(t, "the revoke job to make progress", func() bool {
		out := cliOut.String()
		end := strings.LastIndexByte(out, '\n')
		if end < 0 {
			return false
		}
		lines := jobLines(t, out[:end])
		seen = lines[len(lines)-1]
		return seen.Processed > 0
	})
	cli.Process.Kill()
	<-exited
	jobID := seen.JobID
	_, out, _ = runFleetcert(t, nil, append([]string{"jobs"}, store...)...)
	for _, j := range jobLines(t, out) {
		if j.JobID == jobID && (j.Status != "IN_PROGRESS" || j.Processed >= total) {
			t.Fatalf("the job ended before it could be killed: %+v", j)
		}
	}

	var done cliJob
	testwait.For(t, "the server to take the job over and finish it", func() bool {
		_, out, _ := runFleetcert(t, nil, append([]string{"jobs"}, store...)...)
		for _, j := range jobLines(t, out) {
			if j.JobID == jobID {
				done = j
			}
		}
		return done.Status == "COMPLETED"
	})
	if done.Processed != total || done.Changed != total || done.Signed != len(signed) {
		t.Fatalf("job after the takeover: %+v, want each of %d certificates changed once", done, total)
	}
	// The server's log lines reach its stderr within a millisecond
	// (internal/logwriter), not necessarily before the job's end is read.
	testwait.For(t, "the server to say it took the job over", func() bool {
		return strings.Contains(s.stderr.String(), "taking over a job whose lease lapsed")
	})
	for _, id := range signed {
		d, err := c.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil || d.CertificateDescription.Status != types.CertificateStatusRevoked {
			t.Fatalf("certificate %s after the job: %v, %v", id[:8], d, err)
		}
	}
}

// seedUnderCA registers n certificates under CA caID of the test account
// through the store at path.
func seedUnderCA(t *testing.T, path, caID string, caCert *testpki.Cert, n int) {
	t.Helper()
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	scope := fleetcert.Scope{AccountID: testAccount, Region: testRegion}
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := db.Update(context.Background(), func(tx fleetcert.Tx) error {
		for i := range n {
			sum := sha256.Sum256([]byte(fmt.Sprintf("bulk-%d", i)))
			c := &fleetcert.Certificate{Scope: scope, ID: hex.EncodeToString(sum[:]), CACertificateID: caID,
				Status: fleetcert.StatusActive, PEM: "-----BEGIN CERTIFICATE-----\nseeded\n-----END CERTIFICATE-----\n",
				Mode: fleetcert.ModeSNIOnly, OwnedBy: testAccount, CreationDate: now, LastModifiedDate: now,
				CustomerVersion: 1, GenerationID: "seeded", NotBefore: now.Add(-time.Hour).Truncate(time.Second),
				NotAfter: now.AddDate(1, 0, 0).Truncate(time.Second), Issuer: caCert.Cert.RawSubject,
				AuthorityKeyID: caCert.Cert.SubjectKeyId, Serial: sum[:16], CommonName: "seeded"}
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
}
