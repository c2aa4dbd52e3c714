package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// secondAccount creates a key for another account with the CLI, as an
// operator would, and returns a client signing with it.
func (s *server) secondAccount(t *testing.T, accountID string) *iot.Client {
	t.Helper()
	out, err := exec.Command(binary, "keys", "create", "--data-dir", s.dataDir, "--account-id", accountID).Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	var key struct{ AccessKeyID, SecretAccessKey string }
	if err := json.Unmarshal(out, &key); err != nil {
		t.Fatal(err)
	}
	return s.client(key.AccessKeyID, key.SecretAccessKey, testRegion)
}

func registrationCode(t *testing.T, c *iot.Client) string {
	t.Helper()
	out, err := c.GetRegistrationCode(context.Background(), &iot.GetRegistrationCodeInput{})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.RegistrationCode)
}

func TestCAProofOfPossession(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	code := registrationCode(t, c)
	if len(code) != 64 || registrationCode(t, c) != code {
		t.Fatalf("registration code %q is not stable", code)
	}
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Acme Devices CA"})
	other := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Acme Devices CA"})
	notCA := testpki.Leaf(t)
	register := func(caPEM, verification string) error {
		_, err := c.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{
			CaCertificate: aws.String(caPEM), VerificationCertificate: aws.String(verification), SetAsActive: true,
		})
		return err
	}
	t.Run("fail/wrong-code", func(t *testing.T) {
		err := register(ca.PEM, testpki.New(t, testpki.Options{Parent: ca, CommonName: "not-the-code"}).PEM)
		wantError(t, err, "RegistrationCodeValidationException", 400)
	})
	t.Run("fail/verification-signed-by-another-key", func(t *testing.T) {
		err := register(ca.PEM, testpki.New(t, testpki.Options{Parent: other, CommonName: code}).PEM)
		wantError(t, err, "CertificateValidationException", 400)
	})
	t.Run("fail/not-a-ca", func(t *testing.T) {
		err := register(notCA.PEM, testpki.New(t, testpki.Options{Parent: notCA, CommonName: code}).PEM)
		wantError(t, err, "CertificateValidationException", 400)
	})
	t.Run("fail/code-deleted", func(t *testing.T) {
		if _, err := c.DeleteRegistrationCode(ctx, &iot.DeleteRegistrationCodeInput{}); err != nil {
			t.Fatal(err)
		}
		err := register(ca.PEM, testpki.New(t, testpki.Options{Parent: ca, CommonName: code}).PEM)
		wantError(t, err, "RegistrationCodeValidationException", 400)
	})
	l, err := c.ListCACertificates(ctx, &iot.ListCACertificatesInput{})
	if err != nil || len(l.Certificates) != 0 {
		t.Fatalf("refused CAs were stored: %v %v", l, err)
	}

	code = registrationCode(t, c)
	if err := register(ca.PEM, testpki.New(t, testpki.Options{Parent: ca, CommonName: code}).PEM); err != nil {
		t.Fatal(err)
	}
	l, _ = c.ListCACertificates(ctx, &iot.ListCACertificatesInput{})
	if len(l.Certificates) != 1 || l.Certificates[0].Status != types.CACertificateStatusActive {
		t.Fatalf("CA list: %+v", l.Certificates)
	}
	id := aws.ToString(l.Certificates[0].CertificateId)
	d, err := c.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	cd := d.CertificateDescription
	if cd.CertificateMode != types.CertificateModeDefault || cd.AutoRegistrationStatus != types.AutoRegistrationStatusDisable ||
		aws.ToString(cd.OwnedBy) != testAccount || aws.ToInt32(cd.CustomerVersion) != 1 || cd.Validity == nil {
		t.Fatalf("CA description: %+v", cd)
	}
	_, err = c.DeleteCACertificate(ctx, &iot.DeleteCACertificateInput{CertificateId: aws.String(id)})
	wantError(t, err, "CertificateStateException", 406)
	_, err = c.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(id), NewStatus: "REVOKED"})
	wantError(t, err, "InvalidRequestException", 400)

	// SNI_ONLY: the same CA in a second account, without proof.
	b := s.secondAccount(t, "444455556666")
	_, err = b.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{CaCertificate: aws.String(ca.PEM), CertificateMode: types.CertificateModeSniOnly})
	if err != nil {
		t.Fatalf("SNI_ONLY in account B: %v", err)
	}
	_, err = b.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRegisterUnderCAAndDeactivateCA(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Line 3 CA"})
	code := registrationCode(t, c)
	reg, err := c.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{
		CaCertificate: aws.String(ca.PEM), VerificationCertificate: aws.String(testpki.New(t, testpki.Options{Parent: ca, CommonName: code}).PEM),
		SetAsActive: true, AllowAutoRegistration: true,
		RegistrationConfig: &types.RegistrationConfig{TemplateBody: aws.String(`{"Resources":{}}`), RoleArn: aws.String("arn:aws:iam::111122223333:role/JITP")},
	})
	if err != nil {
		t.Fatal(err)
	}
	caID := aws.ToString(reg.CertificateId)
	var ids []string
	for i := 0; i < 3; i++ {
		out, err := c.RegisterCertificate(ctx, &iot.RegisterCertificateInput{
			CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM), Status: types.CertificateStatusActive,
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.CertificateId))
	}
	register(t, c, testpki.Leaf(t).PEM, "") // not under the CA
	d := describe(t, c, ids[0])
	if aws.ToString(d.CaCertificateId) != caID || d.CertificateMode != types.CertificateModeDefault {
		t.Fatalf("certificate under CA: %+v", d)
	}
	byCA, err := c.ListCertificatesByCA(ctx, &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(caID), PageSize: aws.Int32(2)})
	if err != nil || len(byCA.Certificates) != 2 || byCA.NextMarker == nil {
		t.Fatalf("by CA page 1: %v %v", byCA, err)
	}
	rest, err := c.ListCertificatesByCA(ctx, &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(caID), PageSize: aws.Int32(2), Marker: byCA.NextMarker})
	if err != nil || len(rest.Certificates) != 1 || rest.NextMarker != nil {
		t.Fatalf("by CA page 2: %v %v", rest, err)
	}

	// Deactivate the CA: new registrations refused, issued certificates unchanged.
	if _, err := c.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: types.CACertificateStatusInactive, NewAutoRegistrationStatus: types.AutoRegistrationStatusDisable}); err != nil {
		t.Fatal(err)
	}
	_, err = c.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM)})
	wantError(t, err, "CertificateStateException", 406)
	for _, id := range ids {
		if describe(t, c, id).Status != types.CertificateStatusActive {
			t.Fatal("deactivating the CA changed a certificate it issued")
		}
	}
	dca, _ := c.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
	if dca.CertificateDescription.Status != types.CACertificateStatusInactive || dca.CertificateDescription.AutoRegistrationStatus != types.AutoRegistrationStatusDisable ||
		dca.RegistrationConfig == nil || aws.ToString(dca.RegistrationConfig.RoleArn) == "" {
		t.Fatalf("CA after update: %+v %+v", dca.CertificateDescription, dca.RegistrationConfig)
	}
	// Unregistered CA.
	stranger := testpki.New(t, testpki.Options{IsCA: true})
	_, err = c.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: stranger}).PEM)})
	wantError(t, err, "CertificateValidationException", 400)
	if _, err := c.DeleteCACertificate(ctx, &iot.DeleteCACertificateInput{CertificateId: aws.String(caID)}); err != nil {
		t.Fatal(err)
	}
}

func TestTransferCycle(t *testing.T) {
	s := startServer(t)
	a := s.defaultClient()
	b := s.secondAccount(t, "444455556666")
	ctx := context.Background()
	transfer := func(id, msg string) error {
		_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(id), TargetAwsAccount: aws.String("444455556666"), TransferMessage: aws.String(msg)})
		return err
	}

	id := register(t, a, testpki.Leaf(t).PEM, types.CertificateStatusActive)
	wantError(t, transfer(id, "x"), "CertificateStateException", 406)
	if _, err := a.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusInactive}); err != nil {
		t.Fatal(err)
	}
	if err := transfer(id, "for you"); err != nil {
		t.Fatal(err)
	}
	_, err := a.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusActive})
	wantError(t, err, "CertificateStateException", 406)
	out, err := a.ListOutgoingCertificates(ctx, &iot.ListOutgoingCertificatesInput{})
	if err != nil || len(out.OutgoingCertificates) != 1 || aws.ToString(out.OutgoingCertificates[0].TransferredTo) != "444455556666" ||
		aws.ToString(out.OutgoingCertificates[0].TransferMessage) != "for you" || out.OutgoingCertificates[0].TransferDate == nil {
		t.Fatalf("outgoing: %+v %v", out, err)
	}
	// The target sees it in ListCertificates as PENDING_TRANSFER.
	lb, _ := b.ListCertificates(ctx, &iot.ListCertificatesInput{})
	if len(lb.Certificates) != 1 || lb.Certificates[0].Status != types.CertificateStatusPendingTransfer {
		t.Fatalf("target's list: %+v", lb.Certificates)
	}
	if _, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(id), SetAsActive: true}); err != nil {
		t.Fatal(err)
	}
	db := describe(t, b, id)
	if db.Status != types.CertificateStatusActive || aws.ToString(db.OwnedBy) != "444455556666" || aws.ToString(db.PreviousOwnedBy) != testAccount ||
		db.TransferData == nil || db.TransferData.AcceptDate == nil {
		t.Fatalf("after accept: %+v", db)
	}
	_, err = a.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	wantError(t, err, "ResourceNotFoundException", 404)
	_, err = b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(id)})
	wantError(t, err, "TransferAlreadyCompletedException", 410)
	_, err = a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(id)})
	wantError(t, err, "TransferAlreadyCompletedException", 410)

	// Reject returns it to the owner, INACTIVE, with the reason.
	id2 := register(t, a, testpki.Leaf(t).PEM, "")
	if err := transfer(id2, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RejectCertificateTransfer(ctx, &iot.RejectCertificateTransferInput{CertificateId: aws.String(id2), RejectReason: aws.String("unknown device")}); err != nil {
		t.Fatal(err)
	}
	da := describe(t, a, id2)
	if da.Status != types.CertificateStatusInactive || da.TransferData == nil || aws.ToString(da.TransferData.RejectReason) != "unknown device" || da.TransferData.RejectDate == nil {
		t.Fatalf("after reject: %+v %+v", da, da.TransferData)
	}
	// Cancel by the owner.
	if err := transfer(id2, "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(id2)}); err != nil {
		t.Fatal(err)
	}
	if describe(t, a, id2).Status != types.CertificateStatusInactive {
		t.Fatal("cancelled transfer not INACTIVE")
	}
	_, err = b.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id2)})
	wantError(t, err, "ResourceNotFoundException", 404)

	// A certificate registered under a CA cannot be transferred.
	ca := testpki.New(t, testpki.Options{IsCA: true})
	if _, err := a.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{CaCertificate: aws.String(ca.PEM), CertificateMode: types.CertificateModeSniOnly, SetAsActive: true}); err != nil {
		t.Fatal(err)
	}
	under, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM), CaCertificatePem: aws.String(ca.PEM)})
	if err != nil {
		t.Fatal(err)
	}
	err = transfer(aws.ToString(under.CertificateId), "")
	var se *types.CertificateStateException
	if !errors.As(err, &se) {
		t.Fatalf("transfer of a CA-registered certificate: %v", err)
	}
}
