package awsapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// TestJobs: the extension routes start, describe, list and cancel bulk
// jobs, with AWS's error JSON, and another account's job does not exist.
func TestJobs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	scopeA := fleetcert.Scope{AccountID: accountA, Region: testRegion}
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Jobs CA"})
	ca, err := e.Registry.RegisterCACertificate(ctx, scopeA, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		c, err := e.Registry.RegisterCertificate(ctx, scopeA, fleetcert.RegisterCertificateInput{
			CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert, CommonName: "d"}).PEM, Status: fleetcert.StatusActive})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	do := func(key *fleetcert.AccessKey, method, target, body string) *http.Response {
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		return e.Do(e.Request(key, testRegion, method, target, b, time.Now()))
	}
	type job struct {
		JobID    string `json:"jobId"`
		Status   string `json:"status"`
		Action   string `json:"action"`
		Progress struct {
			Processed, Changed int
		} `json:"progress"`
	}
	decode := func(resp *http.Response) job {
		t.Helper()
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %+v", resp.StatusCode, readError(t, resp))
		}
		var j job
		if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
			t.Fatal(err)
		}
		return j
	}

	for _, tc := range []struct {
		name, body, code string
		status           int
	}{
		{"fail/no-ca", `{"action":"REVOKED"}`, fleetcert.EInvalidRequest, 400},
		{"fail/no-action", `{"caCertificateId":"` + ca.ID + `"}`, fleetcert.EInvalidRequest, 400},
		{"fail/action-active", `{"caCertificateId":"` + ca.ID + `","action":"ACTIVE"}`, fleetcert.EInvalidRequest, 400},
		{"fail/unknown-ca", `{"caCertificateId":"` + ids[0] + `","action":"REVOKED"}`, fleetcert.EResourceNotFound, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := readError(t, do(e.KeyA, "POST", "/fleetcert/jobs", tc.body))
			if w.Status != tc.status || w.Code != tc.code {
				t.Fatalf("%d %s (%s), want %d %s", w.Status, w.Code, w.Message, tc.status, tc.code)
			}
		})
	}
	// Another account cannot start a job on A's CA: it does not exist.
	if w := readError(t, do(e.KeyB, "POST", "/fleetcert/jobs", `{"caCertificateId":"`+ca.ID+`","action":"REVOKED"}`)); w.Status != 404 {
		t.Fatalf("B starting a job on A's CA: %d %s", w.Status, w.Code)
	}

	j := decode(do(e.KeyA, "POST", "/fleetcert/jobs", `{"caCertificateId":"`+ca.ID+`","action":"INACTIVE"}`))
	if j.Status != "IN_PROGRESS" || j.Action != "INACTIVE" || len(j.JobID) != 20 {
		t.Fatalf("started %+v", j)
	}
	w := readError(t, do(e.KeyA, "POST", "/fleetcert/jobs", `{"caCertificateId":"`+ca.ID+`","action":"REVOKED"}`))
	if w.Status != http.StatusConflict || w.Code != fleetcert.EResourceAlreadyExists || w.ResourceID != j.JobID {
		t.Fatalf("second job: %+v, want 409 naming %s", w, j.JobID)
	}
	if w := readError(t, do(e.KeyB, "GET", "/fleetcert/jobs/"+j.JobID, "")); w.Status != 404 || w.Code != fleetcert.EResourceNotFound {
		t.Fatalf("B describing A's job: %+v", w)
	}
	if w := readError(t, do(e.KeyB, "POST", "/fleetcert/jobs/"+j.JobID+"/cancel", "")); w.Status != 404 {
		t.Fatalf("B canceling A's job: %+v", w)
	}

	// Run it here (fleetcert serve's runner would).
	runner := fleetcert.NewJobRunner(e.Registry, nil)
	if _, err := runner.RunJob(ctx, scopeA, j.JobID); err != nil {
		t.Fatal(err)
	}
	got := decode(do(e.KeyA, "GET", "/fleetcert/jobs/"+j.JobID, ""))
	if got.Status != "COMPLETED" || got.Progress.Changed != 3 || got.Progress.Processed != 3 {
		t.Fatalf("described %+v, want COMPLETED with 3 changed", got)
	}
	if w := readError(t, do(e.KeyA, "POST", "/fleetcert/jobs/"+j.JobID+"/cancel", "")); w.Status != 400 || w.Code != fleetcert.EInvalidRequest {
		t.Fatalf("canceling a completed job: %+v", w)
	}

	j2 := decode(do(e.KeyA, "POST", "/fleetcert/jobs", `{"caCertificateId":"`+ca.ID+`","action":"REVOKED"}`))
	if c := decode(do(e.KeyA, "POST", "/fleetcert/jobs/"+j2.JobID+"/cancel", "")); c.Status != "CANCELED" {
		t.Fatalf("canceled %+v", c)
	}

	resp := do(e.KeyA, "GET", "/fleetcert/jobs?pageSize=1", "")
	var page struct {
		Jobs      []job  `json:"jobs"`
		NextToken string `json:"nextToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != j.JobID || page.NextToken == "" {
		t.Fatalf("ListJobs page 1: %+v, %v", page, err)
	}
	resp.Body.Close()
	resp = do(e.KeyB, "GET", "/fleetcert/jobs", "")
	page.Jobs = nil
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Jobs) != 0 {
		t.Fatalf("B's ListJobs: %+v, %v", page, err)
	}
	resp.Body.Close()
	if w := readError(t, do(e.KeyA, "GET", "/fleetcert/jobs/not-a-job", "")); w.Status != 400 {
		t.Fatalf("malformed job id: %+v", w)
	}
}
