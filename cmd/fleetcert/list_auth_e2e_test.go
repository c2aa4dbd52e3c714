package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// listAll follows nextMarker to the end and returns the ids in order.
func listAll(t *testing.T, c *iot.Client, pageSize int32, ascending bool) []string {
	t.Helper()
	var ids []string
	in := &iot.ListCertificatesInput{PageSize: aws.Int32(pageSize), AscendingOrder: ascending}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		out, err := c.ListCertificates(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Certificates) > int(pageSize) {
			t.Fatalf("page of %d items for pageSize %d", len(out.Certificates), pageSize)
		}
		for _, ce := range out.Certificates {
			if ce.CertificateArn == nil || ce.CertificateMode == "" || ce.Status == "" || ce.CreationDate == nil {
				t.Fatalf("list item lacks members: %+v", ce)
			}
			ids = append(ids, aws.ToString(ce.CertificateId))
		}
		if out.NextMarker == nil {
			return ids
		}
		in.Marker = out.NextMarker
	}
}

func TestListCertificates(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	var registered []string
	for i := 0; i < 23; i++ {
		registered = append(registered, register(t, c, testpki.Leaf(t).PEM, ""))
	}

	asc := listAll(t, c, 5, true)
	if strings.Join(asc, ",") != strings.Join(registered, ",") {
		t.Fatalf("ascending order by creationDate:\n got %v\nwant %v", asc, registered)
	}
	desc := listAll(t, c, 4, false)
	for i := range desc {
		if desc[i] != registered[len(registered)-1-i] {
			t.Fatalf("default order must be newest first: got %v", desc)
		}
	}
	// Default page size 25 holds all 23 without a marker.
	out, err := c.ListCertificates(ctx, &iot.ListCertificatesInput{})
	if err != nil || len(out.Certificates) != 23 || out.NextMarker != nil {
		t.Fatalf("default page: %v %d %v", err, len(out.Certificates), out.NextMarker)
	}
	for _, size := range []int32{0, -1, 251} {
		_, err := c.ListCertificates(ctx, &iot.ListCertificatesInput{PageSize: aws.Int32(size)})
		wantError(t, err, "InvalidRequestException", 400)
	}
	_, err = c.ListCertificates(ctx, &iot.ListCertificatesInput{Marker: aws.String("bm90LWEtbWFya2Vy")})
	wantError(t, err, "InvalidRequestException", 400)
	out, err = c.ListCertificates(ctx, &iot.ListCertificatesInput{PageSize: aws.Int32(250)})
	if err != nil || len(out.Certificates) != 23 {
		t.Fatalf("pageSize 250: %v", err)
	}
}

// TestListStableUnderConcurrentInserts pages through the listing while
// other clients register certificates: every certificate that existed
// before the scan is seen exactly once.
func TestListStableUnderConcurrentInserts(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	before := map[string]bool{}
	for i := 0; i < 60; i++ {
		before[register(t, c, testpki.Leaf(t).PEM, "")] = true
	}
	for _, ascending := range []bool{true, false} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 40; i++ { // bounded
					select {
					case <-stop:
						return
					default:
					}
					register(t, c, testpki.Leaf(t).PEM, "")
				}
			}()
		}
		seen := map[string]int{}
		for _, id := range listAll(t, c, 7, ascending) {
			seen[id]++
		}
		close(stop)
		wg.Wait()
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("ascending=%v: %s listed %d times", ascending, id, n)
			}
		}
		for id := range before {
			if seen[id] != 1 {
				t.Fatalf("ascending=%v: existing certificate %s skipped", ascending, id)
			}
		}
	}
}

func TestAccountsAndRegions(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	a := s.defaultClient()
	leaf := testpki.Leaf(t)
	id := register(t, a, leaf.PEM, types.CertificateStatusActive)

	// A second account's key, created by the CLI while the server runs.
	out, err := exec.Command(binary, "keys", "create", "--data-dir", s.dataDir, "--account-id", "444455556666").Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	var key struct{ AccessKeyID, SecretAccessKey, AccountID string }
	if err := json.Unmarshal(out, &key); err != nil || key.AccountID != "444455556666" || !strings.HasPrefix(key.AccessKeyID, "AKIA") || len(key.SecretAccessKey) != 40 {
		t.Fatalf("keys create printed %q (%v)", out, err)
	}
	b := s.client(key.AccessKeyID, key.SecretAccessKey, testRegion)

	// The other account's records do not exist for it: 404, not 403.
	_, err = b.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	wantError(t, err, "ResourceNotFoundException", 404)
	_, err = b.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked})
	wantError(t, err, "ResourceNotFoundException", 404)
	_, err = b.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(id)})
	wantError(t, err, "ResourceNotFoundException", 404)
	if l, err := b.ListCertificates(ctx, &iot.ListCertificatesInput{}); err != nil || len(l.Certificates) != 0 {
		t.Fatalf("account B lists A's certificates: %v %v", l, err)
	}
	// The same certificate may be registered in the other account: its own
	// record, its own status and ARN.
	bid := register(t, b, leaf.PEM, "")
	if bid != id {
		t.Fatal("same certificate, different id")
	}
	db := describe(t, b, bid)
	if db.Status != types.CertificateStatusInactive || !strings.Contains(aws.ToString(db.CertificateArn), ":444455556666:cert/") || aws.ToString(db.OwnedBy) != "444455556666" {
		t.Fatalf("account B's record: %+v", db)
	}
	if describe(t, a, id).Status != types.CertificateStatusActive {
		t.Fatal("account A's record changed")
	}

	// Regions scope data too.
	east := s.client(testKeyID, testSecret, "us-east-1")
	_, err = east.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	wantError(t, err, "ResourceNotFoundException", 404)
	eid := register(t, east, leaf.PEM, "")
	if !strings.HasPrefix(aws.ToString(describe(t, east, eid).CertificateArn), "arn:aws:iot:us-east-1:"+testAccount+":cert/") {
		t.Fatal("region not in ARN")
	}
}

func TestAuthentication(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	good := s.defaultClient()
	id := register(t, good, testpki.Leaf(t).PEM, "")
	newStatus := func(c *iot.Client) error {
		_, err := c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked})
		return err
	}
	t.Run("fail/wrong-secret", func(t *testing.T) {
		err := newStatus(s.client(testKeyID, testSecret+"x", testRegion))
		if httpStatus(err) != 403 || errorCode(err) != "InvalidSignatureException" {
			t.Fatalf("got %d %s", httpStatus(err), errorCode(err))
		}
	})
	t.Run("fail/unknown-key", func(t *testing.T) {
		err := newStatus(s.client("AKIAUNKNOWNUNKNOWN00", testSecret, testRegion))
		if httpStatus(err) != 403 || errorCode(err) != "UnrecognizedClientException" {
			t.Fatalf("got %d %s", httpStatus(err), errorCode(err))
		}
	})
	url := "http://" + s.addr + "/certificates/" + id + "?newStatus=REVOKED"
	emptyHash := sha256.Sum256(nil)
	signed := func(at time.Time, secret string) *http.Request {
		req, _ := http.NewRequest(http.MethodPut, url, nil)
		err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: secret}, req,
			hex.EncodeToString(emptyHash[:]), "iot", testRegion, at)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	unsigned, _ := http.NewRequest(http.MethodPut, url, nil)
	tampered := signed(time.Now(), testSecret)
	tampered.URL.RawQuery = "newStatus=INACTIVE"
	for name, req := range map[string]*http.Request{
		"fail/unsigned":         unsigned,
		"fail/clock-16min-ago":  signed(time.Now().Add(-16*time.Minute), testSecret),
		"fail/clock-16min-late": signed(time.Now().Add(16*time.Minute), testSecret),
		"fail/tampered-query":   tampered,
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Message string }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-Errortype") == "" || body.Message == "" {
				t.Fatalf("got %d type=%q message=%q", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body.Message)
			}
		})
	}
	// Nothing changed.
	if describe(t, good, id).Status != types.CertificateStatusInactive {
		t.Fatal("an unauthenticated request changed the certificate")
	}
	// A correctly signed raw request, 10 minutes off, is accepted (inside
	// the 15-minute window).
	resp, err := http.DefaultClient.Do(signed(time.Now().Add(-10*time.Minute), testSecret))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed request 10 min old: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if describe(t, good, id).Status != types.CertificateStatusRevoked {
		t.Fatal("signed raw request had no effect")
	}
	// Secrets are never logged.
	if strings.Contains(s.stderr.String(), testSecret) {
		t.Fatal("the secret appears in the server log")
	}
}
