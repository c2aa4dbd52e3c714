package fleetcert_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func refusal(err error) string {
	var r *fleetcert.DeviceRefusal
	if errors.As(err, &r) {
		return r.Reason
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestAdmitDevice(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	q := func(c *testpki.Cert, account string) fleetcert.DeviceQuery {
		return fleetcert.DeviceQuery{Chain: []*x509.Certificate{c.Cert}, Region: scope.Region, AccountID: account}
	}
	registered := func(st fleetcert.Status) *testpki.Cert {
		c := testpki.Leaf(t)
		if _, err := reg.RegisterCertificateWithoutCA(ctx, scope, c.PEM, st); err != nil {
			t.Fatal(err)
		}
		return c
	}
	active := registered(fleetcert.StatusActive)
	transferring := registered(fleetcert.StatusInactive)
	if _, err := reg.TransferCertificate(ctx, scope, fleetcert.CertificateID(transferring.Cert.Raw), otherAccount.AccountID, ""); err != nil {
		t.Fatal(err)
	}
	shared := testpki.Leaf(t)
	for _, s := range []fleetcert.Scope{scope, otherAccount} {
		if _, err := reg.RegisterCertificateWithoutCA(ctx, s, shared.PEM, fleetcert.StatusActive); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		q      fleetcert.DeviceQuery
		reason string
	}{
		{"ok/active", q(active, ""), ""},
		{"ok/active-named-account", q(active, scope.AccountID), ""},
		{"fail/other-account-named", q(active, otherAccount.AccountID), fleetcert.ReasonUnregistered},
		{"fail/other-region", fleetcert.DeviceQuery{Chain: []*x509.Certificate{active.Cert}, Region: "eu-central-1"}, fleetcert.ReasonUnregistered},
		{"fail/unregistered", q(testpki.Leaf(t), ""), fleetcert.ReasonUnregistered},
		{"fail/inactive", q(registered(fleetcert.StatusInactive), ""), fleetcert.ReasonInactive},
		{"fail/revoked", q(registered(fleetcert.StatusRevoked), ""), fleetcert.ReasonRevoked},
		{"fail/pending-transfer", q(transferring, scope.AccountID), fleetcert.ReasonPendingTransfer},
		{"fail/ambiguous", q(shared, ""), fleetcert.ReasonAmbiguousAccount},
		{"ok/shared-with-account", q(shared, otherAccount.AccountID), ""},
		{"fail/no-certificate", fleetcert.DeviceQuery{Region: scope.Region}, fleetcert.ReasonNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reg.AdmitDevice(ctx, tt.q)
			if got := refusal(err); got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
		})
	}
	// An ACTIVE certificate past its notAfter is refused.
	clk.advance(400 * 24 * time.Hour)
	if _, err := reg.AdmitDevice(ctx, q(active, "")); refusal(err) != fleetcert.ReasonExpired {
		t.Fatalf("expired: %v", err)
	}
}

func TestAutoRegisterDevice(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	clk.t = time.Now().UTC()
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "JITR CA"})
	ca := registerCA(t, reg, scope, caCert, fleetcert.RegisterCAInput{SetAsActive: true, AllowAutoRegistration: true})
	device := testpki.New(t, testpki.Options{Parent: caCert})
	q := fleetcert.DeviceQuery{Chain: []*x509.Certificate{device.Cert, caCert.Cert}, Region: scope.Region}

	before := reg.ChangeSignal()
	ar, err := reg.AutoRegisterDevice(ctx, q)
	if err != nil || ar == nil {
		t.Fatalf("auto-register: %+v %v", ar, err)
	}
	if ar.Certificate.Status != fleetcert.StatusPendingActivation || ar.Certificate.CACertificateID != ca.ID || ar.CA.ID != ca.ID {
		t.Fatalf("registered: %+v", ar.Certificate)
	}
	select {
	case <-before:
	default:
		t.Fatal("ChangeSignal did not fire on a committed registration")
	}
	if _, err := reg.AdmitDevice(ctx, q); refusal(err) != fleetcert.ReasonPendingActivation {
		t.Fatalf("admit PENDING_ACTIVATION: %v", err)
	}
	// Each later attempt announces it again, without a second record.
	again, err := reg.AutoRegisterDevice(ctx, q)
	if err != nil || again == nil || again.Certificate.ID != ar.Certificate.ID {
		t.Fatalf("second attempt: %+v %v", again, err)
	}
	if err := reg.UpdateCertificate(ctx, scope, ar.Certificate.ID, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AdmitDevice(ctx, q); err != nil {
		t.Fatalf("after activation: %v", err)
	}
	if again, _ := reg.AutoRegisterDevice(ctx, q); again != nil {
		t.Fatal("an ACTIVE certificate was announced again")
	}

	// Not eligible: no CA in the chain, a CA that did not sign it, auto-
	// registration disabled, CA inactive.
	other := testpki.New(t, testpki.Options{Parent: caCert})
	notEligible := func(name string, q fleetcert.DeviceQuery) {
		t.Helper()
		if ar, err := reg.AutoRegisterDevice(ctx, q); err != nil || ar != nil {
			t.Fatalf("%s: registered %+v (%v)", name, ar, err)
		}
	}
	notEligible("no CA in chain", fleetcert.DeviceQuery{Chain: []*x509.Certificate{other.Cert}, Region: scope.Region})
	notEligible("wrong CA in chain", fleetcert.DeviceQuery{Chain: []*x509.Certificate{other.Cert, testpki.New(t, testpki.Options{IsCA: true}).Cert}, Region: scope.Region})
	notEligible("other account", fleetcert.DeviceQuery{Chain: []*x509.Certificate{other.Cert, caCert.Cert}, Region: scope.Region, AccountID: otherAccount.AccountID})
	if err := reg.UpdateCACertificate(ctx, scope, ca.ID, fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "DISABLE"}); err != nil {
		t.Fatal(err)
	}
	notEligible("auto-registration disabled", fleetcert.DeviceQuery{Chain: []*x509.Certificate{other.Cert, caCert.Cert}, Region: scope.Region})
	if err := reg.UpdateCACertificate(ctx, scope, ca.ID, fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "ENABLE", NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	notEligible("CA inactive", fleetcert.DeviceQuery{Chain: []*x509.Certificate{other.Cert, caCert.Cert}, Region: scope.Region})
	if _, err := reg.DescribeCertificate(ctx, scope, fleetcert.CertificateID(other.Cert.Raw)); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("an ineligible device was registered: %v", err)
	}
}

func TestFindCertificates(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	caCert := testpki.New(t, testpki.Options{IsCA: true})
	ca := registerCA(t, reg, scope, caCert, fleetcert.RegisterCAInput{SetAsActive: true})
	var ids []string
	for i := 0; i < 12; i++ {
		clk.advance(time.Millisecond)
		in := fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM}
		if i%3 == 0 {
			in.Status = fleetcert.StatusActive
		}
		var c *fleetcert.Certificate
		var err error
		if i%2 == 0 {
			c, err = reg.RegisterCertificate(ctx, scope, in)
		} else {
			c, err = reg.RegisterCertificateWithoutCA(ctx, scope, in.CertificatePEM, in.Status)
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	count := func(f fleetcert.CertificateFilter) int {
		t.Helper()
		page, err := reg.FindCertificates(ctx, scope, f, fleetcert.ListOptions{PageSize: ptr(250)})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Certificates)
	}
	if n := count(fleetcert.CertificateFilter{Status: fleetcert.StatusActive}); n != 4 {
		t.Errorf("ACTIVE: %d", n)
	}
	if n := count(fleetcert.CertificateFilter{CACertificateID: ca.ID}); n != 6 {
		t.Errorf("by CA: %d", n)
	}
	if n := count(fleetcert.CertificateFilter{CACertificateID: ca.ID, Status: fleetcert.StatusActive}); n != 2 {
		t.Errorf("by CA and ACTIVE: %d", n)
	}
	if n := count(fleetcert.CertificateFilter{IDPrefix: ids[5][:10]}); n != 1 {
		t.Errorf("by prefix: %d", n)
	}
	if n := count(fleetcert.CertificateFilter{IDPrefix: strings.ToUpper(ids[5][:10])}); n != 1 {
		t.Errorf("by upper-case prefix: %d", n)
	}
	for _, f := range []fleetcert.CertificateFilter{{Status: "NOPE"}, {CACertificateID: "xyz"}, {IDPrefix: "zz"}} {
		if _, err := reg.FindCertificates(ctx, scope, f, fleetcert.ListOptions{}); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
			t.Errorf("filter %+v: %v", f, err)
		}
	}
}
