package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
)

// notifyChannel is the LISTEN/NOTIFY channel of the change feed.
const notifyChannel = "fleetcert_changes"

const (
	// appendChangeSQL takes the next seq from change_feed's head row and
	// inserts the change with it, in one statement. The UPDATE locks the row
	// until the transaction ends, so the next append (in any process) waits
	// for this one to commit or roll back: changes commit in seq order, which
	// a sequence (nextval hands numbers out before commit) would not give.
	// The notification is queued with the transaction and delivered at
	// commit; PostgreSQL folds a transaction's identical notifications into
	// one.
	appendChangeSQL = `WITH head AS (
			UPDATE change_feed SET seq = seq + 1 WHERE name = 'head' RETURNING seq
		), notify AS (
			SELECT pg_notify('` + notifyChannel + `', '')
		)
		INSERT INTO changes (seq, kind, account_id, region, certificate_id, old_status, new_status, time, client_id, session_id,
			resource, target, ` + registrationColumns + `)
		SELECT head.seq, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::timestamptz, $8::text, $9::text,
			$10::text, $11::text, $12::text, $13::text, $14::timestamptz, $15::timestamptz, $16::bigint
		FROM head, notify
		RETURNING seq`

	// selectChangesSQL reads a page of the feed and the pruned horizon in one
	// snapshot, so a prune that committed before the page was read is seen.
	selectChangesSQL = `SELECT p.seq, c.seq, c.kind, c.account_id, c.region, c.certificate_id, c.old_status, c.new_status, c.time,
			c.client_id, c.session_id, c.resource, c.target,
			c.reg_ca_certificate_id, c.reg_mode, c.reg_not_before, c.reg_not_after, c.reg_seq
		FROM change_feed p LEFT JOIN LATERAL (
			SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2
		) c ON true
		WHERE p.name = 'pruned'
		ORDER BY c.seq`

	selectChangesHeadSQL = `SELECT seq FROM change_feed WHERE name = 'head'`

	// pruneChangesSQL deletes the old changes and raises the pruned horizon
	// to the highest seq deleted, in one statement: a reader sees both or
	// neither. The horizon's row is not head's, so pruning many rows does
	// not hold up the appends.
	pruneChangesSQL = `WITH gone AS (
			DELETE FROM changes WHERE time < $1 RETURNING seq
		), horizon AS (
			UPDATE change_feed SET seq = greatest(seq, (SELECT coalesce(max(seq), 0) FROM gone)) WHERE name = 'pruned'
		)
		SELECT count(*) FROM gone`
)

// registrationColumns are the columns of the registration a created entry
// keeps (migration 0009): Change.Registration, which the store keeps, so
// that every node's admission view adds a certificate registered on any
// node without reading it back.
const registrationColumns = `reg_ca_certificate_id, reg_mode, reg_not_before, reg_not_after, reg_seq`

// registrationArgs returns the registrationColumns of ch: all NULL unless
// it is a created entry with its Registration.
func registrationArgs(ch *fleetcert.Change) []any {
	r := ch.Registration
	if ch.Kind != fleetcert.ChangeCertificateCreated || r == nil {
		return []any{nil, nil, nil, nil, nil}
	}
	return []any{r.CACertificateID, string(r.Mode), timeArg(r.NotBefore), timeArg(r.NotAfter), r.Seq}
}

// registrationColumnValues are registrationColumns as read.
type registrationColumnValues struct {
	caID, mode          *string
	notBefore, notAfter *time.Time
	seq                 *int64
}

// registration returns the Registration v record for ch (a created entry,
// its Scope, CertificateID and NewStatus read), or nil when v are NULL.
func (v registrationColumnValues) registration(ch *fleetcert.Change) *fleetcert.Certificate {
	if ch.Kind != fleetcert.ChangeCertificateCreated || v.mode == nil || v.caID == nil || v.seq == nil {
		return nil
	}
	return &fleetcert.Certificate{Scope: ch.Scope, ID: ch.CertificateID, CACertificateID: *v.caID,
		Status: ch.NewStatus, Mode: fleetcert.CertificateMode(*v.mode),
		NotBefore: fromTime(v.notBefore), NotAfter: fromTime(v.notAfter), Seq: *v.seq}
}

// AppendChange appends ch to the change feed and sets ch.Seq, and writes
// its audit entry (appendAuditedChangeSQL) when it has an Operation. From here
// until the transaction ends, appends in other transactions wait: see
// appendChangeSQL.
func (tx *Tx) AppendChange(ctx context.Context, ch *fleetcert.Change) error {
	if err := tx.checkWritable("append change"); err != nil {
		return err
	}
	args := []any{string(ch.Kind), ch.Scope.AccountID, ch.Scope.Region,
		ch.CertificateID, string(ch.OldStatus), string(ch.NewStatus), ch.Time.UTC(), ch.ClientID, ch.SessionID,
		ch.Resource, ch.Target}
	args = append(args, registrationArgs(ch)...)
	query := appendChangeSQL
	if ch.Operation != "" {
		query = appendAuditedChangeSQL
		args = append(args, ch.Operation, ch.Actor, ch.ActorAccount, ch.SourceIP)
	}
	err := tx.q.QueryRow(ctx, query, args...).Scan(&ch.Seq)
	return storeError(ctx, err, "append change")
}

// Changes returns up to limit entries of the change feed with Seq > after,
// in Seq order. When changes after `after` were pruned, it returns an error
// wrapping fleetcert.ErrChangesPruned.
//
// Changes commit in Seq order (AppendChange), so a page that holds Seq s
// holds every committed change between after and s.
func (db *DB) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, selectChangesSQL, after, limit)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("read changes: %w", err), "")
	}
	defer rows.Close()
	var (
		changes []fleetcert.Change
		pruned  int64
	)
	for rows.Next() {
		var (
			seq                                                        *int64
			kind, account, region, certificateID, oldStatus, newStatus *string
			clientID, sessionID, resource, target                      *string
			t                                                          *time.Time
			reg                                                        registrationColumnValues
		)
		if err := rows.Scan(&pruned, &seq, &kind, &account, &region, &certificateID, &oldStatus, &newStatus, &t,
			&clientID, &sessionID, &resource, &target,
			&reg.caID, &reg.mode, &reg.notBefore, &reg.notAfter, &reg.seq); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		if seq == nil { // no change after `after`
			continue
		}
		changes = append(changes, fleetcert.Change{
			Seq:           *seq,
			Kind:          fleetcert.ChangeKind(*kind),
			Scope:         fleetcert.Scope{AccountID: *account, Region: *region},
			CertificateID: *certificateID,
			OldStatus:     fleetcert.Status(*oldStatus),
			NewStatus:     fleetcert.Status(*newStatus),
			Time:          fromTime(t),
			ClientID:      *clientID,
			SessionID:     *sessionID,
			Resource:      *resource,
			Target:        *target,
		})
		ch := &changes[len(changes)-1]
		ch.Registration = reg.registration(ch)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(ctx, fmt.Errorf("read changes: %w", err), "")
	}
	if after < pruned {
		return nil, fmt.Errorf("read changes after %d: pruned through %d: %w", after, pruned, fleetcert.ErrChangesPruned)
	}
	return changes, nil
}

// ChangesHead returns the Seq of the newest committed change, 0 when the feed never had one. Every change with a Seq at or below it that will ever commit has committed. It never decreases, pruning included.
func (db *DB) ChangesHead(ctx context.Context) (int64, error) {
	var head int64
	if err := db.pool.QueryRow(ctx, selectChangesHeadSQL).Scan(&head); err != nil {
		return 0, storeError(ctx, fmt.Errorf("read changes head: %w", err), "")
	}
	return head, nil
}

// PruneChanges removes the changes whose Time is before `before` and returns how many it removed. Afterwards Changes with an after below the highest pruned Seq returns an error wrapping fleetcert.ErrChangesPruned; the head is unchanged.
func (db *DB) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, pruneChangesSQL, before.UTC()).Scan(&n); err != nil {
		return 0, storeError(ctx, fmt.Errorf("prune changes: %w", err), "")
	}
	return n, nil
}
