package fleetcert_test

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// The admission view and AdmitDevice are one rule: for every query, the
// view admits exactly what AdmitDevice admits, by the same registration,
// after loading and after applying the feed's changes; it never admits
// what AdmitDevice refuses.
func TestAdmissionViewAgreesWithAdmitDevice(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	registered := func(st fleetcert.Status, scopes ...fleetcert.Scope) *testpki.Cert {
		c := testpki.Leaf(t)
		for _, s := range scopes {
			if _, err := reg.RegisterCertificateWithoutCA(ctx, s, c.PEM, st); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	id := func(c *testpki.Cert) string { return fleetcert.CertificateID(c.Cert.Raw) }
	active := registered(fleetcert.StatusActive, scope)
	inactive := registered(fleetcert.StatusInactive, scope)
	revoked := registered(fleetcert.StatusActive, scope)
	if err := reg.UpdateCertificate(ctx, scope, id(revoked), fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	transferring := registered(fleetcert.StatusInactive, scope)
	if _, err := reg.TransferCertificate(ctx, scope, id(transferring), otherAccount.AccountID, ""); err != nil {
		t.Fatal(err)
	}
	shared := registered(fleetcert.StatusActive, scope, otherAccount)
	otherOnly := registered(fleetcert.StatusActive, otherAccount)
	unknown := testpki.Leaf(t)
	// Changed after the view loads.
	toRevoke := registered(fleetcert.StatusActive, scope)
	toActivate := registered(fleetcert.StatusInactive, scope)
	toDelete := registered(fleetcert.StatusInactive, scope)
	var later *testpki.Cert // registered after the view loads

	check := func(t *testing.T, v *fleetcert.AdmissionView) {
		t.Helper()
		certs := []*testpki.Cert{active, inactive, revoked, transferring, shared, otherOnly, unknown, toRevoke, toActivate, toDelete}
		if later != nil {
			certs = append(certs, later)
		}
		for _, c := range certs {
			for _, q := range []fleetcert.DeviceQuery{
				{Region: scope.Region, DefaultAccountID: scope.AccountID},
				{Region: scope.Region},
				{Region: scope.Region, AccountID: scope.AccountID},
				{Region: scope.Region, AccountID: otherAccount.AccountID},
				{Region: "eu-central-1", DefaultAccountID: scope.AccountID},
			} {
				q.Chain = []*x509.Certificate{c.Cert}
				want, err := reg.AdmitDevice(ctx, q)
				var refusal *fleetcert.DeviceRefusal
				if err != nil && !errors.As(err, &refusal) {
					t.Fatal(err)
				}
				got, ok := v.Admit(q)
				switch {
				case ok != (err == nil):
					t.Errorf("certificate %.8s, query %+v: view admits %v, AdmitDevice %v", id(c), q, ok, err)
				case ok && (got.ID != want.ID || got.Scope != want.Scope || !got.NotAfter.Equal(want.NotAfter) || got.Mode != want.Mode):
					t.Errorf("certificate %.8s: view admits by %+v, AdmitDevice by %+v", id(c), *got, *want)
				}
				if ok && !v.Active(got.Scope, got.ID) {
					t.Errorf("certificate %.8s: view admits the device but does not hold it ACTIVE in %v", id(c), got.Scope)
				}
			}
		}
	}

	v := reg.NewAdmissionView()
	head, err := v.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := reg.ChangesHead(ctx); head != h {
		t.Fatalf("Load returned head %d, want the feed's %d", head, h)
	}
	t.Run("loaded", func(t *testing.T) { check(t, v) })

	if err := reg.UpdateCertificate(ctx, scope, id(toRevoke), fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if err := reg.UpdateCertificate(ctx, scope, id(toActivate), fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteCertificate(ctx, scope, id(toDelete), false); err != nil {
		t.Fatal(err)
	}
	later = registered(fleetcert.StatusActive, scope)
	chs, err := reg.Changes(ctx, head, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 4 {
		t.Fatalf("%d changes after the head, want 4", len(chs))
	}
	for i := range chs {
		if err := v.Apply(ctx, &chs[i]); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("applied", func(t *testing.T) { check(t, v) })

	// Both decide by the Registry's clock.
	clk.advance(400 * 24 * time.Hour)
	t.Run("expired", func(t *testing.T) {
		if _, ok := v.Admit(fleetcert.DeviceQuery{Chain: []*x509.Certificate{active.Cert}, Region: scope.Region, DefaultAccountID: scope.AccountID}); ok {
			t.Fatal("the view admits an expired certificate")
		}
		check(t, v)
	})
	clk.advance(-400*24*time.Hour - 2*time.Hour)
	t.Run("not-yet-valid", func(t *testing.T) {
		if _, ok := v.Admit(fleetcert.DeviceQuery{Chain: []*x509.Certificate{active.Cert}, Region: scope.Region, AccountID: scope.AccountID}); ok {
			t.Fatal("the view admits a certificate not yet valid")
		}
		check(t, v)
	})
	t.Run("active", func(t *testing.T) {
		for _, tc := range []struct {
			scope fleetcert.Scope
			c     *testpki.Cert
			want  bool
		}{
			{scope, active, true},
			{scope, toActivate, true},
			{otherAccount, shared, true},
			{scope, toRevoke, false},
			{scope, toDelete, false},
			{scope, inactive, false},
			{otherAccount, active, false},
			{scope, unknown, false},
		} {
			if got := v.Active(tc.scope, id(tc.c)); got != tc.want {
				t.Errorf("Active(%v, %.8s) = %v, want %v", tc.scope, id(tc.c), got, tc.want)
			}
		}
	})
}

// The feed is pruned by age through the Registry; the head stays.
func TestRegistryPruneChanges(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	if _, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Hour)
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	head, err := reg.ChangesHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := reg.PruneChanges(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("PruneChanges(1h) = %d, %v; want 1", n, err)
	}
	if _, err := reg.Changes(ctx, 0, 10); !errors.Is(err, fleetcert.ErrChangesPruned) {
		t.Fatalf("Changes(0) after pruning: %v, want ErrChangesPruned", err)
	}
	chs, err := reg.Changes(ctx, head-1, 10)
	if err != nil || len(chs) != 1 || chs[0].CertificateID != c.ID {
		t.Fatalf("Changes(%d) = %+v, %v; want the newer registration", head-1, chs, err)
	}
	if h, err := reg.ChangesHead(ctx); err != nil || h != head {
		t.Fatalf("ChangesHead after pruning = %d, %v; want %d", h, err, head)
	}
}

// TestAdmissionViewStatusFromChange: a status update of a registration the
// view holds is taken from the change, without reading the store (a bulk
// job's million changes); a change of a registration it does not hold
// reads the store.
func TestAdmissionViewStatusFromChange(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{CommonName: "v"}).PEM, fleetcert.StatusActive)
	must(t, err)
	v := reg.NewAdmissionView()
	_, err = v.Load(ctx)
	must(t, err)
	if !v.Active(scope, c.ID) {
		t.Fatal("loaded view: not ACTIVE")
	}
	// The store still says ACTIVE: only the change can make the view say
	// otherwise.
	must(t, v.Apply(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: scope, CertificateID: c.ID,
		OldStatus: fleetcert.StatusActive, NewStatus: fleetcert.StatusRevoked}))
	if v.Active(scope, c.ID) {
		t.Error("after a change to REVOKED the view holds it ACTIVE")
	}
	// Another scope's registration is not in the view: the store is read.
	must(t, v.Apply(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: otherScope, CertificateID: c.ID,
		OldStatus: fleetcert.StatusInactive, NewStatus: fleetcert.StatusActive}))
	if !v.Active(scope, c.ID) || v.Active(otherScope, c.ID) {
		t.Error("a change of a registration the view does not hold was not read from the store")
	}
}

// TestAdmissionViewRegistrationFromChange: a certificate's first
// registration, carried by its change (this process's commit), enters the
// view without a read of the store; a later registration of a certificate
// the view holds is read from the store with the others. A registration
// made through the Registry comes with its change.
func TestAdmissionViewRegistrationFromChange(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	v := reg.NewAdmissionView()
	_, err := v.Load(ctx)
	must(t, err)
	// Never stored: only the change can bring it into the view.
	c := testpki.Leaf(t)
	id := fleetcert.CertificateID(c.Cert.Raw)
	carried := &fleetcert.Certificate{Scope: scope, ID: id, Status: fleetcert.StatusActive, Mode: fleetcert.ModeDefault,
		NotBefore: c.Cert.NotBefore, NotAfter: c.Cert.NotAfter}
	must(t, v.Apply(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated, Scope: scope, CertificateID: id,
		NewStatus: fleetcert.StatusActive, Registration: carried}))
	q := fleetcert.DeviceQuery{Chain: []*x509.Certificate{c.Cert}, Region: scope.Region, AccountID: scope.AccountID}
	if got, ok := v.Admit(q); !ok || got.Scope != scope || got.ID != id {
		t.Fatalf("after its change with the registration: Admit = %+v, %v; want it admitted", got, ok)
	}
	// The view holds one: a second, in another account, is read from the
	// store, which has neither.
	other := *carried
	other.Scope = otherAccount
	must(t, v.Apply(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated, Scope: otherAccount, CertificateID: id,
		NewStatus: fleetcert.StatusActive, Registration: &other}))
	if v.Len() != 0 {
		t.Errorf("a second registration was not read from the store: the view holds %d certificates, want 0", v.Len())
	}

	// Through the Registry: the change read carries the registration.
	head, err := reg.ChangesHead(ctx)
	must(t, err)
	r, err := reg.RegisterCertificateWithoutCA(ctx, scope, c.PEM, fleetcert.StatusActive)
	must(t, err)
	chs, err := reg.Changes(ctx, head, 10)
	must(t, err)
	if len(chs) != 1 || chs[0].Registration == nil || chs[0].Registration.ID != r.ID || chs[0].Registration.Mode != fleetcert.ModeSNIOnly ||
		!chs[0].Registration.NotAfter.Equal(r.NotAfter) || chs[0].Registration.Status != fleetcert.StatusActive {
		t.Fatalf("the registration's change: %+v; want it with its registration", chs)
	}
}

// A certificate's registrations read in different pages of Load (one
// before 5,000 others, one after) are both in the view: Load adds each page
// to what the pages before brought.
func TestAdmissionViewLoadAcrossPages(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	shared := testpki.Leaf(t)
	if _, err := reg.RegisterCertificateWithoutCA(ctx, scope, shared.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	key := testpki.Leaf(t).Key
	const others = 5100 // more than a page of Load
	var batch []*x509.Certificate
	for i := range others {
		batch = append(batch, testpki.New(t, testpki.Options{Key: key}).Cert)
		if len(batch) == fleetcert.MaxImportBatch || i == others-1 {
			if _, err := reg.ImportCertificates(ctx, scope, fleetcert.ImportCertificatesInput{Certificates: batch, Status: fleetcert.StatusActive}); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if _, err := reg.RegisterCertificateWithoutCA(ctx, otherAccount, shared.PEM, fleetcert.StatusInactive); err != nil {
		t.Fatal(err)
	}
	v := reg.NewAdmissionView()
	if _, err := v.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := v.Len(), others+1; got != want {
		t.Fatalf("view holds %d certificates, want %d", got, want)
	}
	id := fleetcert.CertificateID(shared.Cert.Raw)
	if !v.Active(scope, id) {
		t.Error("the registration read in the first page is missing or not ACTIVE")
	}
	if v.Active(otherAccount, id) {
		t.Error("the INACTIVE registration read in the last page is ACTIVE in the view")
	}
	// A device naming each account gets that account's registration.
	chain := []*x509.Certificate{shared.Cert}
	if c, ok := v.Admit(fleetcert.DeviceQuery{Chain: chain, Region: scope.Region, AccountID: scope.AccountID}); !ok || c.Scope != scope {
		t.Errorf("Admit naming %s: %+v, %v; want its ACTIVE registration", scope.AccountID, c, ok)
	}
	if c, ok := v.Admit(fleetcert.DeviceQuery{Chain: chain, Region: scope.Region, AccountID: otherAccount.AccountID}); ok {
		t.Errorf("Admit naming %s admitted %+v; its registration is INACTIVE", otherAccount.AccountID, c)
	}
}

// A certificate registered in two accounts, then in one, then in none, and
// in two again: the view follows each change, and Len counts certificates.
func TestAdmissionViewRegistrationsComeAndGo(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	c := testpki.Leaf(t)
	id := fleetcert.CertificateID(c.Cert.Raw)
	chain := []*x509.Certificate{c.Cert}
	single := testpki.Leaf(t) // registered once throughout
	for _, s := range []fleetcert.Scope{scope, otherAccount} {
		if _, err := reg.RegisterCertificateWithoutCA(ctx, s, c.PEM, fleetcert.StatusActive); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.RegisterCertificateWithoutCA(ctx, scope, single.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	v := reg.NewAdmissionView()
	head, err := v.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// apply applies the changes since the last call.
	apply := func() {
		t.Helper()
		chs, err := reg.Changes(ctx, head, 100)
		if err != nil {
			t.Fatal(err)
		}
		for i := range chs {
			if err := v.Apply(ctx, &chs[i]); err != nil {
				t.Fatal(err)
			}
			head = chs[i].Seq
		}
	}
	// want checks which accounts' registrations of c the view holds ACTIVE
	// and admits a device naming them.
	want := func(step string, in map[fleetcert.Scope]bool, certificates int) {
		t.Helper()
		for _, s := range []fleetcert.Scope{scope, otherAccount} {
			if got := v.Active(s, id); got != in[s] {
				t.Errorf("%s: Active(%s) = %v, want %v", step, s.AccountID, got, in[s])
			}
			got, ok := v.Admit(fleetcert.DeviceQuery{Chain: chain, Region: s.Region, AccountID: s.AccountID})
			if ok != in[s] || ok && got.Scope != s {
				t.Errorf("%s: Admit naming %s: %+v, %v; want %v", step, s.AccountID, got, ok, in[s])
			}
		}
		if _, ok := v.Admit(fleetcert.DeviceQuery{Chain: []*x509.Certificate{single.Cert}, Region: scope.Region, AccountID: scope.AccountID}); !ok {
			t.Errorf("%s: the certificate registered once is not admitted", step)
		}
		if got := v.Len(); got != certificates {
			t.Errorf("%s: Len() = %d, want %d", step, got, certificates)
		}
	}
	want("loaded", map[fleetcert.Scope]bool{scope: true, otherAccount: true}, 2)

	must(t, reg.UpdateCertificate(ctx, otherAccount, id, fleetcert.StatusInactive))
	apply()
	want("one deactivated", map[fleetcert.Scope]bool{scope: true}, 2)

	must(t, reg.DeleteCertificate(ctx, otherAccount, id, false))
	apply()
	want("one deleted", map[fleetcert.Scope]bool{scope: true}, 2)

	must(t, reg.UpdateCertificate(ctx, scope, id, fleetcert.StatusInactive))
	must(t, reg.DeleteCertificate(ctx, scope, id, false))
	apply()
	want("both deleted", nil, 1)

	for _, s := range []fleetcert.Scope{otherAccount, scope} {
		if _, err := reg.RegisterCertificateWithoutCA(ctx, s, c.PEM, fleetcert.StatusActive); err != nil {
			t.Fatal(err)
		}
	}
	apply()
	want("registered again in both", map[fleetcert.Scope]bool{scope: true, otherAccount: true}, 2)
	must(t, reg.UpdateCertificate(ctx, scope, id, fleetcert.StatusRevoked))
	apply()
	want("one revoked", map[fleetcert.Scope]bool{otherAccount: true}, 2)
}

// A view holds a certificate registered once in under 100 bytes of heap
// (a map entry of 56 bytes and the map's spare room); with a slice of
// registrations for each certificate it took 116.
func TestAdmissionViewMemory(t *testing.T) {
	const n = 200_000
	reg, _ := mustOpenRegistry(t)
	v := reg.NewAdmissionView()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	notBefore := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		fleetcert.AddToView(v, &fleetcert.Certificate{
			Scope: scope, ID: fleetcert.CertificateID(binary.BigEndian.AppendUint64(nil, uint64(i))),
			Status: fleetcert.StatusActive, Mode: fleetcert.ModeDefault,
			NotBefore: notBefore, NotAfter: notBefore.AddDate(1, 0, 0),
		})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if v.Len() != n {
		t.Fatalf("view holds %d certificates, want %d", v.Len(), n)
	}
	perCertificate := float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc)) / n
	t.Logf("%.0f bytes of heap per certificate", perCertificate)
	if perCertificate >= 100 {
		t.Errorf("the view holds %.0f bytes of heap per certificate, want under 100", perCertificate)
	}
	runtime.KeepAlive(v)
}
