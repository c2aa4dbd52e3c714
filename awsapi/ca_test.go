package awsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// wantError checks that err is the SDK's typed error T and carries the
// model's HTTP status for it.
func wantError[T error](tb testing.TB, err error, status int) T {
	tb.Helper()
	var target T
	if !errors.As(err, &target) {
		tb.Fatalf("got %v, want %T", err, target)
	}
	if _, got := apiError(tb, err); got != status {
		tb.Errorf("%T: status %d, want %d", target, got, status)
	}
	return target
}

// mustGetCode returns the registration code of client's account.
func mustGetCode(tb testing.TB, client *iot.Client) string {
	tb.Helper()
	out, err := client.GetRegistrationCode(context.Background(), &iot.GetRegistrationCodeInput{})
	if err != nil {
		tb.Fatal(err)
	}
	return aws.ToString(out.RegistrationCode)
}

// mustRegisterCA registers ca in client's account and returns its id: in
// DEFAULT mode with a verification certificate for the account's
// registration code, in SNI_ONLY mode without.
func mustRegisterCA(tb testing.TB, client *iot.Client, ca *testpki.Cert, mode types.CertificateMode, active bool) string {
	tb.Helper()
	in := &iot.RegisterCACertificateInput{CaCertificate: aws.String(ca.PEM), CertificateMode: mode, SetAsActive: active}
	if mode == types.CertificateModeDefault {
		code := mustGetCode(tb, client)
		in.VerificationCertificate = aws.String(testpki.New(tb, testpki.Options{Parent: ca, CommonName: code}).PEM)
	}
	out, err := client.RegisterCACertificate(context.Background(), in)
	if err != nil {
		tb.Fatal(err)
	}
	if id := fleetcert.CertificateID(ca.Cert.Raw); aws.ToString(out.CertificateId) != id {
		tb.Fatalf("registered CA %s, want %s", aws.ToString(out.CertificateId), id)
	}
	return aws.ToString(out.CertificateId)
}

// TestRegistrationCode_Client checks that the code stays the same until it
// is deleted, and that each account has its own.
func TestRegistrationCode_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.Client(e.KeyA, testRegion)
	b := e.Client(e.KeyB, testRegion)

	code := mustGetCode(t, a)
	t.Run("ok/stable until deleted", func(t *testing.T) {
		if len(code) != 64 || strings.Trim(code, "0123456789abcdef") != "" {
			t.Errorf("code %q is not 64 hex digits", code)
		}
		if again := mustGetCode(t, a); again != code {
			t.Errorf("second call %s, first %s", again, code)
		}
	})
	t.Run("ok/per account and region", func(t *testing.T) {
		if other := mustGetCode(t, b); other == code {
			t.Error("account B has account A's code")
		}
		if other := mustGetCode(t, e.Client(e.KeyA, "eu-west-1")); other == code {
			t.Error("eu-west-1 has us-east-1's code")
		}
	})
	t.Run("ok/new after delete", func(t *testing.T) {
		if _, err := a.DeleteRegistrationCode(ctx, &iot.DeleteRegistrationCodeInput{}); err != nil {
			t.Fatal(err)
		}
		if fresh := mustGetCode(t, a); fresh == code {
			t.Error("same code after delete")
		}
	})
	t.Run("fail/delete none", func(t *testing.T) {
		if _, err := b.DeleteRegistrationCode(ctx, &iot.DeleteRegistrationCodeInput{}); err != nil {
			t.Fatal(err)
		}
		_, err := b.DeleteRegistrationCode(ctx, &iot.DeleteRegistrationCodeInput{})
		wantError[*types.ResourceNotFoundException](t, err, 404)
	})
}

// TestCACertificates_Client drives the CA certificate operations with the
// real aws-sdk-go-v2 IoT client.
func TestCACertificates_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.Client(e.KeyA, testRegion)
	b := e.Client(e.KeyB, testRegion)
	start := time.Now()

	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Fleet Root CA"})
	caID := fleetcert.CertificateID(ca.Cert.Raw)
	caARN := fmt.Sprintf("arn:aws:iot:%s:%s:cacert/%s", testRegion, accountA, caID)
	config := &types.RegistrationConfig{
		TemplateBody: aws.String(`{"Resources":{}}`),
		RoleArn:      aws.String("arn:aws:iam::111111111111:role/JITPRole"),
		TemplateName: aws.String("fleet-template"),
	}

	t.Run("ok/RegisterCACertificate DEFAULT", func(t *testing.T) {
		code := mustGetCode(t, a)
		verification := testpki.New(t, testpki.Options{Parent: ca, CommonName: code})
		out, err := a.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{
			CaCertificate:           aws.String(ca.PEM),
			VerificationCertificate: aws.String(verification.PEM),
			SetAsActive:             true,
			AllowAutoRegistration:   true,
			RegistrationConfig:      config,
			Tags:                    []types.Tag{{Key: aws.String("fleet"), Value: aws.String("north")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.CertificateId) != caID || aws.ToString(out.CertificateArn) != caARN {
			t.Fatalf("got %s %s, want %s %s", aws.ToString(out.CertificateId), aws.ToString(out.CertificateArn), caID, caARN)
		}
	})

	t.Run("ok/DescribeCACertificate", func(t *testing.T) {
		out, err := a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
		if err != nil {
			t.Fatal(err)
		}
		d := out.CertificateDescription
		if aws.ToString(d.CertificateId) != caID || aws.ToString(d.CertificateArn) != caARN ||
			d.Status != types.CACertificateStatusActive || aws.ToString(d.CertificatePem) != ca.PEM ||
			aws.ToString(d.OwnedBy) != accountA || d.AutoRegistrationStatus != types.AutoRegistrationStatusEnable ||
			d.CertificateMode != types.CertificateModeDefault || aws.ToInt32(d.CustomerVersion) != 1 || aws.ToString(d.GenerationId) == "" {
			t.Errorf("description %+v", d)
		}
		if c := aws.ToTime(d.CreationDate); c.Before(start.Truncate(time.Second)) || c.After(time.Now()) || !aws.ToTime(d.LastModifiedDate).Equal(c) {
			t.Errorf("creationDate %v lastModifiedDate %v", c, aws.ToTime(d.LastModifiedDate))
		}
		if d.Validity == nil || !aws.ToTime(d.Validity.NotBefore).Equal(ca.Cert.NotBefore) || !aws.ToTime(d.Validity.NotAfter).Equal(ca.Cert.NotAfter) {
			t.Errorf("validity %+v", d.Validity)
		}
		if !reflect.DeepEqual(out.RegistrationConfig, config) {
			t.Errorf("registrationConfig %+v, want %+v", out.RegistrationConfig, config)
		}
	})

	for _, tt := range []struct {
		name   string
		in     func(t *testing.T) *iot.RegisterCACertificateInput
		check  func(t *testing.T, err error)
		client *iot.Client
	}{
		{"fail/duplicate", func(t *testing.T) *iot.RegisterCACertificateInput {
			v := testpki.New(t, testpki.Options{Parent: ca, CommonName: mustGetCode(t, a)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(ca.PEM), VerificationCertificate: aws.String(v.PEM)}
		}, func(t *testing.T, err error) {
			dup := wantError[*types.ResourceAlreadyExistsException](t, err, 409)
			if aws.ToString(dup.ResourceId) != caID || aws.ToString(dup.ResourceArn) != caARN {
				t.Errorf("resourceId %q resourceArn %q", aws.ToString(dup.ResourceId), aws.ToString(dup.ResourceArn))
			}
		}, a},
		{"fail/DEFAULT in another account", func(t *testing.T) *iot.RegisterCACertificateInput {
			v := testpki.New(t, testpki.Options{Parent: ca, CommonName: mustGetCode(t, b)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(ca.PEM), VerificationCertificate: aws.String(v.PEM)}
		}, func(t *testing.T, err error) {
			wantError[*types.ResourceAlreadyExistsException](t, err, 409)
		}, b},
		{"fail/wrong registration code", func(t *testing.T) *iot.RegisterCACertificateInput {
			other := testpki.New(t, testpki.Options{IsCA: true})
			v := testpki.New(t, testpki.Options{Parent: other, CommonName: strings.Repeat("0", 64)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(other.PEM), VerificationCertificate: aws.String(v.PEM)}
		}, func(t *testing.T, err error) {
			wantError[*types.RegistrationCodeValidationException](t, err, 400)
		}, a},
		{"fail/another account's registration code", func(t *testing.T) *iot.RegisterCACertificateInput {
			other := testpki.New(t, testpki.Options{IsCA: true})
			v := testpki.New(t, testpki.Options{Parent: other, CommonName: mustGetCode(t, b)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(other.PEM), VerificationCertificate: aws.String(v.PEM)}
		}, func(t *testing.T, err error) {
			wantError[*types.RegistrationCodeValidationException](t, err, 400)
		}, a},
		{"fail/verification signed by another key", func(t *testing.T) *iot.RegisterCACertificateInput {
			other := testpki.New(t, testpki.Options{IsCA: true})
			impostor := testpki.New(t, testpki.Options{IsCA: true, CommonName: other.Cert.Subject.CommonName})
			v := testpki.New(t, testpki.Options{Parent: impostor, CommonName: mustGetCode(t, a)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(other.PEM), VerificationCertificate: aws.String(v.PEM)}
		}, func(t *testing.T, err error) {
			wantError[*types.CertificateValidationException](t, err, 400)
		}, a},
		{"fail/not a CA certificate", func(t *testing.T) *iot.RegisterCACertificateInput {
			leaf := testpki.New(t, testpki.Options{})
			v := testpki.New(t, testpki.Options{Parent: leaf, CommonName: mustGetCode(t, a)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(leaf.PEM), VerificationCertificate: aws.String(v.PEM)}
		}, func(t *testing.T, err error) {
			wantError[*types.CertificateValidationException](t, err, 400)
		}, a},
		{"fail/not a certificate", func(t *testing.T) *iot.RegisterCACertificateInput {
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String("garbage"), CertificateMode: types.CertificateModeSniOnly}
		}, func(t *testing.T, err error) {
			wantError[*types.CertificateValidationException](t, err, 400)
		}, a},
		{"fail/DEFAULT without verification", func(t *testing.T) *iot.RegisterCACertificateInput {
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(testpki.New(t, testpki.Options{IsCA: true}).PEM)}
		}, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}, a},
		{"fail/explicit DEFAULT without verification", func(t *testing.T) *iot.RegisterCACertificateInput {
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(testpki.New(t, testpki.Options{IsCA: true}).PEM), CertificateMode: types.CertificateModeDefault}
		}, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}, a},
		{"fail/unknown certificateMode", func(t *testing.T) *iot.RegisterCACertificateInput {
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(testpki.New(t, testpki.Options{IsCA: true}).PEM), CertificateMode: "BOTH"}
		}, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}, a},
		{"fail/templateName invalid", func(t *testing.T) *iot.RegisterCACertificateInput {
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(testpki.New(t, testpki.Options{IsCA: true}).PEM), CertificateMode: types.CertificateModeSniOnly,
				RegistrationConfig: &types.RegistrationConfig{TemplateName: aws.String("no spaces allowed")}}
		}, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}, a},
		{"fail/tag key given twice", func(t *testing.T) *iot.RegisterCACertificateInput {
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(testpki.New(t, testpki.Options{IsCA: true}).PEM), CertificateMode: types.CertificateModeSniOnly,
				Tags: []types.Tag{{Key: aws.String("k")}, {Key: aws.String("k")}}}
		}, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}, a},
		{"fail/expired CA", func(t *testing.T) *iot.RegisterCACertificateInput {
			old := testpki.New(t, testpki.Options{IsCA: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
			return &iot.RegisterCACertificateInput{CaCertificate: aws.String(old.PEM), CertificateMode: types.CertificateModeSniOnly}
		}, func(t *testing.T, err error) {
			wantError[*types.CertificateValidationException](t, err, 400)
		}, a},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.RegisterCACertificate(ctx, tt.in(t))
			tt.check(t, err)
		})
	}

	t.Run("fail/no registration code yet", func(t *testing.T) {
		c := e.Client(e.mustCreateKey("333333333333"), testRegion)
		other := testpki.New(t, testpki.Options{IsCA: true})
		v := testpki.New(t, testpki.Options{Parent: other, CommonName: strings.Repeat("a", 64)})
		_, err := c.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{CaCertificate: aws.String(other.PEM), VerificationCertificate: aws.String(v.PEM)})
		wantError[*types.RegistrationCodeValidationException](t, err, 400)
	})

	sni := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Shared SNI CA"})
	sniID := fleetcert.CertificateID(sni.Cert.Raw)
	t.Run("ok/SNI_ONLY in two accounts", func(t *testing.T) {
		mustRegisterCA(t, a, sni, types.CertificateModeSniOnly, true)
		out, err := b.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{CaCertificate: aws.String(sni.PEM), CertificateMode: types.CertificateModeSniOnly})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("arn:aws:iot:%s:%s:cacert/%s", testRegion, accountB, sniID); aws.ToString(out.CertificateArn) != want {
			t.Errorf("arn %s, want %s", aws.ToString(out.CertificateArn), want)
		}
		d, err := b.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(sniID)})
		if err != nil {
			t.Fatal(err)
		}
		cd := d.CertificateDescription
		if cd.CertificateMode != types.CertificateModeSniOnly || cd.Status != types.CACertificateStatusInactive ||
			cd.AutoRegistrationStatus != types.AutoRegistrationStatusDisable || aws.ToString(cd.OwnedBy) != accountB {
			t.Errorf("account B's CA %+v", cd)
		}
		if d.RegistrationConfig != nil {
			t.Errorf("empty registrationConfig sent: %+v", d.RegistrationConfig)
		}
		d, err = a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(sniID)})
		if err != nil || d.CertificateDescription.Status != types.CACertificateStatusActive || aws.ToString(d.CertificateDescription.OwnedBy) != accountA {
			t.Errorf("account A's CA %+v %v", d, err)
		}
	})

	t.Run("fail/LimitExceeded beyond 10 CAs of one subject", func(t *testing.T) {
		for i := 0; i < fleetcert.MaxCAsPerSubject; i++ {
			mustRegisterCA(t, b, testpki.New(t, testpki.Options{IsCA: true, CommonName: "Crowded CA"}), types.CertificateModeSniOnly, false)
		}
		_, err := b.RegisterCACertificate(ctx, &iot.RegisterCACertificateInput{
			CaCertificate:   aws.String(testpki.New(t, testpki.Options{IsCA: true, CommonName: "Crowded CA"}).PEM),
			CertificateMode: types.CertificateModeSniOnly,
		})
		wantError[*types.LimitExceededException](t, err, 410)
	})

	t.Run("ok/UpdateCACertificate", func(t *testing.T) {
		_, err := a.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{
			CertificateId:             aws.String(caID),
			NewStatus:                 types.CACertificateStatusInactive,
			NewAutoRegistrationStatus: types.AutoRegistrationStatusDisable,
			RegistrationConfig:        &types.RegistrationConfig{TemplateName: aws.String("other-template")},
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
		if err != nil {
			t.Fatal(err)
		}
		cd := d.CertificateDescription
		if cd.Status != types.CACertificateStatusInactive || cd.AutoRegistrationStatus != types.AutoRegistrationStatusDisable ||
			aws.ToInt32(cd.CustomerVersion) != 2 || aws.ToTime(cd.LastModifiedDate).Before(aws.ToTime(cd.CreationDate)) {
			t.Errorf("after update %+v", cd)
		}
		if want := (&types.RegistrationConfig{TemplateName: aws.String("other-template")}); !reflect.DeepEqual(d.RegistrationConfig, want) {
			t.Errorf("registrationConfig %+v", d.RegistrationConfig)
		}
		// Back to ACTIVE with auto-registration, then removeAutoRegistration.
		if _, err := a.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(caID),
			NewStatus: types.CACertificateStatusActive, NewAutoRegistrationStatus: types.AutoRegistrationStatusEnable}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), RemoveAutoRegistration: true}); err != nil {
			t.Fatal(err)
		}
		d, err = a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
		if err != nil || d.CertificateDescription.Status != types.CACertificateStatusActive ||
			d.CertificateDescription.AutoRegistrationStatus != types.AutoRegistrationStatusDisable {
			t.Errorf("after removeAutoRegistration %+v %v", d, err)
		}
	})

	for _, tt := range []struct {
		name   string
		in     *iot.UpdateCACertificateInput
		client *iot.Client
		check  func(t *testing.T, err error)
	}{
		{"fail/newStatus REVOKED", &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: "REVOKED"}, a, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}},
		{"fail/newStatus PENDING_TRANSFER", &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: "PENDING_TRANSFER"}, a, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}},
		{"fail/newAutoRegistrationStatus unknown", &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewAutoRegistrationStatus: "MAYBE"}, a, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}},
		{"fail/removeAutoRegistration with ENABLE", &iot.UpdateCACertificateInput{CertificateId: aws.String(caID),
			NewAutoRegistrationStatus: types.AutoRegistrationStatusEnable, RemoveAutoRegistration: true}, a, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}},
		{"fail/roleArn too short", &iot.UpdateCACertificateInput{CertificateId: aws.String(caID),
			RegistrationConfig: &types.RegistrationConfig{RoleArn: aws.String("arn:short")}}, a, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}},
		{"fail/invalid id", &iot.UpdateCACertificateInput{CertificateId: aws.String("abc"), NewStatus: types.CACertificateStatusInactive}, a, func(t *testing.T, err error) {
			wantError[*types.InvalidRequestException](t, err, 400)
		}},
		{"fail/unknown CA", &iot.UpdateCACertificateInput{CertificateId: aws.String(strings.Repeat("0", 64)), NewStatus: types.CACertificateStatusInactive}, a, func(t *testing.T, err error) {
			wantError[*types.ResourceNotFoundException](t, err, 404)
		}},
		{"fail/other account's CA", &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: types.CACertificateStatusInactive}, b, func(t *testing.T, err error) {
			wantError[*types.ResourceNotFoundException](t, err, 404)
		}},
	} {
		t.Run("UpdateCACertificate "+tt.name, func(t *testing.T) {
			_, err := tt.client.UpdateCACertificate(ctx, tt.in)
			tt.check(t, err)
		})
	}

	t.Run("fail/DescribeCACertificate", func(t *testing.T) {
		_, err := a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(strings.Repeat("0", 64))})
		wantError[*types.ResourceNotFoundException](t, err, 404)
		_, err = b.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
		wantError[*types.ResourceNotFoundException](t, err, 404)
		_, err = a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String("xyz")})
		wantError[*types.InvalidRequestException](t, err, 400)
	})

	t.Run("ok/ListCACertificates", func(t *testing.T) {
		// Account A holds caID, then sniID.
		var got []string
		in := &iot.ListCACertificatesInput{PageSize: aws.Int32(1), AscendingOrder: true}
		for pages := 1; ; pages++ {
			out, err := a.ListCACertificates(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range out.Certificates {
				if c.Status != types.CACertificateStatusActive || c.CreationDate == nil ||
					!strings.HasSuffix(aws.ToString(c.CertificateArn), ":cacert/"+aws.ToString(c.CertificateId)) {
					t.Errorf("item %+v", c)
				}
				got = append(got, aws.ToString(c.CertificateId))
			}
			if out.NextMarker == nil {
				break
			}
			if pages > 3 {
				t.Fatal("too many pages")
			}
			in.Marker = out.NextMarker
		}
		if want := []string{caID, sniID}; !reflect.DeepEqual(got, want) {
			t.Errorf("ascending %v, want %v", got, want)
		}
		out, err := a.ListCACertificates(ctx, &iot.ListCACertificatesInput{})
		if err != nil || len(out.Certificates) != 2 || aws.ToString(out.Certificates[0].CertificateId) != sniID || out.NextMarker != nil {
			t.Errorf("newest first: %+v %v", out, err)
		}
		out, err = a.ListCACertificates(ctx, &iot.ListCACertificatesInput{TemplateName: aws.String("other-template")})
		if err != nil || len(out.Certificates) != 1 || aws.ToString(out.Certificates[0].CertificateId) != caID {
			t.Errorf("by templateName: %+v %v", out, err)
		}
		out, err = b.ListCACertificates(ctx, &iot.ListCACertificatesInput{PageSize: aws.Int32(250)})
		if err != nil || len(out.Certificates) != 1+fleetcert.MaxCAsPerSubject {
			t.Errorf("account B: %+v %v", out, err)
		}
	})

	for _, tt := range []struct {
		name string
		in   *iot.ListCACertificatesInput
	}{
		{"fail/pageSize 0", &iot.ListCACertificatesInput{PageSize: aws.Int32(0)}},
		{"fail/pageSize 251", &iot.ListCACertificatesInput{PageSize: aws.Int32(251)}},
		{"fail/marker not ours", &iot.ListCACertificatesInput{Marker: aws.String("aGVsbG8=")}},
		{"fail/templateName invalid", &iot.ListCACertificatesInput{TemplateName: aws.String("a b")}},
	} {
		t.Run("ListCACertificates "+tt.name, func(t *testing.T) {
			_, err := a.ListCACertificates(ctx, tt.in)
			wantError[*types.InvalidRequestException](t, err, 400)
		})
	}

	t.Run("fail/DeleteCACertificate ACTIVE", func(t *testing.T) {
		_, err := a.DeleteCACertificate(ctx, &iot.DeleteCACertificateInput{CertificateId: aws.String(caID)})
		wantError[*types.CertificateStateException](t, err, 406)
	})
	t.Run("fail/DeleteCACertificate invalid id", func(t *testing.T) {
		_, err := a.DeleteCACertificate(ctx, &iot.DeleteCACertificateInput{CertificateId: aws.String("abc")})
		wantError[*types.InvalidRequestException](t, err, 400)
	})
	t.Run("ok/DeleteCACertificate INACTIVE", func(t *testing.T) {
		if _, err := a.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: types.CACertificateStatusInactive}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.DeleteCACertificate(ctx, &iot.DeleteCACertificateInput{CertificateId: aws.String(caID)}); err != nil {
			t.Fatal(err)
		}
		_, err := a.DescribeCACertificate(ctx, &iot.DescribeCACertificateInput{CertificateId: aws.String(caID)})
		wantError[*types.ResourceNotFoundException](t, err, 404)
		_, err = a.DeleteCACertificate(ctx, &iot.DeleteCACertificateInput{CertificateId: aws.String(caID)})
		wantError[*types.ResourceNotFoundException](t, err, 404)
	})
}

// TestRegisterCertificate_Client registers client certificates under
// registered CAs and lists them by CA.
func TestRegisterCertificate_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.Client(e.KeyA, testRegion)
	b := e.Client(e.KeyB, testRegion)

	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Device CA"})
	caID := mustRegisterCA(t, a, ca, types.CertificateModeDefault, true)
	sniCA := testpki.New(t, testpki.Options{IsCA: true, CommonName: "SNI Device CA"})
	sniCAID := mustRegisterCA(t, a, sniCA, types.CertificateModeSniOnly, true)

	describe := func(t *testing.T, client *iot.Client, id string) *types.CertificateDescription {
		t.Helper()
		out, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return out.CertificateDescription
	}
	var underCA []string // registered under caID, in order

	t.Run("ok/CA found from the issuer", func(t *testing.T) {
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		out, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(leaf.PEM), Status: types.CertificateStatusActive})
		if err != nil {
			t.Fatal(err)
		}
		id := fleetcert.CertificateID(leaf.Cert.Raw)
		if want := fmt.Sprintf("arn:aws:iot:%s:%s:cert/%s", testRegion, accountA, id); aws.ToString(out.CertificateId) != id || aws.ToString(out.CertificateArn) != want {
			t.Fatalf("got %s %s", aws.ToString(out.CertificateId), aws.ToString(out.CertificateArn))
		}
		d := describe(t, a, id)
		if aws.ToString(d.CaCertificateId) != caID || d.CertificateMode != types.CertificateModeDefault || d.Status != types.CertificateStatusActive {
			t.Errorf("description %+v", d)
		}
		underCA = append(underCA, id)
	})

	t.Run("ok/CA given as caCertificatePem, setAsActive", func(t *testing.T) {
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		out, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(leaf.PEM), CaCertificatePem: aws.String(ca.PEM), SetAsActive: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		d := describe(t, a, aws.ToString(out.CertificateId))
		if aws.ToString(d.CaCertificateId) != caID || d.Status != types.CertificateStatusActive {
			t.Errorf("description %+v", d)
		}
		underCA = append(underCA, aws.ToString(out.CertificateId))
	})

	t.Run("ok/INACTIVE by default", func(t *testing.T) {
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		out, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(leaf.PEM)})
		if err != nil {
			t.Fatal(err)
		}
		if d := describe(t, a, aws.ToString(out.CertificateId)); d.Status != types.CertificateStatusInactive {
			t.Errorf("status %s", d.Status)
		}
		underCA = append(underCA, aws.ToString(out.CertificateId))
	})

	var sniLeafID string
	t.Run("ok/mode follows the CA", func(t *testing.T) {
		leaf := testpki.New(t, testpki.Options{Parent: sniCA})
		out, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(leaf.PEM)})
		if err != nil {
			t.Fatal(err)
		}
		sniLeafID = aws.ToString(out.CertificateId)
		d := describe(t, a, sniLeafID)
		if d.CertificateMode != types.CertificateModeSniOnly || aws.ToString(d.CaCertificateId) != sniCAID {
			t.Errorf("description %+v", d)
		}
	})

	t.Run("fail/duplicate", func(t *testing.T) {
		pemText := describe(t, a, underCA[0]).CertificatePem
		_, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: pemText})
		dup := wantError[*types.ResourceAlreadyExistsException](t, err, 409)
		if aws.ToString(dup.ResourceId) != underCA[0] || !strings.HasSuffix(aws.ToString(dup.ResourceArn), ":cert/"+underCA[0]) {
			t.Errorf("resourceId %q resourceArn %q", aws.ToString(dup.ResourceId), aws.ToString(dup.ResourceArn))
		}
	})

	t.Run("fail/CA INACTIVE", func(t *testing.T) {
		if _, err := a.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: types.CACertificateStatusInactive}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := a.UpdateCACertificate(ctx, &iot.UpdateCACertificateInput{CertificateId: aws.String(caID), NewStatus: types.CACertificateStatusActive}); err != nil {
				t.Fatal(err)
			}
		}()
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		_, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(leaf.PEM)})
		wantError[*types.CertificateStateException](t, err, 406)
		// Certificates the CA issued keep working (deactivate-ca-cert.md).
		if d := describe(t, a, underCA[0]); d.Status != types.CertificateStatusActive {
			t.Errorf("issued certificate is %s", d.Status)
		}
	})

	unregistered := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Unregistered CA"})
	twin1 := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Twin CA"})
	twin2 := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Twin CA", Key: twin1.Key})
	mustRegisterCA(t, a, twin1, types.CertificateModeSniOnly, true)
	twin2ID := mustRegisterCA(t, a, twin2, types.CertificateModeSniOnly, true)
	twinLeaf := testpki.New(t, testpki.Options{Parent: twin1})

	for _, tt := range []struct {
		name   string
		client *iot.Client
		in     *iot.RegisterCertificateInput
		check  func(t *testing.T, err error)
	}{
		{"fail/issuer not registered", a, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: unregistered}).PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/caCertificatePem not registered", a, &iot.RegisterCertificateInput{
			CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: unregistered}).PEM), CaCertificatePem: aws.String(unregistered.PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/caCertificatePem did not sign it", a, &iot.RegisterCertificateInput{
			CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM), CaCertificatePem: aws.String(sniCA.PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/CA registered in another account only", b, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/self-signed", a, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.Leaf(t).PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/expired", a, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca,
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}).PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/not a certificate", a, &iot.RegisterCertificateInput{CertificatePem: aws.String("garbage")},
			func(t *testing.T, err error) { wantError[*types.CertificateValidationException](t, err, 400) }},
		{"fail/status PENDING_TRANSFER", a, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM),
			Status: types.CertificateStatusPendingTransfer},
			func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/two registered CAs verify it", a, &iot.RegisterCertificateInput{CertificatePem: aws.String(twinLeaf.PEM)},
			func(t *testing.T, err error) { wantError[*types.CertificateConflictException](t, err, 409) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.RegisterCertificate(ctx, tt.in)
			tt.check(t, err)
		})
	}

	t.Run("ok/caCertificatePem chooses among twins", func(t *testing.T) {
		out, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(twinLeaf.PEM), CaCertificatePem: aws.String(twin2.PEM)})
		if err != nil {
			t.Fatal(err)
		}
		if d := describe(t, a, aws.ToString(out.CertificateId)); aws.ToString(d.CaCertificateId) != twin2ID {
			t.Errorf("caCertificateId %s, want %s", aws.ToString(d.CaCertificateId), twin2ID)
		}
	})

	t.Run("ok/two PEMs of 64 KiB each", func(t *testing.T) {
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		pad := func(s string) string { return s + strings.Repeat(" ", fleetcert.MaxCertificatePEM-len(s)) }
		_, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(pad(leaf.PEM)), CaCertificatePem: aws.String(pad(ca.PEM))})
		if err != nil {
			t.Fatal(err)
		}
		underCA = append(underCA, fleetcert.CertificateID(leaf.Cert.Raw))
	})

	t.Run("ok/ListCertificatesByCA", func(t *testing.T) {
		e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive) // without CA: not listed
		var got []string
		in := &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(caID), PageSize: aws.Int32(2), AscendingOrder: true}
		pages := 0
		for {
			out, err := a.ListCertificatesByCA(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range out.Certificates {
				if c.CertificateMode != types.CertificateModeDefault || c.CreationDate == nil || c.Status == "" ||
					!strings.HasSuffix(aws.ToString(c.CertificateArn), ":cert/"+aws.ToString(c.CertificateId)) {
					t.Errorf("item %+v", c)
				}
				got = append(got, aws.ToString(c.CertificateId))
			}
			if out.NextMarker == nil {
				break
			}
			in.Marker = out.NextMarker
		}
		if !reflect.DeepEqual(got, underCA) || pages != 2 {
			t.Errorf("got %v in %d pages, want %v in 2", got, pages, underCA)
		}
		out, err := a.ListCertificatesByCA(ctx, &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(sniCAID)})
		if err != nil || len(out.Certificates) != 1 || aws.ToString(out.Certificates[0].CertificateId) != sniLeafID ||
			out.Certificates[0].CertificateMode != types.CertificateModeSniOnly {
			t.Errorf("by SNI_ONLY CA: %+v %v", out, err)
		}
		out, err = b.ListCertificatesByCA(ctx, &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(caID)})
		if err != nil || len(out.Certificates) != 0 {
			t.Errorf("account B: %+v %v", out, err)
		}
	})

	for _, tt := range []struct {
		name string
		in   *iot.ListCertificatesByCAInput
	}{
		{"fail/caCertificateId not an id", &iot.ListCertificatesByCAInput{CaCertificateId: aws.String("abc")}},
		{"fail/pageSize 0", &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(caID), PageSize: aws.Int32(0)}},
		{"fail/marker not ours", &iot.ListCertificatesByCAInput{CaCertificateId: aws.String(caID), Marker: aws.String("aGVsbG8=")}},
	} {
		t.Run("ListCertificatesByCA "+tt.name, func(t *testing.T) {
			_, err := a.ListCertificatesByCA(ctx, tt.in)
			wantError[*types.InvalidRequestException](t, err, 400)
		})
	}
}

// TestCACertificates_Wire checks the bytes on the wire of the CA and
// registration code operations: member names, omitted members, "{}"
// against empty bodies, and how bad members are refused.
func TestCACertificates_Wire(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	do := func(key *fleetcert.AccessKey, method, target, body string) *httpResponse {
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		resp := e.Do(e.Request(key, testRegion, method, target, b, now))
		rb, _ := io.ReadAll(resp.Body)
		return &httpResponse{resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), resp.Header.Get("Content-Length"), rb}
	}
	members := func(t *testing.T, m map[string]any) []string {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		return keys
	}

	m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/registrationcode", nil, now)))
	code, _ := m["registrationCode"].(string)
	if len(m) != 1 || len(code) != 64 {
		t.Fatalf("GetRegistrationCode %v", m)
	}

	ca := testpki.New(t, testpki.Options{IsCA: true})
	caID := fleetcert.CertificateID(ca.Cert.Raw)
	verification := testpki.New(t, testpki.Options{Parent: ca, CommonName: code})
	body, _ := json.Marshal(map[string]any{
		"caCertificate":           ca.PEM,
		"verificationCertificate": verification.PEM,
		"registrationConfig":      map[string]string{"templateName": "only-a-name"},
		"tags":                    []map[string]string{{"Key": "k", "Value": "v"}},
	})
	m = readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "POST", "/cacertificate?setAsActive=true&allowAutoRegistration=false", body, now)))
	if want := []string{"certificateArn", "certificateId"}; !sameSet(members(t, m), want) || m["certificateId"] != caID {
		t.Fatalf("RegisterCACertificate %v", m)
	}

	t.Run("ok/DescribeCACertificate members", func(t *testing.T) {
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/cacertificate/"+caID, nil, now)))
		d := m["certificateDescription"].(map[string]any)
		want := []string{"certificateArn", "certificateId", "status", "certificatePem", "ownedBy", "creationDate", "autoRegistrationStatus",
			"lastModifiedDate", "customerVersion", "generationId", "validity", "certificateMode"}
		if !sameSet(members(t, d), want) {
			t.Errorf("members %v, want %v", members(t, d), want)
		}
		if d["status"] != "ACTIVE" || d["autoRegistrationStatus"] != "DISABLE" || d["certificateMode"] != "DEFAULT" {
			t.Errorf("description %v", d)
		}
		if _, ok := d["creationDate"].(json.Number); !ok {
			t.Errorf("creationDate %v is not a number", d["creationDate"])
		}
		rc, _ := m["registrationConfig"].(map[string]any)
		if len(m) != 2 || len(rc) != 1 || rc["templateName"] != "only-a-name" {
			t.Errorf("registrationConfig %v: only the members set", m["registrationConfig"])
		}
	})

	t.Run("ok/no registrationConfig when none is set", func(t *testing.T) {
		sni := testpki.New(t, testpki.Options{IsCA: true})
		body, _ := json.Marshal(map[string]any{"caCertificate": sni.PEM, "certificateMode": "SNI_ONLY"})
		readJSON(t, e.Do(e.Request(e.KeyB, testRegion, "POST", "/cacertificate", body, now)))
		m := readJSON(t, e.Do(e.Request(e.KeyB, testRegion, "GET", "/cacertificate/"+fleetcert.CertificateID(sni.Cert.Raw), nil, now)))
		if _, ok := m["registrationConfig"]; ok || len(m) != 1 {
			t.Errorf("got %v", m)
		}
	})

	t.Run("ok/ListCACertificates members", func(t *testing.T) {
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/cacertificates?pageSize=1&isAscendingOrder=true&templateName=only-a-name", nil, now)))
		if _, ok := m["nextMarker"]; ok || len(m) != 1 {
			t.Errorf("got %v", m)
		}
		item := m["certificates"].([]any)[0].(map[string]any)
		if want := []string{"certificateArn", "certificateId", "status", "creationDate"}; !sameSet(members(t, item), want) {
			t.Errorf("item members %v, want %v", members(t, item), want)
		}
		if r := do(e.KeyA, "GET", "/cacertificates?templateName=nothing-here", ""); string(r.body) != `{"certificates":[]}` {
			t.Errorf("empty listing %s", r.body)
		}
	})

	for _, tt := range []struct {
		name, method, target, body string
		status                     int
		code                       string
		wantBody                   string
	}{
		{"ok/UpdateCACertificate empty body", "PUT", "/cacertificate/" + caID + "?newStatus=INACTIVE", "", 200, "", ""},
		{"ok/UpdateCACertificate body members", "PUT", "/cacertificate/" + caID, `{"removeAutoRegistration":true,"registrationConfig":{"roleArn":"arn:aws:iam::111111111111:role/R"}}`, 200, "", ""},
		{"fail/UpdateCACertificate newStatus unknown", "PUT", "/cacertificate/" + caID + "?newStatus=REVOKED", "", 400, "InvalidRequestException", ""},
		{"fail/UpdateCACertificate removeAutoRegistration not a boolean", "PUT", "/cacertificate/" + caID, `{"removeAutoRegistration":"yes"}`, 400, "InvalidRequestException", ""},
		{"ok/DeleteCACertificate", "DELETE", "/cacertificate/" + caID, "", 200, "", "{}"},
		{"fail/DeleteCACertificate again", "DELETE", "/cacertificate/" + caID, "", 404, "ResourceNotFoundException", ""},
		{"fail/RegisterCACertificate caCertificate missing", "POST", "/cacertificate", `{"certificateMode":"SNI_ONLY"}`, 400, "InvalidRequestException", ""},
		{"fail/RegisterCACertificate caCertificate null", "POST", "/cacertificate", `{"caCertificate":null}`, 400, "InvalidRequestException", ""},
		{"fail/RegisterCACertificate tags not a list", "POST", "/cacertificate", `{"caCertificate":"x","tags":"k=v"}`, 400, "InvalidRequestException", ""},
		{"fail/RegisterCACertificate setAsActive not a boolean", "POST", "/cacertificate?setAsActive=yes", `{"caCertificate":"x"}`, 400, "InvalidRequestException", ""},
		{"fail/RegisterCACertificate allowAutoRegistration not a boolean", "POST", "/cacertificate?allowAutoRegistration=1", `{"caCertificate":"x"}`, 400, "InvalidRequestException", ""},
		{"fail/RegisterCertificate certificatePem missing", "POST", "/certificate/register", `{"caCertificatePem":"x"}`, 400, "InvalidRequestException", ""},
		{"fail/RegisterCertificate setAsActive not a boolean", "POST", "/certificate/register?setAsActive=on", `{"certificatePem":"x"}`, 400, "InvalidRequestException", ""},
		{"fail/ListCACertificates pageSize not an integer", "GET", "/cacertificates?pageSize=ten", "", 400, "InvalidRequestException", ""},
		{"fail/ListCertificatesByCA isAscendingOrder not a boolean", "GET", "/certificates-by-ca/" + caID + "?isAscendingOrder=yes", "", 400, "InvalidRequestException", ""},
		{"ok/ListCertificatesByCA empty", "GET", "/certificates-by-ca/" + caID, "", 200, "", `{"certificates":[]}`},
		{"ok/DeleteRegistrationCode", "DELETE", "/registrationcode", "", 200, "", "{}"},
		{"fail/DeleteRegistrationCode none", "DELETE", "/registrationcode", "", 404, "ResourceNotFoundException", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(e.KeyA, tt.method, tt.target, tt.body)
			if r.status != tt.status || r.code != tt.code {
				t.Fatalf("got %d %s %s, want %d %s", r.status, r.code, r.body, tt.status, tt.code)
			}
			if tt.code == "" && string(r.body) != tt.wantBody {
				t.Errorf("body %q, want %q", r.body, tt.wantBody)
			}
			if tt.code == "" && tt.wantBody == "" && r.contentLength != "0" {
				t.Errorf("Content-Length %q, want 0", r.contentLength)
			}
		})
	}
}
