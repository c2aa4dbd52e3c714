package fleetcert_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

var otherAccount = fleetcert.Scope{AccountID: "210987654321", Region: scope.Region}

// registerCA registers ca in s (DEFAULT mode, with proof of possession)
// and returns its record.
func registerCA(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope, ca *testpki.Cert, in fleetcert.RegisterCAInput) *fleetcert.CACertificate {
	t.Helper()
	ctx := context.Background()
	in.CACertificatePEM = ca.PEM
	if in.Mode != fleetcert.ModeSNIOnly && in.VerificationCertificatePEM == "" {
		code, err := reg.GetRegistrationCode(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		in.VerificationCertificatePEM = testpki.New(t, testpki.Options{Parent: ca, CommonName: code}).PEM
	}
	got, err := reg.RegisterCACertificate(ctx, s, in)
	if err != nil {
		t.Fatalf("RegisterCACertificate: %v", err)
	}
	return got
}

func TestRegisterCACertificate(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	code, err := reg.GetRegistrationCode(ctx, scope)
	if err != nil || len(code) != 64 {
		t.Fatalf("registration code %q: %v", code, err)
	}
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Fleet CA"})
	otherKey := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Fleet CA"})
	notCA := testpki.Leaf(t)
	expiredCA := testpki.New(t, testpki.Options{IsCA: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	verify := func(signer *testpki.Cert, cn string) string {
		return testpki.New(t, testpki.Options{Parent: signer, CommonName: cn}).PEM
	}
	tests := []struct {
		name string
		in   fleetcert.RegisterCAInput
		code string
	}{
		{"fail/not-a-ca", fleetcert.RegisterCAInput{CACertificatePEM: notCA.PEM, VerificationCertificatePEM: verify(notCA, code)}, fleetcert.ECertificateValidation},
		{"fail/expired-ca", fleetcert.RegisterCAInput{CACertificatePEM: expiredCA.PEM, VerificationCertificatePEM: verify(expiredCA, code)}, fleetcert.ECertificateValidation},
		{"fail/no-verification", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM}, fleetcert.EInvalidRequest},
		{"fail/wrong-code", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, VerificationCertificatePEM: verify(ca, "0123")}, fleetcert.ERegistrationCodeValidation},
		{"fail/verification-signed-by-other-key", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, VerificationCertificatePEM: verify(otherKey, code)}, fleetcert.ECertificateValidation},
		{"fail/verification-garbage", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, VerificationCertificatePEM: "junk"}, fleetcert.ECertificateValidation},
		{"fail/bad-mode", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, Mode: "LAX"}, fleetcert.EInvalidRequest},
		{"fail/bad-template-name", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly, RegistrationConfig: fleetcert.RegistrationConfig{TemplateName: "no spaces"}}, fleetcert.EInvalidRequest},
		// A provisioning template is checked when the CA is registered
		// (template_test.go has each rule).
		{"fail/bad-template", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly, RegistrationConfig: fleetcert.RegistrationConfig{TemplateBody: `{"Resources": {"x": {"Type": "AWS::S3::Bucket"}}}`}}, fleetcert.EInvalidRequest},
		{"fail/duplicate-tag", fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly, Tags: []fleetcert.Tag{{Key: "a"}, {Key: "a"}}}, fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reg.RegisterCACertificate(ctx, scope, tt.in)
			if got := fleetcert.ErrorCode(err); got != tt.code {
				t.Fatalf("code %q (%v), want %s", got, err, tt.code)
			}
		})
	}
	page, err := reg.ListCACertificates(ctx, scope, fleetcert.ListOptions{}, "")
	if err != nil || len(page.CACertificates) != 0 {
		t.Fatalf("refused registrations stored something: %v %v", page, err)
	}

	got := registerCA(t, reg, scope, ca, fleetcert.RegisterCAInput{SetAsActive: true, AllowAutoRegistration: true,
		RegistrationConfig: fleetcert.RegistrationConfig{TemplateBody: `{"Resources":{}}`, TemplateName: "jitp_1"}, Tags: []fleetcert.Tag{{Key: "env", Value: "prod"}}})
	if got.Status != fleetcert.CAStatusActive || got.AutoRegistrationStatus != fleetcert.AutoRegistrationEnable || got.Mode != fleetcert.ModeDefault {
		t.Fatalf("registered: %+v", got)
	}
	_, err = reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, VerificationCertificatePEM: verify(ca, code)})
	if fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	// DEFAULT mode: one account per region. SNI_ONLY: any number.
	otherCode, _ := reg.GetRegistrationCode(ctx, otherAccount)
	_, err = reg.RegisterCACertificate(ctx, otherAccount, fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, VerificationCertificatePEM: verify(ca, otherCode)})
	if fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
		t.Fatalf("DEFAULT CA in a second account: %v", err)
	}
	sni := registerCA(t, reg, otherAccount, ca, fleetcert.RegisterCAInput{Mode: fleetcert.ModeSNIOnly})
	if sni.Mode != fleetcert.ModeSNIOnly || sni.Status != fleetcert.CAStatusInactive || sni.AutoRegistrationStatus != fleetcert.AutoRegistrationDisable {
		t.Fatalf("SNI_ONLY: %+v", sni)
	}

	// The registration code is stable until deleted, then a new one.
	if again, _ := reg.GetRegistrationCode(ctx, scope); again != code {
		t.Fatal("registration code changed")
	}
	if err := reg.DeleteRegistrationCode(ctx, scope); err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteRegistrationCode(ctx, scope); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("delete twice: %v", err)
	}
	if fresh, _ := reg.GetRegistrationCode(ctx, scope); fresh == code {
		t.Fatal("no new code after delete")
	}
}

func TestCASubjectLimit(t *testing.T) {
	reg, _ := mustOpenRegistry(t)
	for i := 0; i < fleetcert.MaxCAsPerSubject; i++ {
		registerCA(t, reg, scope, testpki.New(t, testpki.Options{IsCA: true, CommonName: "Same"}), fleetcert.RegisterCAInput{Mode: fleetcert.ModeSNIOnly})
	}
	_, err := reg.RegisterCACertificate(context.Background(), scope, fleetcert.RegisterCAInput{
		CACertificatePEM: testpki.New(t, testpki.Options{IsCA: true, CommonName: "Same"}).PEM, Mode: fleetcert.ModeSNIOnly})
	if fleetcert.ErrorCode(err) != fleetcert.ELimitExceeded {
		t.Fatalf("11th CA with one subject: %v", err)
	}
}

func TestUpdateAndDeleteCACertificate(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	ca := registerCA(t, reg, scope, testpki.New(t, testpki.Options{IsCA: true}), fleetcert.RegisterCAInput{SetAsActive: true})
	tests := []struct {
		name string
		in   fleetcert.UpdateCAInput
		code string
	}{
		{"fail/status-revoked", fleetcert.UpdateCAInput{NewStatus: "REVOKED"}, fleetcert.EInvalidRequest},
		{"fail/status-pending", fleetcert.UpdateCAInput{NewStatus: "PENDING_TRANSFER"}, fleetcert.EInvalidRequest},
		{"fail/auto-bogus", fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "ON"}, fleetcert.EInvalidRequest},
		{"fail/contradiction", fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "ENABLE", RemoveAutoRegistration: true}, fleetcert.EInvalidRequest},
		{"ok/enable-auto", fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "ENABLE"}, ""},
		{"ok/remove-auto", fleetcert.UpdateCAInput{RemoveAutoRegistration: true}, ""},
		{"ok/config", fleetcert.UpdateCAInput{RegistrationConfig: &fleetcert.RegistrationConfig{TemplateBody: "{\"Resources\":{}}", RoleARN: "arn:aws:iam::123456789012:role/JITP"}}, ""},
		{"fail/config-bad-template", fleetcert.UpdateCAInput{RegistrationConfig: &fleetcert.RegistrationConfig{TemplateBody: "{\"Resources\":"}}, fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := fleetcert.ErrorCode(reg.UpdateCACertificate(ctx, scope, ca.ID, tt.in)); code != tt.code {
				t.Fatalf("code %q, want %q", code, tt.code)
			}
		})
	}
	got, err := reg.DescribeCACertificate(ctx, scope, ca.ID)
	if err != nil || got.AutoRegistrationStatus != fleetcert.AutoRegistrationDisable || got.RegistrationConfig.RoleARN == "" || got.CustomerVersion != 4 {
		t.Fatalf("after updates: %+v %v", got, err)
	}
	if err := reg.DeleteCACertificate(ctx, scope, ca.ID); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("delete ACTIVE CA: %v", err)
	}
	clk.advance(time.Second)
	if err := reg.UpdateCACertificate(ctx, scope, ca.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	// Same status again: no change.
	before, _ := reg.DescribeCACertificate(ctx, scope, ca.ID)
	if err := reg.UpdateCACertificate(ctx, scope, ca.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	if after, _ := reg.DescribeCACertificate(ctx, scope, ca.ID); after.CustomerVersion != before.CustomerVersion {
		t.Fatal("no-op update moved the version")
	}
	if _, err := reg.DescribeCACertificate(ctx, otherAccount, ca.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("other account sees the CA: %v", err)
	}
	if err := reg.DeleteCACertificate(ctx, scope, ca.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.DescribeCACertificate(ctx, scope, ca.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("after delete: %v", err)
	}
}

func TestRegisterCertificateUnderCA(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Devices CA"})
	ca := registerCA(t, reg, scope, caCert, fleetcert.RegisterCAInput{SetAsActive: true})
	// A second CA with the same subject but another key.
	twinCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Devices CA"})
	unregistered := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Unregistered CA"})
	sniCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "SNI CA"})
	sni := registerCA(t, reg, scope, sniCert, fleetcert.RegisterCAInput{Mode: fleetcert.ModeSNIOnly, SetAsActive: true})

	leaf := testpki.New(t, testpki.Options{Parent: caCert})
	c, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: leaf.PEM, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.CACertificateID != ca.ID || c.Status != fleetcert.StatusActive || c.Mode != fleetcert.ModeDefault {
		t.Fatalf("registered: %+v", c)
	}
	sniLeaf, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: sniCert}).PEM, CACertificatePEM: sniCert.PEM})
	if err != nil || sniLeaf.Mode != fleetcert.ModeSNIOnly || sniLeaf.CACertificateID != sni.ID || sniLeaf.Status != fleetcert.StatusInactive {
		t.Fatalf("under SNI_ONLY CA: %+v %v", sniLeaf, err)
	}
	// A certificate registered REVOKED can never be activated.
	rev, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM, Status: fleetcert.StatusRevoked})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.UpdateCertificate(ctx, scope, rev.ID, fleetcert.StatusActive); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("activate REVOKED: %v", err)
	}

	tests := []struct {
		name string
		in   fleetcert.RegisterCertificateInput
		code string
	}{
		{"fail/duplicate", fleetcert.RegisterCertificateInput{CertificatePEM: leaf.PEM}, fleetcert.EResourceAlreadyExists},
		{"fail/unregistered-ca", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: unregistered}).PEM}, fleetcert.ECertificateValidation},
		{"fail/unregistered-ca-given", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: unregistered}).PEM, CACertificatePEM: unregistered.PEM}, fleetcert.ECertificateValidation},
		{"fail/signed-by-twin-key", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: twinCert}).PEM}, fleetcert.ECertificateValidation},
		{"fail/wrong-ca-given", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM, CACertificatePEM: sniCert.PEM}, fleetcert.ECertificateValidation},
		{"fail/self-signed", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.Leaf(t).PEM}, fleetcert.ECertificateValidation},
		{"fail/expired", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).PEM}, fleetcert.ECertificateValidation},
		{"fail/pending-status", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM, Status: fleetcert.StatusPendingActivation}, fleetcert.EInvalidRequest},
		{"fail/other-account", fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM}, fleetcert.ECertificateValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scope
			if tt.name == "fail/other-account" {
				s = otherAccount
			}
			_, err := reg.RegisterCertificate(ctx, s, tt.in)
			if code := fleetcert.ErrorCode(err); code != tt.code {
				t.Fatalf("code %q (%v), want %s", code, err, tt.code)
			}
		})
	}

	// Deactivating the CA stops registration under it; its certificates
	// keep their status.
	if err := reg.UpdateCACertificate(ctx, scope, ca.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	_, err = reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM})
	if fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("register under INACTIVE CA: %v", err)
	}
	if got, _ := reg.DescribeCertificate(ctx, scope, c.ID); got.Status != fleetcert.StatusActive {
		t.Fatal("deactivating the CA changed its certificates")
	}

	// Twin CA registered too: issuer lookup is now ambiguous only if both
	// keys verify, which they don't; a certificate of the twin finds it.
	twin := registerCA(t, reg, scope, twinCert, fleetcert.RegisterCAInput{SetAsActive: true})
	tc, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: twinCert}).PEM})
	if err != nil || tc.CACertificateID != twin.ID {
		t.Fatalf("twin: %+v %v", tc, err)
	}

	page, err := reg.ListCertificatesByCA(ctx, scope, ca.ID, fleetcert.ListOptions{})
	if err != nil || len(page.Certificates) != 2 {
		t.Fatalf("by CA: %v %v", page, err)
	}
	for _, c := range page.Certificates {
		if c.CACertificateID != ca.ID {
			t.Fatalf("listed a certificate of another CA: %+v", c)
		}
	}
}

// TestConflictingCAs: two registered CAs with the same subject and key
// (one re-issued from the other) both verify a device certificate; without
// caCertificatePem the registration is ambiguous.
func TestConflictingCAs(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	a := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Rolled CA"})
	b := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Rolled CA", Key: a.Key})
	registerCA(t, reg, scope, a, fleetcert.RegisterCAInput{SetAsActive: true})
	cb := registerCA(t, reg, scope, b, fleetcert.RegisterCAInput{SetAsActive: true})
	leaf := testpki.New(t, testpki.Options{Parent: a})
	_, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: leaf.PEM})
	if fleetcert.ErrorCode(err) != fleetcert.ECertificateConflict {
		t.Fatalf("ambiguous CA: %v", err)
	}
	c, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: leaf.PEM, CACertificatePEM: b.PEM})
	if err != nil || c.CACertificateID != cb.ID {
		t.Fatalf("with caCertificatePem: %+v %v", c, err)
	}
}
