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

// SelectRegistration is AWS's certificateMode rule: SNI names the account;
// without it, DEFAULT-mode registrations first, then the default
// account's, and never another account's SNI_ONLY copy.
func TestSelectRegistration(t *testing.T) {
	type reg struct {
		account string
		region  string
		mode    fleetcert.CertificateMode
	}
	const a, b, d = "111111111111", "222222222222", "999999999999" // d: the default account
	def, sni := fleetcert.ModeDefault, fleetcert.ModeSNIOnly
	tests := []struct {
		name   string
		sni    string // account named by SNI
		regs   []reg
		want   int
		reason string
		noDflt bool // no default account configured
	}{
		{"ok/sni-names-account", b, []reg{{a, "r", sni}, {b, "r", sni}}, 1, "", false},
		{"ok/sni-names-default-mode-account", a, []reg{{a, "r", def}}, 0, "", false},
		{"fail/sni-names-other-account", b, []reg{{a, "r", def}}, -1, fleetcert.ReasonUnregistered, false},
		{"fail/sni-names-account-other-region", a, []reg{{a, "x", sni}}, -1, fleetcert.ReasonUnregistered, false},
		{"ok/no-sni-default-mode", "", []reg{{a, "r", def}}, 0, "", false},
		{"ok/no-sni-default-mode-any-account", "", []reg{{b, "r", def}}, 0, "", true},
		{"fail/no-sni-sni-only-other-account", "", []reg{{a, "r", sni}}, -1, fleetcert.ReasonUnregistered, false},
		{"ok/no-sni-sni-only-default-account", "", []reg{{a, "r", sni}, {d, "r", sni}}, 1, "", false},
		{"fail/no-sni-sni-only-without-default-account", "", []reg{{d, "r", sni}}, -1, fleetcert.ReasonUnregistered, true},
		// Another account's copy never competes with a DEFAULT-mode
		// registration, even the default account's.
		{"ok/default-mode-wins-over-default-account-copy", "", []reg{{d, "r", sni}, {a, "r", def}}, 1, "", false},
		{"ok/default-mode-in-default-account", "", []reg{{d, "r", def}, {b, "r", sni}}, 0, "", false},
		{"fail/default-mode-in-two-accounts", "", []reg{{a, "r", def}, {b, "r", def}}, -1, fleetcert.ReasonAmbiguousAccount, false},
		{"fail/other-region-only", "", []reg{{a, "x", def}, {d, "x", sni}}, -1, fleetcert.ReasonUnregistered, false},
		{"fail/none", "", nil, -1, fleetcert.ReasonUnregistered, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := fleetcert.DeviceQuery{Region: "r", AccountID: tt.sni, DefaultAccountID: d}
			if tt.noDflt {
				q.DefaultAccountID = ""
			}
			got, reason := fleetcert.SelectRegistration(q, tt.regs, func(r reg) (fleetcert.Scope, fleetcert.CertificateMode) {
				return fleetcert.Scope{AccountID: r.account, Region: r.region}, r.mode
			})
			if got != tt.want || reason != tt.reason {
				t.Fatalf("got %d %q, want %d %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestAdmitDevice(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	// The default account is scope's: its SNI_ONLY registrations serve
	// devices that name no account, as in fleetcert's quick start.
	q := func(c *testpki.Cert, account string) fleetcert.DeviceQuery {
		return fleetcert.DeviceQuery{Chain: []*x509.Certificate{c.Cert}, Region: scope.Region, AccountID: account, DefaultAccountID: scope.AccountID}
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
	otherOnly := testpki.Leaf(t)
	if _, err := reg.RegisterCertificateWithoutCA(ctx, otherAccount, otherOnly.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		q      fleetcert.DeviceQuery
		reason string
	}{
		{"ok/active", q(active, ""), ""},
		{"ok/active-named-account", q(active, scope.AccountID), ""},
		{"fail/other-account-named", q(active, otherAccount.AccountID), fleetcert.ReasonUnregistered},
		{"fail/other-region", fleetcert.DeviceQuery{Chain: []*x509.Certificate{active.Cert}, Region: "eu-central-1", DefaultAccountID: scope.AccountID}, fleetcert.ReasonUnregistered},
		{"fail/unregistered", q(testpki.Leaf(t), ""), fleetcert.ReasonUnregistered},
		{"fail/inactive", q(registered(fleetcert.StatusInactive), ""), fleetcert.ReasonInactive},
		{"fail/revoked", q(registered(fleetcert.StatusRevoked), ""), fleetcert.ReasonRevoked},
		{"fail/pending-transfer", q(transferring, scope.AccountID), fleetcert.ReasonPendingTransfer},
		// Without SNI, another account's copy of an SNI_ONLY certificate
		// neither competes nor serves.
		{"ok/shared-without-sni-is-the-default-account's", q(shared, ""), ""},
		{"ok/shared-with-account", q(shared, otherAccount.AccountID), ""},
		{"fail/sni-only-in-another-account-needs-sni", q(otherOnly, ""), fleetcert.ReasonUnregistered},
		{"ok/sni-only-in-another-account-with-sni", q(otherOnly, otherAccount.AccountID), ""},
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

// What one account registers never changes whether another account's
// device is admitted or where it is registered: the attacks of issue 12.
func TestDeviceAccountIsolation(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	clk.t = time.Now().UTC()
	victim, attacker := scope, otherAccount
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Victim fleet CA"})
	victimCA := registerCA(t, reg, victim, caCert, fleetcert.RegisterCAInput{SetAsActive: true, AllowAutoRegistration: true})
	// The attacker registers the same public CA PEM in SNI_ONLY mode, with
	// auto-registration, and is even the default account.
	registerCA(t, reg, attacker, caCert, fleetcert.RegisterCAInput{Mode: fleetcert.ModeSNIOnly, SetAsActive: true, AllowAutoRegistration: true})
	noSNI := func(c *testpki.Cert) fleetcert.DeviceQuery {
		return fleetcert.DeviceQuery{Chain: []*x509.Certificate{c.Cert, caCert.Cert}, Region: victim.Region, DefaultAccountID: attacker.AccountID}
	}

	t.Run("ok/jitr-lands-in-the-default-mode-owner", func(t *testing.T) {
		device := testpki.New(t, testpki.Options{Parent: caCert})
		ar, err := reg.AutoRegisterDevice(ctx, noSNI(device))
		if err != nil || ar == nil || ar.Certificate.AccountID != victim.AccountID || ar.CA.ID != victimCA.ID {
			t.Fatalf("auto-registered %+v (%v), want in %s", ar, err, victim.AccountID)
		}
		if _, err := reg.DescribeCertificate(ctx, attacker, ar.Certificate.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("the attacker's account holds the device: %v", err)
		}
	})
	t.Run("ok/jitr-off-at-the-owner-registers-nowhere", func(t *testing.T) {
		if err := reg.UpdateCACertificate(ctx, victim, victimCA.ID, fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "DISABLE"}); err != nil {
			t.Fatal(err)
		}
		defer reg.UpdateCACertificate(ctx, victim, victimCA.ID, fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "ENABLE"})
		device := testpki.New(t, testpki.Options{Parent: caCert})
		if ar, err := reg.AutoRegisterDevice(ctx, noSNI(device)); err != nil || ar != nil {
			t.Fatalf("registered %+v (%v) though the owner disabled auto-registration", ar, err)
		}
		if ok, _ := reg.AutoRegistrationCandidate(ctx, noSNI(device)); !ok {
			t.Fatal("the owner's CA is no candidate") // refused at CONNECT, not in the handshake
		}
		if _, err := reg.DescribeCertificate(ctx, attacker, fleetcert.CertificateID(device.Cert.Raw)); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Fatalf("the device landed in the attacker's account: %v", err)
		}
	})
	t.Run("ok/attacker-copy-of-device-certificate-changes-nothing", func(t *testing.T) {
		device := testpki.New(t, testpki.Options{Parent: caCert})
		if _, err := reg.RegisterCertificate(ctx, victim, fleetcert.RegisterCertificateInput{CertificatePEM: device.PEM, CACertificatePEM: caCert.PEM, Status: fleetcert.StatusActive}); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.RegisterCertificateWithoutCA(ctx, attacker, device.PEM, fleetcert.StatusActive); err != nil {
			t.Fatal(err)
		}
		c, err := reg.AdmitDevice(ctx, noSNI(device))
		if err != nil || c.AccountID != victim.AccountID {
			t.Fatalf("admitted %+v (%v), want in %s", c, err, victim.AccountID)
		}
	})
	// With SNI, each account reaches its own registration only.
	t.Run("ok/sni-reaches-the-named-account", func(t *testing.T) {
		device := testpki.New(t, testpki.Options{Parent: caCert})
		q := noSNI(device)
		q.AccountID = attacker.AccountID
		ar, err := reg.AutoRegisterDevice(ctx, q)
		if err != nil || ar == nil || ar.Certificate.AccountID != attacker.AccountID {
			t.Fatalf("auto-registered %+v (%v), want in the named account", ar, err)
		}
	})
}

func TestAutoRegisterDevice(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	clk.t = time.Now().UTC()
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "JITR CA"})
	ca := registerCA(t, reg, scope, caCert, fleetcert.RegisterCAInput{SetAsActive: true, AllowAutoRegistration: true})
	device := testpki.New(t, testpki.Options{Parent: caCert})
	q := fleetcert.DeviceQuery{Chain: []*x509.Certificate{device.Cert, caCert.Cert}, Region: scope.Region, DefaultAccountID: scope.AccountID}

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
