package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

func testCreateAndGet(t *testing.T, s fleetcert.Store) {
	c := newCertificate(scopeA, "a", baseTime.Add(123*time.Millisecond))
	c.CACertificateID = certificateID("ca")
	c.Status = fleetcert.StatusInactive
	c.Mode = fleetcert.ModeSNIOnly
	c.PreviousOwnedBy = scopeB.AccountID
	c.LastModifiedDate = c.CreationDate.Add(36*time.Hour + 999*time.Millisecond)
	c.CustomerVersion = 7
	create(t, s, c)
	if c.Seq == 0 {
		t.Fatal("CreateCertificate did not set Seq")
	}
	got := mustGet(t, s, scopeA, c.ID)
	equalCertificate(t, got, c)
	if got.Transfer != nil {
		t.Fatalf("Transfer = %+v, want nil", *got.Transfer)
	}
	if got.CreationDate.Location() != time.UTC || got.NotAfter.Location() != time.UTC {
		t.Fatalf("times in %v and %v, want UTC", got.CreationDate.Location(), got.NotAfter.Location())
	}
}

func testCreateAndGetTransfer(t *testing.T, s fleetcert.Store) {
	c := newCertificate(scopeA, "t", baseTime.Add(1*time.Millisecond))
	c.Status = fleetcert.StatusPendingTransfer
	// RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined expiration";
	// device certificates (IEEE 802.1AR) use it.
	c.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	c.NotBefore = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Hour)
	c.Transfer = &fleetcert.TransferData{
		TargetAccountID: scopeB.AccountID,
		TransferMessage: "to the new owner ✓",
		RejectReason:    "not expected",
		TransferDate:    baseTime.Add(2 * time.Millisecond),
		AcceptDate:      baseTime.Add(3 * time.Millisecond),
		RejectDate:      baseTime.Add(4 * time.Millisecond),
	}
	create(t, s, c)
	equalCertificate(t, mustGet(t, s, scopeA, c.ID), c)
}

func testCreateAndGetZeroFields(t *testing.T, s fleetcert.Store) {
	// A transfer just started: no message, no dates but its own.
	c := newCertificate(scopeA, "z", baseTime)
	c.GenerationID = ""
	c.OwnedBy = ""
	c.LastModifiedDate = time.Time{}
	c.CustomerVersion = 0
	c.Transfer = &fleetcert.TransferData{TargetAccountID: scopeB.AccountID}
	create(t, s, c)
	got := mustGet(t, s, scopeA, c.ID)
	if got.Transfer == nil {
		t.Fatal("Transfer = nil, want the empty transfer stored")
	}
	equalCertificate(t, got, c)
}

func testSeqIncreasing(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	var last int64
	for i, name := range []string{"s1", "s2", "s3"} {
		c := newCertificate(scopeA, name, baseTime.Add(-time.Duration(i)*time.Second))
		create(t, s, c)
		if c.Seq <= last {
			t.Fatalf("Seq %d after %d, want increasing", c.Seq, last)
		}
		last = c.Seq
	}
	// A deleted certificate's Seq is not handed out again.
	if err := s.Update(ctx, func(tx fleetcert.Tx) error {
		return tx.DeleteCertificate(ctx, scopeA, certificateID("s3"))
	}); err != nil {
		t.Fatal(err)
	}
	c := newCertificate(scopeA, "s4", baseTime)
	create(t, s, c)
	if c.Seq <= last {
		t.Fatalf("Seq %d after deleting %d, want greater", c.Seq, last)
	}
}

func testDuplicate(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "d", baseTime)
	create(t, s, c)
	dup := newCertificate(scopeA, "d", baseTime.Add(time.Hour))
	dup.Status = fleetcert.StatusRevoked
	err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, dup) })
	wantCode(t, err, fleetcert.EResourceAlreadyExists, "create duplicate")
	equalCertificate(t, mustGet(t, s, scopeA, c.ID), c)

	// Also within the transaction that created it.
	twice := newCertificate(scopeA, "d2", baseTime)
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateCertificate(ctx, twice); err != nil {
			t.Errorf("first create: %v", err)
			return err
		}
		again := *twice
		return tx.CreateCertificate(ctx, &again)
	})
	wantCode(t, err, fleetcert.EResourceAlreadyExists, "create twice in one transaction")
}

func testSameIDOtherScope(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	a := newCertificate(scopeA, "same", baseTime)
	b := newCertificate(scopeB, "same", baseTime)
	b.Status = fleetcert.StatusInactive
	r := newCertificate(scopeARegion, "same", baseTime)
	r.Status = fleetcert.StatusRevoked
	create(t, s, a)
	create(t, s, b)
	create(t, s, r)
	for _, c := range []*fleetcert.Certificate{a, b, r} {
		equalCertificate(t, mustGet(t, s, c.Scope, c.ID), c)
	}
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCertificate(ctx, scopeA, a.ID) }); err != nil {
		t.Fatal(err)
	}
	_, err := get(t, s, scopeA, a.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get deleted")
	equalCertificate(t, mustGet(t, s, scopeB, b.ID), b)
	equalCertificate(t, mustGet(t, s, scopeARegion, r.ID), r)
}

func testNotFound(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	other := newCertificate(scopeB, "elsewhere", baseTime)
	create(t, s, other)

	_, err := get(t, s, scopeA, certificateID("missing"))
	wantCode(t, err, fleetcert.EResourceNotFound, "get missing")
	_, err = get(t, s, scopeA, other.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get another account's certificate")
	_, err = get(t, s, fleetcert.Scope{AccountID: scopeB.AccountID, Region: scopeARegion.Region}, other.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get another region's certificate")

	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		c := newCertificate(scopeA, "missing", baseTime)
		return tx.UpdateCertificate(ctx, c)
	})
	wantCode(t, err, fleetcert.EResourceNotFound, "update missing")
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		c := *other
		c.Scope = scopeA
		return tx.UpdateCertificate(ctx, &c)
	})
	wantCode(t, err, fleetcert.EResourceNotFound, "update another account's certificate")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCertificate(ctx, scopeA, other.ID) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete another account's certificate")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCertificate(ctx, scopeA, certificateID("missing")) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete missing")
	equalCertificate(t, mustGet(t, s, scopeB, other.ID), other)
}

func testUpdate(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "u", baseTime)
	neighbour := newCertificate(scopeA, "neighbour", baseTime)
	create(t, s, c, neighbour)

	u := *c
	u.CACertificateID = certificateID("other-ca")
	u.Status = fleetcert.StatusRevoked
	u.PEM = "changed"
	u.Mode = fleetcert.ModeSNIOnly
	u.OwnedBy = scopeB.AccountID
	u.PreviousOwnedBy = scopeA.AccountID
	u.CreationDate = baseTime.Add(-time.Hour)
	u.LastModifiedDate = baseTime.Add(time.Hour + 5*time.Millisecond)
	u.CustomerVersion = 2
	u.GenerationID = "changed-generation"
	u.NotBefore = baseTime.Add(-48 * time.Hour)
	u.NotAfter = baseTime.Add(48 * time.Hour)
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		cur, err := tx.Certificate(ctx, scopeA, c.ID)
		if err != nil {
			return err
		}
		equalCertificate(t, cur, c)
		return tx.UpdateCertificate(ctx, &u)
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	got := mustGet(t, s, scopeA, c.ID)
	equalCertificate(t, got, &u)
	if got.Seq != c.Seq {
		t.Fatalf("Seq %d after update, want %d", got.Seq, c.Seq)
	}
	equalCertificate(t, mustGet(t, s, scopeA, neighbour.ID), neighbour)
}

func testUpdateTransfer(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "ut", baseTime)
	create(t, s, c)
	for _, tr := range []*fleetcert.TransferData{
		{TargetAccountID: scopeB.AccountID, TransferMessage: "m", TransferDate: baseTime.Add(time.Millisecond)},
		{TargetAccountID: scopeB.AccountID, TransferMessage: "m", RejectReason: "no",
			TransferDate: baseTime.Add(time.Millisecond), RejectDate: baseTime.Add(2 * time.Millisecond)},
		nil,
	} {
		c.Transfer = tr
		if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.UpdateCertificate(ctx, c) }); err != nil {
			t.Fatalf("update: %v", err)
		}
		equalCertificate(t, mustGet(t, s, scopeA, c.ID), c)
	}
}

func testDelete(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "del", baseTime)
	keep := newCertificate(scopeA, "keep", baseTime.Add(time.Millisecond))
	create(t, s, c, keep)
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCertificate(ctx, scopeA, c.ID) }); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := get(t, s, scopeA, c.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get deleted")
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCertificate(ctx, scopeA, c.ID) })
	wantCode(t, err, fleetcert.EResourceNotFound, "delete twice")
	got := list(t, s, fleetcert.CertificateQuery{Scope: scopeA, Limit: 10})
	if len(got) != 1 || got[0].ID != keep.ID {
		t.Fatalf("list after delete = %v, want [%s]", ids(got), keep.ID[:8])
	}
	// The id can be registered again, as a new record.
	again := newCertificate(scopeA, "del", baseTime.Add(time.Hour))
	create(t, s, again)
	equalCertificate(t, mustGet(t, s, scopeA, c.ID), again)
}

func testWriteInView(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "v", baseTime)
	err := s.View(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, c) })
	if err == nil {
		t.Fatal("CreateCertificate in View succeeded, want an error")
	}
	_, err = get(t, s, scopeA, c.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get certificate created in a View")
}
