package storetest

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// testProvisioning runs just-in-time provisioning through a Registry on
// the store: a template failing at its last step (after the certificate
// and the thing were written in the transaction) leaves nothing and no
// change; once the policy it names exists, one transaction writes the
// certificate, the thing, both attachments and the activation, each with
// its change.
func testProvisioning(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	reg := fleetcert.NewRegistry(s, nil)
	ca := testpki.New(t, testpki.Options{IsCA: true})
	body := `{"Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
		"Resources": {
			"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}},
			"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
			"zpolicy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "fleet"}}}}`
	caRec, err := reg.RegisterCACertificate(ctx, scopeA, fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly,
		SetAsActive: true, AllowAutoRegistration: true, RegistrationConfig: fleetcert.RegistrationConfig{TemplateBody: body}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := testpki.New(t, testpki.Options{Parent: ca, CommonName: "dev-1"})
	q := fleetcert.DeviceQuery{Chain: []*x509.Certificate{leaf.Cert, ca.Cert}, Region: scopeA.Region, AccountID: scopeA.AccountID}
	head, err := s.ChangesHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AutoRegisterDevice(ctx, q); fleetcert.ErrorCode(err) != fleetcert.ERegistrationFailure {
		t.Fatalf("missing policy: %v, want %s", err, fleetcert.ERegistrationFailure)
	}
	if after, _ := s.ChangesHead(ctx); after != head {
		t.Fatalf("a failed provisioning moved the feed from %d to %d", head, after)
	}
	err = s.View(ctx, func(tx fleetcert.Tx) error {
		if _, err := tx.Certificate(ctx, scopeA, fleetcert.CertificateID(leaf.Cert.Raw)); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Errorf("certificate left: %v", err)
		}
		if _, err := tx.Object(ctx, scopeA, fleetcert.ObjectThing, "dev-1"); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Errorf("thing left: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreatePolicy(ctx, scopeA, "fleet", `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}`, nil); err != nil {
		t.Fatal(err)
	}
	head, _ = s.ChangesHead(ctx)
	ar, err := reg.AutoRegisterDevice(ctx, q)
	if err != nil || ar == nil || ar.Status != fleetcert.StatusActive || ar.CA.ID != caRec.ID {
		t.Fatalf("provision: %+v %v", ar, err)
	}
	chs, err := s.Changes(ctx, head, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []fleetcert.ChangeKind
	for _, c := range chs {
		kinds = append(kinds, c.Kind)
	}
	want := []fleetcert.ChangeKind{fleetcert.ChangeCertificateCreated, fleetcert.ChangeObjectCreated, fleetcert.ChangeLinkCreated,
		fleetcert.ChangeLinkCreated, fleetcert.ChangeCertificateUpdated}
	if len(kinds) != len(want) {
		t.Fatalf("changes %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("changes %v, want %v", kinds, want)
		}
	}
}
