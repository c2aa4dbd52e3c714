package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// newTransfer returns a transfer of certificate name from scopeA's account
// to scopeB's, started at at.
func newTransfer(name string, at time.Time) *fleetcert.Transfer {
	return &fleetcert.Transfer{
		Region:          scopeA.Region,
		CertificateID:   certificateID(name),
		SourceAccountID: scopeA.AccountID,
		TargetAccountID: scopeB.AccountID,
		Message:         "for the new owner",
		TransferDate:    at,
	}
}

// putTransfers stores ts in one Update.
func putTransfers(tb testing.TB, s fleetcert.Store, ts ...*fleetcert.Transfer) {
	tb.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		for _, t := range ts {
			if err := tx.PutTransfer(ctx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("put transfers: %v", err)
	}
}

// latestTransfer runs LatestTransfer in a View.
func latestTransfer(tb testing.TB, s fleetcert.Store, region, id, accountID string) (*fleetcert.Transfer, error) {
	tb.Helper()
	ctx := context.Background()
	var t *fleetcert.Transfer
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		t, err = tx.LatestTransfer(ctx, region, id, accountID)
		return err
	})
	return t, err
}

// wantLatest fails tb unless the latest transfer of id for accountID
// equals want exactly.
func wantLatest(tb testing.TB, s fleetcert.Store, what, id, accountID string, want *fleetcert.Transfer) {
	tb.Helper()
	got, err := latestTransfer(tb, s, scopeA.Region, id, accountID)
	if err != nil {
		tb.Fatalf("%s: latest transfer: %v", what, err)
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("%s: latest transfer\n got %+v\nwant %+v", what, *got, *want)
	}
}

func testTransfer(t *testing.T, s fleetcert.Store) {
	tr := newTransfer("t", baseTime.Add(5*time.Millisecond))
	tr.Message = "to the new owner ✓"
	putTransfers(t, s, tr)
	// Found from both sides.
	wantLatest(t, s, "as source", tr.CertificateID, scopeA.AccountID, tr)
	wantLatest(t, s, "as target", tr.CertificateID, scopeB.AccountID, tr)
	got, err := latestTransfer(t, s, scopeA.Region, tr.CertificateID, scopeA.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TransferDate.Location() != time.UTC || !got.AcceptDate.IsZero() || !got.CancelDate.IsZero() {
		t.Fatalf("transfer dates %+v, want the transfer date in UTC and no other", *got)
	}

	// Every field, all dates set.
	full := &fleetcert.Transfer{
		Region:          scopeA.Region,
		CertificateID:   certificateID("full"),
		SourceAccountID: scopeB.AccountID,
		TargetAccountID: scopeA.AccountID,
		Message:         "m",
		RejectReason:    "not expected \"here\"",
		TransferDate:    baseTime.Add(1 * time.Millisecond),
		AcceptDate:      baseTime.Add(2 * time.Millisecond),
		RejectDate:      baseTime.Add(3 * time.Millisecond),
		CancelDate:      baseTime.Add(4 * time.Millisecond),
	}
	putTransfers(t, s, full)
	wantLatest(t, s, "every field", full.CertificateID, scopeA.AccountID, full)

	// Empty strings.
	bare := &fleetcert.Transfer{Region: scopeA.Region, CertificateID: certificateID("bare"),
		SourceAccountID: scopeA.AccountID, TargetAccountID: scopeB.AccountID, TransferDate: baseTime}
	putTransfers(t, s, bare)
	wantLatest(t, s, "no message", bare.CertificateID, scopeB.AccountID, bare)
}

func testTransferUpdate(t *testing.T, s fleetcert.Store) {
	tr := newTransfer("u", baseTime)
	putTransfers(t, s, tr)

	// Same key: replaced, not added.
	done := *tr
	done.RejectReason = "no, thanks"
	done.RejectDate = baseTime.Add(time.Second)
	putTransfers(t, s, &done)
	wantLatest(t, s, "rejected", tr.CertificateID, scopeA.AccountID, &done)
	wantLatest(t, s, "rejected, as target", tr.CertificateID, scopeB.AccountID, &done)

	// Every non-key field can change, and dates can be cleared.
	changed := *tr
	changed.TargetAccountID = "333333333333"
	changed.Message = "changed"
	changed.CancelDate = baseTime.Add(2 * time.Second)
	putTransfers(t, s, &changed)
	wantLatest(t, s, "changed", tr.CertificateID, scopeA.AccountID, &changed)
	wantLatest(t, s, "changed, as the new target", tr.CertificateID, "333333333333", &changed)
	_, err := latestTransfer(t, s, scopeA.Region, tr.CertificateID, scopeB.AccountID)
	wantCode(t, err, fleetcert.EResourceNotFound, "latest transfer for the former target")

	// Several updates in one transaction: the last one holds.
	a, b := *tr, *tr
	a.AcceptDate = baseTime.Add(3 * time.Second)
	b.Message = "last"
	putTransfers(t, s, &a, &b)
	wantLatest(t, s, "two puts in one transaction", tr.CertificateID, scopeA.AccountID, &b)
}

func testTransferLatest(t *testing.T, s fleetcert.Store) {
	id := certificateID("l")
	// Inserted out of date order.
	second := newTransfer("l", baseTime.Add(2*time.Second))
	first := newTransfer("l", baseTime.Add(time.Second))
	first.RejectDate = baseTime.Add(1500 * time.Millisecond)
	putTransfers(t, s, second)
	putTransfers(t, s, first)
	wantLatest(t, s, "later date wins over later insert", id, scopeA.AccountID, second)

	// Back: scopeB transfers it to a third account, later.
	third := "333333333333"
	back := &fleetcert.Transfer{Region: scopeA.Region, CertificateID: id, SourceAccountID: scopeB.AccountID,
		TargetAccountID: third, TransferDate: baseTime.Add(3 * time.Second)}
	putTransfers(t, s, back)
	wantLatest(t, s, "scopeB as the latest source", id, scopeB.AccountID, back)
	wantLatest(t, s, "scopeA only in older transfers", id, scopeA.AccountID, second)
	wantLatest(t, s, "third as target", id, third, back)

	// Same date, different sources: the one inserted last wins, and a
	// replacement keeps the order of insertion.
	tieDate := baseTime.Add(4 * time.Second)
	tieA := &fleetcert.Transfer{Region: scopeA.Region, CertificateID: id, SourceAccountID: scopeA.AccountID,
		TargetAccountID: third, TransferDate: tieDate}
	tieThird := &fleetcert.Transfer{Region: scopeA.Region, CertificateID: id, SourceAccountID: third,
		TargetAccountID: scopeA.AccountID, Message: "inserted last", TransferDate: tieDate}
	putTransfers(t, s, tieA)
	putTransfers(t, s, tieThird)
	wantLatest(t, s, "tie, inserted last", id, scopeA.AccountID, tieThird)
	tieA.Message = "replaced after"
	putTransfers(t, s, tieA)
	wantLatest(t, s, "tie after replacing the first", id, scopeA.AccountID, tieThird)
	wantLatest(t, s, "tie, the other's only one", id, scopeB.AccountID, back)

	// Other certificates and regions are other transfers.
	other := newTransfer("other", baseTime.Add(time.Hour))
	region := newTransfer("l", baseTime.Add(time.Hour))
	region.Region = scopeARegion.Region
	putTransfers(t, s, other, region)
	wantLatest(t, s, "after other certificates and regions", id, scopeA.AccountID, tieThird)
	got, err := latestTransfer(t, s, scopeARegion.Region, id, scopeA.AccountID)
	if err != nil || !reflect.DeepEqual(got, region) {
		t.Fatalf("latest transfer in %s = %+v, %v; want %+v", scopeARegion.Region, got, err, region)
	}
}

func testTransferNotFound(t *testing.T, s fleetcert.Store) {
	tr := newTransfer("nf", baseTime)
	putTransfers(t, s, tr)
	for _, tc := range []struct {
		name, region, id, account string
	}{
		{"an account in neither side", tr.Region, tr.CertificateID, "333333333333"},
		{"another certificate", tr.Region, certificateID("missing"), tr.SourceAccountID},
		{"another region", scopeARegion.Region, tr.CertificateID, tr.SourceAccountID},
		{"another region, target", scopeARegion.Region, tr.CertificateID, tr.TargetAccountID},
	} {
		_, err := latestTransfer(t, s, tc.region, tc.id, tc.account)
		wantCode(t, err, fleetcert.EResourceNotFound, "latest transfer of "+tc.name)
	}
	// Certificates are not transfers.
	create(t, s, newCertificate(scopeA, "cert", baseTime))
	_, err := latestTransfer(t, s, scopeA.Region, certificateID("cert"), scopeA.AccountID)
	wantCode(t, err, fleetcert.EResourceNotFound, "latest transfer of a certificate never transferred")
}
