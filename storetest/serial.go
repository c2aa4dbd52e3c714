package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// testCertificatesBySerial: the OCSP responder's lookup finds every
// registration with a serial, in every account and region, with every field
// (Serial kept as given), and nothing else; an update keeps the serial.
func testCertificatesBySerial(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	serial := []byte{0x7f, 0x01, 0x02}
	a := newCertificate(scopeA, "a", baseTime)
	b := newCertificate(scopeB, "b", baseTime.Add(time.Millisecond))
	other := newCertificate(scopeA, "other", baseTime)
	none := newCertificate(scopeA, "none", baseTime) // no serial known
	a.Serial, b.Serial, other.Serial = serial, serial, []byte{0x7f, 0x01}
	create(t, s, a, b, other, none)
	a.Status = fleetcert.StatusRevoked
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.UpdateCertificate(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	bySerial := func(serial []byte) []*fleetcert.Certificate {
		t.Helper()
		var got []*fleetcert.Certificate
		err := s.View(ctx, func(tx fleetcert.Tx) error {
			var err error
			got, err = tx.CertificatesBySerial(ctx, serial)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := bySerial(serial)
	if len(got) != 2 {
		t.Fatalf("got %d registrations, want 2: %v", len(got), ids(got))
	}
	equalCertificate(t, got[0], a)
	equalCertificate(t, got[1], b)
	if got := bySerial([]byte{0x7f}); len(got) != 0 {
		t.Fatalf("a prefix of serials matched: %v", ids(got))
	}
	if got := mustGet(t, s, scopeA, none.ID); got.Serial != nil {
		t.Fatalf("no serial stored, got %x", got.Serial)
	}
}

// testUnusableCertificatesByIssuer: what a CRL lists is every registration
// of the issuer that is not ACTIVE, in every scope, in Seq order, page
// after page, and follows status updates.
func testUnusableCertificatesByIssuer(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	issuer, otherIssuer := []byte("issuer X"), []byte("issuer Y")
	statuses := []fleetcert.Status{fleetcert.StatusActive, fleetcert.StatusRevoked, fleetcert.StatusInactive,
		fleetcert.StatusPendingTransfer, fleetcert.StatusPendingActivation}
	var all []*fleetcert.Certificate
	for i := range 15 {
		c := newCertificate([]fleetcert.Scope{scopeA, scopeB}[i%2], fmt.Sprint("c", i), baseTime.Add(time.Duration(i)*time.Millisecond))
		c.Status = statuses[i%len(statuses)]
		c.Issuer = issuer
		if i%7 == 6 {
			c.Issuer = otherIssuer
		}
		c.Serial = []byte{byte(i + 1)}
		all = append(all, c)
	}
	create(t, s, all...)
	want := func() []string {
		var w []string
		for _, c := range all {
			if string(c.Issuer) == string(issuer) && c.Status != fleetcert.StatusActive {
				w = append(w, c.ID[:8])
			}
		}
		return w
	}
	read := func(size int) []string {
		t.Helper()
		var got []*fleetcert.Certificate
		err := s.View(ctx, func(tx fleetcert.Tx) error {
			for after := int64(0); ; {
				page, err := tx.UnusableCertificatesByIssuer(ctx, issuer, after, size)
				if err != nil {
					return err
				}
				if len(page) > size {
					return fmt.Errorf("page of %d, limit %d", len(page), size)
				}
				for _, c := range page {
					if c.PEM != "" {
						return fmt.Errorf("%s: PEM returned", c.ID)
					}
					if c.Seq <= after {
						return fmt.Errorf("%s: seq %d not after %d", c.ID, c.Seq, after)
					}
					after = c.Seq
				}
				got = append(got, page...)
				if len(page) < size {
					return nil
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids(got)
	}
	for _, size := range []int{1, 4, 100} {
		if got, w := read(size), want(); !slices.Equal(got, w) {
			t.Fatalf("pages of %d: got %v, want %v", size, got, w)
		}
	}
	// An ACTIVE one revoked joins, an INACTIVE one activated leaves.
	all[0].Status = fleetcert.StatusRevoked
	all[2].Status = fleetcert.StatusActive
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.UpdateCertificate(ctx, all[0]); err != nil {
			return err
		}
		return tx.UpdateCertificate(ctx, all[2])
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, w := read(3), want(); !slices.Equal(got, w) {
		t.Fatalf("after updates: got %v, want %v", got, w)
	}
}
