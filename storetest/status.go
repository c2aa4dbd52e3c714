package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// testUpdateCertificateStatus: UpdateCertificateStatus writes the four
// fields of a status change and nothing else, only while the stored
// CustomerVersion is the one given, and the status filter of a listing
// follows it.
func testUpdateCertificateStatus(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "status", baseTime)
	c.CACertificateID = certificateID("ca")
	same := newCertificate(scopeB, "status", baseTime) // the same id in another account
	create(t, s, c, same)

	u := *c
	u.Status = fleetcert.StatusRevoked
	u.LastModifiedDate = baseTime.Add(time.Hour + 7*time.Millisecond)
	u.CustomerVersion = 2
	u.GenerationID = "changed-generation"
	// Fields UpdateCertificateStatus must not write.
	u.PEM, u.Mode, u.CACertificateID = "changed", fleetcert.ModeSNIOnly, ""
	var ok bool
	err := s.Update(ctx, func(tx fleetcert.Tx) (err error) {
		ok, err = tx.UpdateCertificateStatus(ctx, &u, 1)
		return err
	})
	if err != nil || !ok {
		t.Fatalf("UpdateCertificateStatus = %v, %v; want true, nil", ok, err)
	}
	want := *c
	want.Status, want.LastModifiedDate, want.CustomerVersion, want.GenerationID =
		u.Status, u.LastModifiedDate, u.CustomerVersion, u.GenerationID
	equalCertificate(t, mustGet(t, s, scopeA, c.ID), &want)
	equalCertificate(t, mustGet(t, s, scopeB, same.ID), same)
	got := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Status: fleetcert.StatusRevoked, Limit: 10})
	if len(got) != 1 || got[0].ID != c.ID {
		t.Fatalf("REVOKED listing = %v, want [%s]", ids(got), c.ID[:8])
	}

	// StatusOnly: the fields a bulk job reads are those of the full listing.
	full := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, CACertificateID: c.CACertificateID, Ascending: true, Limit: 10})
	slim := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, CACertificateID: c.CACertificateID, Ascending: true, Limit: 10, StatusOnly: true})
	if len(full) != 1 || len(slim) != 1 {
		t.Fatalf("listings under the CA: %d and %d StatusOnly, want 1", len(full), len(slim))
	}
	if f, g := full[0], slim[0]; g.Scope != f.Scope || g.ID != f.ID || g.Status != f.Status || g.CustomerVersion != f.CustomerVersion ||
		!g.CreationDate.Equal(f.CreationDate) || g.Seq != f.Seq {
		t.Fatalf("StatusOnly listed %+v, want the fields of %+v", g, f)
	}
	after := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, CACertificateID: c.CACertificateID, Ascending: true, Limit: 10, StatusOnly: true,
		After: &fleetcert.Cursor{CreationDate: full[0].CreationDate, Seq: full[0].Seq}})
	if len(after) != 0 {
		t.Fatalf("StatusOnly after the last: %v", ids(after))
	}

	// Pages of StatusOnly walk certificates created in one millisecond
	// (registered in bulk) by their seq, each once, in order.
	var tied []*fleetcert.Certificate
	for i := range 5 {
		tc := newCertificate(scopeA, "tied-"+string(rune('a'+i)), baseTime.Add(time.Minute))
		tc.CACertificateID = certificateID("tied-ca")
		tied = append(tied, tc)
	}
	create(t, s, tied...)
	var walked []string
	var cursor *fleetcert.Cursor
	for range 10 {
		page := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, CACertificateID: certificateID("tied-ca"), Ascending: true,
			Limit: 2, StatusOnly: true, After: cursor})
		for _, c := range page {
			walked = append(walked, c.ID)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		cursor = &fleetcert.Cursor{CreationDate: last.CreationDate, Seq: last.Seq}
	}
	if len(walked) != len(tied) {
		t.Fatalf("StatusOnly pages of 2 walked %d certificates, want %d", len(walked), len(tied))
	}
	for i, c := range tied {
		if walked[i] != c.ID {
			t.Fatalf("StatusOnly pages walked %v, want the creation order", walked)
		}
	}

	// A stale version (someone changed it since it was read) writes nothing.
	stale := want
	stale.Status, stale.CustomerVersion = fleetcert.StatusInactive, 2
	err = s.Update(ctx, func(tx fleetcert.Tx) (err error) {
		ok, err = tx.UpdateCertificateStatus(ctx, &stale, 1)
		return err
	})
	if err != nil || ok {
		t.Fatalf("UpdateCertificateStatus from a stale version = %v, %v; want false, nil", ok, err)
	}
	equalCertificate(t, mustGet(t, s, scopeA, c.ID), &want)

	// A missing certificate: false, no error.
	missing := newCertificate(scopeA, "missing", baseTime)
	err = s.Update(ctx, func(tx fleetcert.Tx) (err error) {
		ok, err = tx.UpdateCertificateStatus(ctx, missing, 1)
		return err
	})
	if err != nil || ok {
		t.Fatalf("UpdateCertificateStatus of a missing certificate = %v, %v; want false, nil", ok, err)
	}

	// Not in a View.
	err = s.View(ctx, func(tx fleetcert.Tx) error {
		_, err := tx.UpdateCertificateStatus(ctx, &want, 2)
		return err
	})
	if err == nil {
		t.Fatal("UpdateCertificateStatus in a View succeeded")
	}
}
