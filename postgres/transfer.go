package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// transferColumns are the columns of a transfer, in the order of the
// parameters of putTransferSQL and of LatestTransfer's scan.
const transferColumns = `region, certificate_id, source_account_id, target_account_id, message, reject_reason,
	transfer_date, accept_date, reject_date, cancel_date`

const (
	// The upsert keeps the row, and so its seq: a transfer updated keeps its
	// place among transfers of the same date.
	putTransferSQL = `INSERT INTO transfers (` + transferColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (region, certificate_id, source_account_id, transfer_date) DO UPDATE SET
		target_account_id = excluded.target_account_id, message = excluded.message,
		reject_reason = excluded.reject_reason, accept_date = excluded.accept_date,
		reject_date = excluded.reject_date, cancel_date = excluded.cancel_date`

	// A certificate has few transfers: the unique index's (region,
	// certificate_id) prefix finds them, and sorting them is cheap.
	latestTransferSQL = `SELECT ` + transferColumns + ` FROM transfers
		WHERE region = $1 AND certificate_id = $2 AND (source_account_id = $3 OR target_account_id = $3)
		ORDER BY transfer_date DESC, seq DESC LIMIT 1`
)

// transferKey is the lock of the transfers of certificate id in region.
func transferKey(region, id string) int32 { return lockKey("transfer", region, id) }

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
	err := tx.lockedExec(ctx, []int32{transferKey(t.Region, t.CertificateID)}, putTransferSQL,
		t.Region, t.CertificateID, t.SourceAccountID, t.TargetAccountID, t.Message, t.RejectReason,
		t.TransferDate.UTC(), timeArg(t.AcceptDate), timeArg(t.RejectDate), timeArg(t.CancelDate))
	return storeError(ctx, err, "transfer of certificate "+t.CertificateID)
}

// LatestTransfer returns the transfer of certificate id in region whose
// source or target is accountID with the latest TransferDate; of transfers
// with the same date, the one inserted last. In an Update it stays as read
// until commit: a transfer is accepted, rejected or cancelled once.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) LatestTransfer(ctx context.Context, region, id, accountID string) (*fleetcert.Transfer, error) {
	var t *fleetcert.Transfer
	scan := func(row pgx.Row) (err error) {
		t, err = scanTransfer(row)
		return err
	}
	var err error
	if tx.tx == nil {
		err = scan(tx.q.QueryRow(ctx, latestTransferSQL, region, id, accountID))
	} else {
		// The key's lock first, found or not: ending a transfer appends
		// changes and then stores the transfer (PutTransfer takes this lock),
		// and a transaction holding the feed's lock must not wait for
		// another.
		err = tx.lockedQueryRow(ctx, []int32{transferKey(region, id)}, scan, latestTransferSQL+" FOR UPDATE", region, id, accountID)
	}
	if err != nil {
		return nil, storeError(ctx, err, "transfer of certificate "+id)
	}
	return t, nil
}

// scanTransfer reads a row of transferColumns.
func scanTransfer(row pgx.Row) (*fleetcert.Transfer, error) {
	var (
		t                             fleetcert.Transfer
		transferred                   time.Time
		accepted, rejected, cancelled *time.Time
	)
	err := row.Scan(&t.Region, &t.CertificateID, &t.SourceAccountID, &t.TargetAccountID, &t.Message, &t.RejectReason,
		&transferred, &accepted, &rejected, &cancelled)
	if err != nil {
		return nil, err
	}
	t.TransferDate = transferred.UTC()
	t.AcceptDate = fromTime(accepted)
	t.RejectDate = fromTime(rejected)
	t.CancelDate = fromTime(cancelled)
	return &t, nil
}
