package main_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

func derID(t *testing.T, certPEM string) string {
	t.Helper()
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		t.Fatalf("not PEM: %q", certPEM)
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}

func register(t *testing.T, c *iot.Client, certPEM string, status types.CertificateStatus) string {
	t.Helper()
	out, err := c.RegisterCertificateWithoutCA(context.Background(), &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(certPEM), Status: status,
	})
	if err != nil {
		t.Fatalf("RegisterCertificateWithoutCA: %v", err)
	}
	return aws.ToString(out.CertificateId)
}

func describe(t *testing.T, c *iot.Client, id string) *types.CertificateDescription {
	t.Helper()
	out, err := c.DescribeCertificate(context.Background(), &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeCertificate %s: %v", id, err)
	}
	return out.CertificateDescription
}

func TestRegisterAndDescribe(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	leaf := testpki.Leaf(t)

	before := time.Now().Add(-time.Second)
	out, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(leaf.PEM)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.CertificateId)
	if want := derID(t, leaf.PEM); id != want {
		t.Fatalf("certificateId = %s, want SHA-256 of DER %s", id, want)
	}
	wantARN := "arn:aws:iot:" + testRegion + ":" + testAccount + ":cert/" + id
	if aws.ToString(out.CertificateArn) != wantARN {
		t.Fatalf("certificateArn = %s, want %s", aws.ToString(out.CertificateArn), wantARN)
	}

	d := describe(t, c, id)
	switch {
	case aws.ToString(d.CertificateArn) != wantARN, aws.ToString(d.CertificateId) != id:
		t.Fatalf("arn/id: %+v", d)
	case d.Status != types.CertificateStatusInactive:
		t.Fatalf("default status = %s, want INACTIVE", d.Status)
	case strings.TrimSpace(aws.ToString(d.CertificatePem)) != strings.TrimSpace(leaf.PEM):
		t.Fatalf("certificatePem differs")
	case aws.ToString(d.OwnedBy) != testAccount:
		t.Fatalf("ownedBy = %s", aws.ToString(d.OwnedBy))
	case d.PreviousOwnedBy != nil, d.CaCertificateId != nil, d.TransferData != nil:
		t.Fatalf("unexpected optional members: %+v", d)
	case d.CreationDate == nil || d.CreationDate.Before(before) || d.CreationDate.After(time.Now().Add(time.Second)):
		t.Fatalf("creationDate = %v", d.CreationDate)
	case d.LastModifiedDate == nil || !d.LastModifiedDate.Equal(*d.CreationDate):
		t.Fatalf("lastModifiedDate = %v, creationDate %v", d.LastModifiedDate, d.CreationDate)
	case aws.ToInt32(d.CustomerVersion) != 1:
		t.Fatalf("customerVersion = %d", aws.ToInt32(d.CustomerVersion))
	case aws.ToString(d.GenerationId) == "":
		t.Fatal("no generationId")
	case d.Validity == nil || !d.Validity.NotBefore.Equal(leaf.Cert.NotBefore) || !d.Validity.NotAfter.Equal(leaf.Cert.NotAfter):
		t.Fatalf("validity = %+v, want %v..%v", d.Validity, leaf.Cert.NotBefore, leaf.Cert.NotAfter)
	case d.CertificateMode != types.CertificateModeSniOnly:
		// AWS: a certificate registered without a CA is in SNI_ONLY mode.
		t.Fatalf("certificateMode = %s", d.CertificateMode)
	}

	// status at registration
	for _, st := range []types.CertificateStatus{types.CertificateStatusActive, types.CertificateStatusInactive, types.CertificateStatusRevoked} {
		id := register(t, c, testpki.Leaf(t).PEM, st)
		if got := describe(t, c, id).Status; got != st {
			t.Errorf("registered %s, described %s", st, got)
		}
	}
	for _, st := range []types.CertificateStatus{types.CertificateStatusPendingTransfer, types.CertificateStatusPendingActivation, "BOGUS"} {
		_, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(testpki.Leaf(t).PEM), Status: st})
		wantError(t, err, "InvalidRequestException", 400)
	}

	// duplicate in the same account: 409 naming the existing certificate
	_, err = c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(leaf.PEM), Status: types.CertificateStatusActive})
	wantError(t, err, "ResourceAlreadyExistsException", 409)
	var dup *types.ResourceAlreadyExistsException
	if !errors.As(err, &dup) || aws.ToString(dup.ResourceId) != id || aws.ToString(dup.ResourceArn) != wantARN {
		t.Fatalf("duplicate error does not name the certificate: %+v", dup)
	}
	if describe(t, c, id).Status != types.CertificateStatusInactive {
		t.Fatal("a refused duplicate changed the stored certificate")
	}
}

func TestRegisterValidation(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	leaf := testpki.Leaf(t)
	expired := testpki.New(t, testpki.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	tests := []struct {
		name, pem, code string
	}{
		{"fail/empty", "", "InvalidRequestException"},
		{"fail/too-long", leaf.PEM + strings.Repeat(" ", 65536), "InvalidRequestException"},
		{"fail/not-a-certificate", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "CertificateValidationException"},
		{"fail/garbage", "hello", "CertificateValidationException"},
		{"fail/trailing-garbage", leaf.PEM + "trailing", "CertificateValidationException"},
		{"fail/expired", expired.PEM, "CertificateValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(tt.pem)})
			wantError(t, err, tt.code, 400)
		})
	}
	// Nothing was stored by the refused requests.
	out, err := c.ListCertificates(ctx, &iot.ListCertificatesInput{})
	if err != nil || len(out.Certificates) != 0 {
		t.Fatalf("after refused registrations: %v, %d certificates", err, len(out.Certificates))
	}

	for _, tt := range []struct{ name, id, code string }{
		{"fail/short-id", "abc", "InvalidRequestException"},
		{"fail/non-hex-id", strings.Repeat("g", 64), "InvalidRequestException"},
		{"fail/unknown-id", strings.Repeat("0", 64), "ResourceNotFoundException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status := map[string]int{"InvalidRequestException": 400, "ResourceNotFoundException": 404}[tt.code]
			_, err := c.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(tt.id)})
			wantError(t, err, tt.code, status)
			_, err = c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(tt.id), NewStatus: types.CertificateStatusActive})
			wantError(t, err, tt.code, status)
			_, err = c.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(tt.id)})
			wantError(t, err, tt.code, status)
		})
	}
}

func TestUpdateCertificateStateMachine(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	update := func(id string, st types.CertificateStatus) error {
		_, err := c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: st})
		return err
	}

	id := register(t, c, testpki.Leaf(t).PEM, "")
	d0 := describe(t, c, id)
	time.Sleep(5 * time.Millisecond) // let the clock move past millisecond precision
	if err := update(id, types.CertificateStatusActive); err != nil {
		t.Fatal(err)
	}
	d1 := describe(t, c, id)
	if d1.Status != types.CertificateStatusActive ||
		!d1.LastModifiedDate.After(*d0.LastModifiedDate) ||
		aws.ToInt32(d1.CustomerVersion) != aws.ToInt32(d0.CustomerVersion)+1 ||
		aws.ToString(d1.GenerationId) == aws.ToString(d0.GenerationId) ||
		!d1.CreationDate.Equal(*d0.CreationDate) {
		t.Fatalf("after activation: before %+v after %+v", d0, d1)
	}

	// Setting the current status again succeeds and changes nothing.
	if err := update(id, types.CertificateStatusActive); err != nil {
		t.Fatal(err)
	}
	d2 := describe(t, c, id)
	if !d2.LastModifiedDate.Equal(*d1.LastModifiedDate) || aws.ToInt32(d2.CustomerVersion) != aws.ToInt32(d1.CustomerVersion) || aws.ToString(d2.GenerationId) != aws.ToString(d1.GenerationId) {
		t.Fatalf("idempotent update changed the certificate: %+v -> %+v", d1, d2)
	}

	// Refused targets, whatever the status.
	for _, st := range []types.CertificateStatus{types.CertificateStatusPendingTransfer, types.CertificateStatusPendingActivation, "NOT_A_STATUS"} {
		wantError(t, update(id, st), "InvalidRequestException", 400)
	}
	// Deleting an ACTIVE certificate is refused.
	_, err := c.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(id), ForceDelete: true})
	wantError(t, err, "CertificateStateException", 406)

	if err := update(id, types.CertificateStatusInactive); err != nil {
		t.Fatal(err)
	}
	if err := update(id, types.CertificateStatusActive); err != nil {
		t.Fatal(err)
	}
	if err := update(id, types.CertificateStatusRevoked); err != nil {
		t.Fatal(err)
	}
	// REVOKED is terminal.
	for _, st := range []types.CertificateStatus{types.CertificateStatusActive, types.CertificateStatusInactive, types.CertificateStatusRegisterInactive} {
		wantError(t, update(id, st), "CertificateStateException", 406)
	}
	if err := update(id, types.CertificateStatusRevoked); err != nil {
		t.Fatalf("revoking again must be an idempotent success: %v", err)
	}
	if describe(t, c, id).Status != types.CertificateStatusRevoked {
		t.Fatal("revoked certificate changed status")
	}

	// A certificate registered REVOKED can never be activated.
	rid := register(t, c, testpki.Leaf(t).PEM, types.CertificateStatusRevoked)
	wantError(t, update(rid, types.CertificateStatusActive), "CertificateStateException", 406)

	// Delete: revoked and inactive certificates go; then 404.
	for _, del := range []string{id, rid} {
		if _, err := c.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(del)}); err != nil {
			t.Fatalf("delete %s: %v", del, err)
		}
		_, err := c.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(del)})
		wantError(t, err, "ResourceNotFoundException", 404)
		_, err = c.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(del)})
		wantError(t, err, "ResourceNotFoundException", 404)
	}
	// A deleted certificate can be registered again.
	if err := update(id, types.CertificateStatusActive); err == nil {
		t.Fatal("a deleted certificate was updated")
	}
}

func TestCreateKeysAndCertificate(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	issuerPEM, err := os.ReadFile(filepath.Join(s.dataDir, "issuer-ca.pem"))
	if err != nil {
		t.Fatalf("issuing CA not created in the data dir: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(issuerPEM)

	for _, active := range []bool{false, true} {
		out, err := c.CreateKeysAndCertificate(ctx, &iot.CreateKeysAndCertificateInput{SetAsActive: active})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.CertificateId)
		if id != derID(t, aws.ToString(out.CertificatePem)) {
			t.Fatal("certificateId is not the SHA-256 of the certificate")
		}
		if out.KeyPair == nil || !strings.Contains(aws.ToString(out.KeyPair.PrivateKey), "PRIVATE KEY") || !strings.Contains(aws.ToString(out.KeyPair.PublicKey), "PUBLIC KEY") {
			t.Fatalf("keyPair = %+v", out.KeyPair)
		}
		b, _ := pem.Decode([]byte(aws.ToString(out.CertificatePem)))
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("certificate not signed by the issuing CA: %v", err)
		}
		kb, _ := pem.Decode([]byte(aws.ToString(out.KeyPair.PrivateKey)))
		key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
		if err != nil || key.N.BitLen() != 2048 || !key.PublicKey.Equal(cert.PublicKey) {
			t.Fatalf("private key does not match the certificate or is not RSA 2048: %v", err)
		}
		want := types.CertificateStatusInactive
		if active {
			want = types.CertificateStatusActive
		}
		d := describe(t, c, id)
		if d.Status != want || d.CertificateMode != types.CertificateModeDefault {
			t.Fatalf("status %s mode %s, want %s DEFAULT", d.Status, d.CertificateMode, want)
		}
	}

	// The issuing CA survives a restart: certificates issued later verify
	// against the same root.
	s.stop()
	s.start()
	c = s.defaultClient()
	csr, key := testpki.CSR(t, "thing-42")
	out, err := c.CreateCertificateFromCsr(ctx, &iot.CreateCertificateFromCsrInput{CertificateSigningRequest: aws.String(csr), SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode([]byte(aws.ToString(out.CertificatePem)))
	cert, _ := x509.ParseCertificate(b.Bytes)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("CSR certificate not signed by the same issuing CA after restart: %v", err)
	}
	if cert.Subject.CommonName != "thing-42" || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Fatalf("certificate does not carry the CSR's subject and key: %v", cert.Subject)
	}
	if describe(t, c, aws.ToString(out.CertificateId)).Status != types.CertificateStatusActive {
		t.Fatal("setAsActive ignored")
	}

	for _, bad := range []string{"", "not a csr", testpki.Leaf(t).PEM, csr[:len(csr)/2]} {
		_, err := c.CreateCertificateFromCsr(ctx, &iot.CreateCertificateFromCsrInput{CertificateSigningRequest: aws.String(bad)})
		wantError(t, err, "InvalidRequestException", 400)
	}
	// A CSR whose signature does not match its key.
	b, _ = pem.Decode([]byte(csr))
	der := append([]byte(nil), b.Bytes...)
	der[len(der)-3] ^= 0x55
	_, err = c.CreateCertificateFromCsr(ctx, &iot.CreateCertificateFromCsrInput{CertificateSigningRequest: aws.String(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))})
	wantError(t, err, "InvalidRequestException", 400)
}
