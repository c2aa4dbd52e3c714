package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fleetcert/fleetcert"
)

// transferColumns are the columns of a transfer, in the order of the
// parameters of putTransferSQL and of scanTransfer.
const transferColumns = `region, certificate_id, source_account_id, target_account_id, message, reject_reason,
	transfer_date, accept_date, reject_date, cancel_date`

const (
	// The upsert keeps the row, and so its seq: a transfer updated keeps its
	// place among transfers of the same date.
	putTransferSQL = `INSERT INTO transfers (` + transferColumns + `)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
		ON CONFLICT (region, certificate_id, source_account_id, transfer_date) DO UPDATE SET
		target_account_id = excluded.target_account_id, message = excluded.message,
		reject_reason = excluded.reject_reason, accept_date = excluded.accept_date,
		reject_date = excluded.reject_date, cancel_date = excluded.cancel_date`

	// A certificate has few transfers: the unique index's (region,
	// certificate_id) prefix finds them, and sorting them is cheap.
	latestTransferSQL = `SELECT ` + transferColumns + ` FROM transfers
		WHERE region = ?1 AND certificate_id = ?2 AND (source_account_id = ?3 OR target_account_id = ?3)
		ORDER BY transfer_date DESC, seq DESC LIMIT 1`
)

// PutTransfer stores t, replacing the transfer with the same Region,
// CertificateID, SourceAccountID and TransferDate. t.TransferDate is
// required: it is part of the transfer's key.
func (tx *Tx) PutTransfer(ctx context.Context, t *fleetcert.Transfer) error {
	if err := tx.checkWritable("put transfer"); err != nil {
		return err
	}
	if t.TransferDate.IsZero() {
		return fmt.Errorf("put transfer of certificate %s: TransferDate required", t.CertificateID)
	}
	var e encoder
	args := []any{t.Region, t.CertificateID, t.SourceAccountID, t.TargetAccountID, t.Message, t.RejectReason,
		e.nanos(t.TransferDate), e.nanos(t.AcceptDate), e.nanos(t.RejectDate), e.nanos(t.CancelDate)}
	if e.err != nil {
		return fmt.Errorf("put transfer of certificate %s: %w", t.CertificateID, e.err)
	}
	_, err := tx.stmt(ctx, tx.stmts.putTransfer).ExecContext(ctx, args...)
	return storeError(err, "transfer of certificate "+t.CertificateID)
}

// LatestTransfer returns the transfer of certificate id in region whose
// source or target is accountID with the latest TransferDate; of transfers
// with the same date, the one inserted last (replacing a transfer keeps its
// place).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) LatestTransfer(ctx context.Context, region, id, accountID string) (*fleetcert.Transfer, error) {
	t, err := scanTransfer(tx.stmt(ctx, tx.stmts.latestTransfer).QueryRowContext(ctx, region, id, accountID))
	if err != nil {
		return nil, storeError(err, "transfer of certificate "+id)
	}
	return t, nil
}

// scanTransfer reads a row of transferColumns.
func scanTransfer(s scanner) (*fleetcert.Transfer, error) {
	var (
		t                                          fleetcert.Transfer
		transferred, accepted, rejected, cancelled sql.NullInt64
	)
	err := s.Scan(&t.Region, &t.CertificateID, &t.SourceAccountID, &t.TargetAccountID, &t.Message, &t.RejectReason,
		&transferred, &accepted, &rejected, &cancelled)
	if err != nil {
		return nil, err
	}
	t.TransferDate = fromNanos(transferred)
	t.AcceptDate = fromNanos(accepted)
	t.RejectDate = fromNanos(rejected)
	t.CancelDate = fromNanos(cancelled)
	return &t, nil
}
