package fleetcert_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func TestTransferAccept(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	src, dst := scope, otherAccount
	c, err := reg.RegisterCertificateWithoutCA(ctx, src, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	// ACTIVE cannot be transferred.
	if _, err := reg.TransferCertificate(ctx, src, c.ID, dst.AccountID, "hi"); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("transfer ACTIVE: %v", err)
	}
	if err := reg.UpdateCertificate(ctx, src, c.ID, fleetcert.StatusInactive); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"self": src.AccountID, "malformed": "12"} {
		if _, err := reg.TransferCertificate(ctx, src, c.ID, target, ""); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
			t.Fatalf("transfer to %s: %v", name, err)
		}
	}
	if _, err := reg.TransferCertificate(ctx, src, c.ID, dst.AccountID, "here you go"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []fleetcert.Scope{src, dst} {
		got, err := reg.DescribeCertificate(ctx, s, c.ID)
		if err != nil || got.Status != fleetcert.StatusPendingTransfer || got.OwnedBy != src.AccountID ||
			got.Transfer == nil || got.Transfer.TransferMessage != "here you go" || got.Transfer.TransferDate.IsZero() {
			t.Fatalf("%v during transfer: %+v %v", s, got, err)
		}
		// Nobody can change the status while the transfer is pending.
		if err := reg.UpdateCertificate(ctx, s, c.ID, fleetcert.StatusActive); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
			t.Fatalf("%v activates a PENDING_TRANSFER certificate: %v", s, err)
		}
		if err := reg.DeleteCertificate(ctx, s, c.ID, true); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
			t.Fatalf("%v deletes a PENDING_TRANSFER certificate: %v", s, err)
		}
	}
	out, err := reg.ListOutgoingCertificates(ctx, src, fleetcert.ListOptions{})
	if err != nil || len(out.Certificates) != 1 || out.Certificates[0].Transfer.TargetAccountID != dst.AccountID {
		t.Fatalf("outgoing: %+v %v", out, err)
	}
	if in, _ := reg.ListOutgoingCertificates(ctx, dst, fleetcert.ListOptions{}); len(in.Certificates) != 0 {
		t.Fatal("the target lists the transfer as outgoing")
	}
	// Only the target accepts; only the source cancels.
	if err := reg.AcceptCertificateTransfer(ctx, src, c.ID, false); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("source accepts: %v", err)
	}
	if err := reg.CancelCertificateTransfer(ctx, dst, c.ID); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("target cancels: %v", err)
	}
	third := fleetcert.Scope{AccountID: "333333333333", Region: scope.Region}
	if err := reg.AcceptCertificateTransfer(ctx, third, c.ID, false); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("third account accepts: %v", err)
	}

	if err := reg.AcceptCertificateTransfer(ctx, dst, c.ID, true); err != nil {
		t.Fatal(err)
	}
	got, err := reg.DescribeCertificate(ctx, dst, c.ID)
	if err != nil || got.Status != fleetcert.StatusActive || got.OwnedBy != dst.AccountID || got.PreviousOwnedBy != src.AccountID || got.Transfer.AcceptDate.IsZero() {
		t.Fatalf("after accept: %+v %v", got, err)
	}
	if _, err := reg.DescribeCertificate(ctx, src, c.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("old owner still sees it: %v", err)
	}
	// A finished transfer answers 410 to everyone in it.
	if err := reg.AcceptCertificateTransfer(ctx, dst, c.ID, false); fleetcert.ErrorCode(err) != fleetcert.ETransferAlreadyCompleted {
		t.Fatalf("accept twice: %v", err)
	}
	if err := reg.RejectCertificateTransfer(ctx, dst, c.ID, "late"); fleetcert.ErrorCode(err) != fleetcert.ETransferAlreadyCompleted {
		t.Fatalf("reject after accept: %v", err)
	}
	if err := reg.CancelCertificateTransfer(ctx, src, c.ID); fleetcert.ErrorCode(err) != fleetcert.ETransferAlreadyCompleted {
		t.Fatalf("cancel after accept: %v", err)
	}
	if out, _ := reg.ListOutgoingCertificates(ctx, src, fleetcert.ListOptions{}); len(out.Certificates) != 0 {
		t.Fatal("accepted transfer still outgoing")
	}
}

func TestTransferRejectAndCancel(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	src, dst := scope, otherAccount
	c, err := reg.RegisterCertificateWithoutCA(ctx, src, testpki.Leaf(t).PEM, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.TransferCertificate(ctx, src, c.ID, dst.AccountID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.TransferCertificate(ctx, src, c.ID, dst.AccountID, ""); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("transfer twice: %v", err)
	}
	if err := reg.RejectCertificateTransfer(ctx, dst, c.ID, "not ours"); err != nil {
		t.Fatal(err)
	}
	got, err := reg.DescribeCertificate(ctx, src, c.ID)
	if err != nil || got.Status != fleetcert.StatusInactive || got.OwnedBy != src.AccountID || got.Transfer == nil || got.Transfer.RejectReason != "not ours" || got.Transfer.RejectDate.IsZero() {
		t.Fatalf("after reject: %+v %v", got, err)
	}
	if _, err := reg.DescribeCertificate(ctx, dst, c.ID); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("target still sees a rejected certificate: %v", err)
	}
	if err := reg.CancelCertificateTransfer(ctx, src, c.ID); fleetcert.ErrorCode(err) != fleetcert.ETransferAlreadyCompleted {
		t.Fatalf("cancel after reject: %v", err)
	}

	// Again, then cancelled by the source.
	clk.advance(time.Second)
	if _, err := reg.TransferCertificate(ctx, src, c.ID, dst.AccountID, "second try"); err != nil {
		t.Fatal(err)
	}
	if err := reg.CancelCertificateTransfer(ctx, src, c.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.DescribeCertificate(ctx, src, c.ID); got.Status != fleetcert.StatusInactive {
		t.Fatalf("after cancel: %s", got.Status)
	}
	if err := reg.RejectCertificateTransfer(ctx, dst, c.ID, ""); fleetcert.ErrorCode(err) != fleetcert.ETransferAlreadyCompleted {
		t.Fatalf("reject after cancel: %v", err)
	}
	if err := reg.AcceptCertificateTransfer(ctx, dst, c.ID, false); fleetcert.ErrorCode(err) != fleetcert.ETransferAlreadyCompleted {
		t.Fatalf("accept after cancel: %v", err)
	}
}

func TestTransferRefusals(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	caCert := testpki.New(t, testpki.Options{IsCA: true})
	registerCA(t, reg, scope, caCert, fleetcert.RegisterCAInput{SetAsActive: true})
	underCA, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert}).PEM})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.TransferCertificate(ctx, scope, underCA.ID, otherAccount.AccountID, ""); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("transfer of a CA-registered certificate: %v", err)
	}
	leaf := testpki.Leaf(t)
	c, _ := reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusRevoked)
	if _, err := reg.TransferCertificate(ctx, scope, c.ID, otherAccount.AccountID, ""); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("transfer of a REVOKED certificate: %v", err)
	}
	// The target already has the certificate registered.
	shared, _ := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, "")
	if _, err := reg.RegisterCertificateWithoutCA(ctx, otherAccount, shared.PEM, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.TransferCertificate(ctx, scope, shared.ID, otherAccount.AccountID, ""); fleetcert.ErrorCode(err) != fleetcert.ETransferConflict {
		t.Fatalf("transfer to an account that has it: %v", err)
	}
	long := make([]byte, 129)
	if _, err := reg.TransferCertificate(ctx, scope, shared.ID, "333333333333", string(long)); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("long message: %v", err)
	}
	if _, err := reg.TransferCertificate(ctx, scope, "00", "333333333333", ""); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("bad id: %v", err)
	}
}
