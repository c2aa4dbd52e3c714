package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// batchSize is more than one statement of a store that writes a batch in
// statements of a bounded number of rows (SQLite's 256), and not a power of
// two, so that the last statements are smaller.
const batchSize = 256 + 64 + 3

// testUpdateCertificateStatuses: UpdateCertificateStatuses writes what
// UpdateCertificateStatus writes for each certificate, and reports, in
// order, which it wrote: not a stale version, a missing certificate, or a
// seq that is not the certificate's.
func testUpdateCertificateStatuses(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	var certs []*fleetcert.Certificate
	for i := range batchSize {
		c := newCertificate(scopeA, fmt.Sprintf("batch-%d", i), baseTime.Add(time.Duration(i)*time.Millisecond))
		c.CACertificateID = certificateID("batch-ca")
		certs = append(certs, c)
	}
	other := newCertificate(scopeB, "batch-0", baseTime) // the same id in another account
	create(t, s, certs...)
	create(t, s, other)

	modified := baseTime.Add(time.Hour + 3*time.Millisecond)
	us := make([]fleetcert.StatusUpdate, 0, batchSize+2)
	want := make([]bool, 0, batchSize+2)
	wantStored := make(map[string]*fleetcert.Certificate)
	for i, c := range certs {
		u := *mustGet(t, s, scopeA, c.ID)
		stored := u
		u.Status, u.LastModifiedDate, u.CustomerVersion, u.GenerationID =
			fleetcert.StatusRevoked, modified, u.CustomerVersion+1, fmt.Sprintf("generation-%d", i)
		u.PEM, u.Mode, u.CACertificateID = "changed", fleetcert.ModeSNIOnly, "" // not written
		from := stored.CustomerVersion
		switch i % 7 {
		case 3: // changed since it was read
			from = stored.CustomerVersion + 5
		case 5: // the seq of another certificate
			u.Seq = other.Seq
		}
		ok := i%7 != 3 && i%7 != 5
		if ok {
			stored.Status, stored.LastModifiedDate, stored.CustomerVersion, stored.GenerationID =
				u.Status, u.LastModifiedDate, u.CustomerVersion, u.GenerationID
		}
		wantStored[c.ID] = &stored
		us = append(us, fleetcert.StatusUpdate{Certificate: &u, FromVersion: from})
		want = append(want, ok)
	}
	missing := newCertificate(scopeA, "batch-missing", baseTime)
	missing.Seq = certs[0].Seq + 1_000_000
	us = append(us, fleetcert.StatusUpdate{Certificate: missing, FromVersion: 1})
	want = append(want, false)

	var got []bool
	err := s.Update(ctx, func(tx fleetcert.Tx) (err error) {
		got, err = tx.UpdateCertificateStatuses(ctx, us)
		return err
	})
	if err != nil {
		t.Fatalf("UpdateCertificateStatuses: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UpdateCertificateStatuses wrote\n %v\nwant\n %v", got, want)
	}
	for _, c := range certs {
		equalCertificate(t, mustGet(t, s, scopeA, c.ID), wantStored[c.ID])
	}
	equalCertificate(t, mustGet(t, s, scopeB, other.ID), other)
	revoked := listAll(t, s, fleetcert.CertificateQuery{Scope: scopeA, Status: fleetcert.StatusRevoked}, 100)
	if n := countTrue(want); len(revoked) != n {
		t.Fatalf("REVOKED listing has %d certificates, want %d", len(revoked), n)
	}

	// Rolled back with its transaction.
	errRollback := errors.New("rolled back")
	again := make([]fleetcert.StatusUpdate, 0, len(certs))
	for _, c := range certs {
		u := *mustGet(t, s, scopeA, c.ID)
		from := u.CustomerVersion
		u.Status, u.CustomerVersion = fleetcert.StatusInactive, from+1
		again = append(again, fleetcert.StatusUpdate{Certificate: &u, FromVersion: from})
	}
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		ok, err := tx.UpdateCertificateStatuses(ctx, again)
		if err != nil {
			return err
		}
		if n := countTrue(ok); n != len(again) {
			return fmt.Errorf("wrote %d of %d", n, len(again))
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update returned %v, want %v", err, errRollback)
	}
	for _, c := range certs {
		equalCertificate(t, mustGet(t, s, scopeA, c.ID), wantStored[c.ID])
	}

	// None, and not in a View.
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		ok, err := tx.UpdateCertificateStatuses(ctx, nil)
		if err == nil && len(ok) != 0 {
			err = fmt.Errorf("wrote %v", ok)
		}
		return err
	})
	if err != nil {
		t.Fatalf("UpdateCertificateStatuses of none: %v", err)
	}
	err = s.View(ctx, func(tx fleetcert.Tx) error {
		_, err := tx.UpdateCertificateStatuses(ctx, again[:1])
		return err
	})
	if err == nil {
		t.Fatal("UpdateCertificateStatuses in a View succeeded")
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// testAppendChanges: AppendChanges gives the changes ascending Seqs in
// their order, with none between them, and writes the audit entry of each
// that has an Operation, whatever mix of operations and actors the batch
// holds; all in the transaction.
func testAppendChanges(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	before := auditChange(scopeA, "single", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusInactive, baseTime)
	appendChanges(t, s, before)

	var chs []*fleetcert.Change
	for i := range batchSize {
		at := baseTime.Add(time.Second + time.Duration(i/100)*time.Millisecond)
		ch := auditChange(scopeA, fmt.Sprintf("batch-%d", i), "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, at)
		switch {
		case i%50 == 7: // no operation: a session announcement
			ch = &fleetcert.Change{Kind: fleetcert.ChangeSessionStarted, Scope: scopeB, CertificateID: ch.CertificateID,
				ClientID: fmt.Sprintf("client-%d", i), SessionID: "s", Time: at}
		case i >= 200 && i < 210: // another actor
			ch.Actor, ch.ActorAccount, ch.SourceIP = "console:AKIAAUDITTEST0000002", scopeB.AccountID, "::1"
		case i == 300: // another operation, on an object
			ch.Operation, ch.Kind, ch.CertificateID, ch.Resource, ch.Target = "CreateThing", fleetcert.ChangeObjectCreated, "", "thing/t", "x"
		}
		chs = append(chs, ch)
	}
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.AppendChanges(ctx, chs); err != nil {
			return err
		}
		return tx.AppendChanges(ctx, nil)
	})
	if err != nil {
		t.Fatalf("AppendChanges: %v", err)
	}
	after := auditChange(scopeA, "single", "UpdateCertificate", fleetcert.StatusInactive, fleetcert.StatusActive, baseTime.Add(time.Hour))
	appendChanges(t, s, after)

	for i, ch := range chs {
		if ch.Seq != before.Seq+1+int64(i) {
			t.Fatalf("change %d of the batch has seq %d, want %d (the one before: %d)", i, ch.Seq, before.Seq+1+int64(i), before.Seq)
		}
	}
	if after.Seq <= chs[len(chs)-1].Seq {
		t.Fatalf("the change after the batch has seq %d, not above the batch's last %d", after.Seq, chs[len(chs)-1].Seq)
	}
	feed := changes(t, s, before.Seq, batchSize+10)
	if len(feed) != batchSize+1 {
		t.Fatalf("the feed after the first change has %d changes, want %d", len(feed), batchSize+1)
	}
	var wantAudit []fleetcert.AuditEntry
	wantAudit = append(wantAudit, entryOf(before))
	for i, ch := range chs {
		g := feed[i]
		w := *ch
		w.Operation, w.Actor, w.ActorAccount, w.SourceIP = "", "", "", "" // the feed does not keep them
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("feed entry %d:\n got %+v\nwant %+v", i, g, w)
		}
		if ch.Operation != "" {
			wantAudit = append(wantAudit, entryOf(ch))
		}
	}
	wantAudit = append(wantAudit, entryOf(after))
	if got := audit(t, s, fleetcert.AuditQuery{Limit: 1000}); !reflect.DeepEqual(got, wantAudit) {
		t.Fatalf("audit log: got %d entries, want %d\n got %+v\nwant %+v", len(got), len(wantAudit), got, wantAudit)
	}
	byCert := audit(t, s, fleetcert.AuditQuery{CertificateID: chs[0].CertificateID, Limit: 10})
	if len(byCert) != 1 || byCert[0] != entryOf(chs[0]) {
		t.Fatalf("audit log of certificate %s: %+v, want the batch's entry", chs[0].CertificateID[:8], byCert)
	}

	// Rolled back with its transaction: no change, no entry.
	errRollback := errors.New("rolled back")
	head := changesHead(t, s)
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		more := []*fleetcert.Change{
			auditChange(scopeA, "x", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, baseTime.Add(2*time.Hour)),
			auditChange(scopeA, "y", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, baseTime.Add(2*time.Hour)),
		}
		if err := tx.AppendChanges(ctx, more); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update returned %v, want %v", err, errRollback)
	}
	if got := audit(t, s, fleetcert.AuditQuery{Limit: 1000}); len(got) != len(wantAudit) {
		t.Fatalf("after a rolled-back batch the audit log has %d entries, want %d", len(got), len(wantAudit))
	}
	if got := changes(t, s, head, 10); len(got) != 0 {
		t.Fatalf("after a rolled-back batch the feed has %d more changes", len(got))
	}

	err = s.View(ctx, func(tx fleetcert.Tx) error { return tx.AppendChanges(ctx, chs[:1]) })
	if err == nil {
		t.Fatal("AppendChanges in a View succeeded")
	}
}

// testCreateCertificates: where the store's Tx is a CertificatesCreator,
// CreateCertificates stores what CreateCertificate stores for each new
// certificate, with Seqs as a read returns them, and leaves out, without
// an error, one the scope holds already or an earlier one of the batch
// has; the same id in another scope is stored.
func testCreateCertificates(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	held := newCertificate(scopeA, "batch-held", baseTime)
	create(t, s, held)

	var cs []*fleetcert.Certificate
	var want []bool
	for i := range batchSize {
		c := newCertificate(scopeA, fmt.Sprintf("batch-%d", i), baseTime.Add(time.Duration(i)*time.Millisecond))
		c.CommonName, c.Serial, c.Issuer = fmt.Sprintf("device-%d", i), []byte{byte(i >> 8), byte(i)}, []byte("issuer")
		cs, want = append(cs, c), append(want, true)
		switch i {
		case 7: // held already
			dup := *held
			cs, want = append(cs, &dup), append(want, false)
		case 9: // twice in the batch: the first is stored
			dup := *c
			dup.Status = fleetcert.StatusInactive
			cs, want = append(cs, &dup), append(want, false)
		case 11: // the same id in another account
			other := newCertificate(scopeB, fmt.Sprintf("batch-%d", i), c.CreationDate)
			cs, want = append(cs, other), append(want, true)
		}
	}
	var stored []bool
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		cc, ok := tx.(fleetcert.CertificatesCreator)
		if !ok {
			t.Skip("the store's Tx is not a CertificatesCreator")
		}
		var err error
		stored, err = cc.CreateCertificates(ctx, cs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored, want) {
		t.Fatalf("stored %v,\nwant %v", stored, want)
	}
	seqs := map[int64]bool{held.Seq: true}
	for i, c := range cs {
		if !want[i] {
			continue
		}
		got := mustGet(t, s, c.Scope, c.ID)
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("certificate %d stored as\n%+v\nwant\n%+v", i, got, c)
		}
		if seqs[c.Seq] {
			t.Fatalf("certificate %d has the Seq %d of another", i, c.Seq)
		}
		seqs[c.Seq] = true
	}
	if got := mustGet(t, s, scopeA, held.ID); !reflect.DeepEqual(got, held) {
		t.Fatalf("the held certificate is now\n%+v\nwant\n%+v", got, held)
	}
	// Found by id across accounts, as the gateway looks a certificate up.
	var byID []*fleetcert.Certificate
	err = s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		byID, err = tx.CertificatesByID(ctx, certificateID("batch-11")) // in both accounts
		return err
	})
	if err != nil || len(byID) != 2 {
		t.Fatalf("CertificatesByID: %d certificates, %v; want 2", len(byID), err)
	}
}
