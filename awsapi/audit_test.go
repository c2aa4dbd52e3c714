package awsapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/aws/smithy-go"
	"github.com/fleetcert/fleetcert"
)

// TestAuditSignedRequest: a signed request's access key id, its account
// and the client's address land in the audit entry of what it changed;
// a refused request leaves none.
func TestAuditSignedRequest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	client := e.Client(e.KeyA, testRegion)
	pemText, _, id := selfSignedPEM(t, "device")
	if _, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pemText),
		Status: types.CertificateStatusActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id),
		NewStatus: types.CertificateStatusRevoked}); err != nil {
		t.Fatal(err)
	}
	// Another account's key: not found, nothing changed, nothing logged.
	var ae smithy.APIError
	_, err := e.Client(e.KeyB, testRegion).UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id),
		NewStatus: types.CertificateStatusInactive})
	if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceNotFoundException" {
		t.Fatalf("account B updating A's certificate: %v", err)
	}
	// A bad signature: refused before any operation runs.
	r := e.Request(e.KeyA, testRegion, "DELETE", "/certificates/"+id, nil, time.Now())
	r.Header.Set("Authorization", r.Header.Get("Authorization")[:len(r.Header.Get("Authorization"))-4]+"0000")
	if resp := e.Do(r); resp.StatusCode != 403 {
		t.Fatalf("badly signed delete: %d", resp.StatusCode)
	}

	entries, _, err := e.Registry.Audit(ctx, fleetcert.AuditQuery{CertificateID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d audit entries, want 2: %+v", len(entries), entries)
	}
	for i, want := range []struct {
		op       string
		old, new fleetcert.Status
	}{
		{"RegisterCertificateWithoutCA", "", fleetcert.StatusActive},
		{"UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked},
	} {
		got := entries[i]
		if got.Operation != want.op || got.OldStatus != want.old || got.NewStatus != want.new ||
			got.Actor != e.KeyA.ID || got.ActorAccount != accountA || got.SourceIP != "127.0.0.1" ||
			got.Scope != (fleetcert.Scope{AccountID: accountA, Region: testRegion}) {
			t.Errorf("entry %d: %+v, want %s %s → %s by %s (%s) from 127.0.0.1", i, got, want.op, want.old, want.new, e.KeyA.ID, accountA)
		}
	}
}
