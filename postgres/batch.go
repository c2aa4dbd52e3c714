package postgres

import (
	"context"
	"time"

	"github.com/fleetcert/fleetcert"
)

// A bulk job writes thousands of rows per transaction: each of its batch
// writes is one statement whose rows come as arrays (unnest), one round
// trip where a statement per row took thousands.

// updateStatusesSQL is updateCertificateStatusSQL for many rows. Under READ
// COMMITTED a row that another transaction changed meanwhile is checked
// again against the join's conditions, so it is left alone as a single
// UPDATE would leave it.
const updateStatusesSQL = `UPDATE certificates c SET
		status = u.status, last_modified_date = u.modified, customer_version = u.version, generation_id = u.generation
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::integer[], $8::text[],
		$9::integer[]) AS u(seq, account_id, region, certificate_id, status, modified, version, generation, from_version)
	WHERE c.seq = u.seq AND c.account_id = u.account_id AND c.region = u.region AND c.certificate_id = u.certificate_id
		AND c.customer_version = u.from_version
	RETURNING c.seq`

// appendChangesSQL is appendAuditedChangeSQL for many changes: it takes
// as many seqs from the head row as there are changes (the row stays locked
// until the transaction ends, as for one), numbers them in the order of the
// arrays, and writes the audit entries of those with an operation.
const appendChangesSQL = `WITH head AS (
		UPDATE change_feed SET seq = seq + cardinality($1::text[]) WHERE name = 'head'
		RETURNING seq - cardinality($1::text[]) AS base
	), notify AS (
		SELECT pg_notify('` + notifyChannel + `', '')
	), u AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
			$16::text[], $17::text[], $18::timestamptz[], $19::timestamptz[], $20::bigint[])
			WITH ORDINALITY AS u(kind, account_id, region, certificate_id, old_status, new_status, time, client_id,
				session_id, resource, target, operation, actor, actor_account, source_ip,
				` + registrationColumns + `, n)
	), ch AS (
		INSERT INTO changes (seq, kind, account_id, region, certificate_id, old_status, new_status, time, client_id, session_id,
			resource, target, ` + registrationColumns + `)
		SELECT head.base + u.n, u.kind, u.account_id, u.region, u.certificate_id, u.old_status, u.new_status, u.time,
			u.client_id, u.session_id, u.resource, u.target, ` + registrationColumns + `
		FROM head, notify, u
	), audit AS (
		INSERT INTO audit (seq, time, account_id, region, operation, kind, certificate_id, old_status, new_status,
			resource, target, actor, actor_account, source_ip)
		SELECT head.base + u.n, u.time, u.account_id, u.region, u.operation, u.kind, u.certificate_id, u.old_status,
			u.new_status, u.resource, u.target, u.actor, u.actor_account, u.source_ip
		FROM head, u WHERE u.operation <> ''
	)
	SELECT base FROM head`

// UpdateCertificateStatuses is UpdateCertificateStatus for each of us, in
// one statement; see fleetcert.Tx.
func (tx *Tx) UpdateCertificateStatuses(ctx context.Context, us []fleetcert.StatusUpdate) ([]bool, error) {
	if err := tx.checkWritable("update certificate statuses"); err != nil {
		return nil, err
	}
	written := make([]bool, len(us))
	if len(us) == 0 {
		return written, nil
	}
	var (
		seqs                                         = make([]int64, len(us))
		accounts, regions, ids, statuses, generation = make([]string, len(us)), make([]string, len(us)), make([]string, len(us)), make([]string, len(us)), make([]string, len(us))
		modified                                     = make([]*time.Time, len(us))
		versions, from                               = make([]int32, len(us)), make([]int32, len(us))
		index                                        = make(map[int64]int, len(us))
	)
	for i, u := range us {
		c := u.Certificate
		seqs[i], accounts[i], regions[i], ids[i], statuses[i], generation[i] = c.Seq, c.AccountID, c.Region, c.ID, string(c.Status), c.GenerationID
		if !c.LastModifiedDate.IsZero() {
			t := c.LastModifiedDate.UTC()
			modified[i] = &t
		}
		versions[i], from[i] = int32(c.CustomerVersion), int32(u.FromVersion)
		index[c.Seq] = i
	}
	rows, err := tx.q.Query(ctx, updateStatusesSQL, seqs, accounts, regions, ids, statuses, modified, versions, generation, from)
	if err != nil {
		return nil, storeError(ctx, err, "certificates")
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, storeError(ctx, err, "certificates")
		}
		if i, ok := index[seq]; ok {
			written[i] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(ctx, err, "certificates")
	}
	return written, nil
}

// AppendChanges is AppendChange for each of chs, in one statement; see
// fleetcert.Tx. From here until the transaction ends, appends in other
// transactions wait, as after AppendChange.
func (tx *Tx) AppendChanges(ctx context.Context, chs []*fleetcert.Change) error {
	if err := tx.checkWritable("append changes"); err != nil {
		return err
	}
	if len(chs) == 0 {
		return nil
	}
	n := len(chs)
	cols := make([][]string, 14) // every text column, in appendChangesSQL's order but time
	for i := range cols {
		cols[i] = make([]string, n)
	}
	times := make([]time.Time, n)
	var reg struct { // registrationColumns, NULL where an entry has none
		caID, mode          []*string
		notBefore, notAfter []*time.Time
		seq                 []*int64
	}
	reg.caID, reg.mode = make([]*string, n), make([]*string, n)
	reg.notBefore, reg.notAfter, reg.seq = make([]*time.Time, n), make([]*time.Time, n), make([]*int64, n)
	for i, ch := range chs {
		if r := ch.Registration; ch.Kind == fleetcert.ChangeCertificateCreated && r != nil {
			mode := string(r.Mode)
			reg.caID[i], reg.mode[i], reg.seq[i] = &r.CACertificateID, &mode, &r.Seq
			if !r.NotBefore.IsZero() {
				t := r.NotBefore.UTC()
				reg.notBefore[i] = &t
			}
			if !r.NotAfter.IsZero() {
				t := r.NotAfter.UTC()
				reg.notAfter[i] = &t
			}
		}
		for j, v := range [...]string{string(ch.Kind), ch.Scope.AccountID, ch.Scope.Region, ch.CertificateID,
			string(ch.OldStatus), string(ch.NewStatus), ch.ClientID, ch.SessionID, ch.Resource, ch.Target,
			ch.Operation, ch.Actor, ch.ActorAccount, ch.SourceIP} {
			cols[j][i] = v
		}
		times[i] = ch.Time.UTC()
	}
	var base int64
	err := tx.q.QueryRow(ctx, appendChangesSQL, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], times,
		cols[6], cols[7], cols[8], cols[9], cols[10], cols[11], cols[12], cols[13],
		reg.caID, reg.mode, reg.notBefore, reg.notAfter, reg.seq).Scan(&base)
	if err != nil {
		return storeError(ctx, err, "append changes")
	}
	for i, ch := range chs {
		ch.Seq = base + int64(i) + 1
	}
	return nil
}
