package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// Registrations arriving together are stored together (Registry's
// registrar, fleetcert.CertificatesCreator): one transaction, so one turn
// of the change feed's head row (appendChangeSQL) and one commit for the
// batch, where each registration took its own.
var (
	_ fleetcert.CertificatesCreator = (*Tx)(nil)
	_ fleetcert.FailFirstUpdater    = (*DB)(nil)
)

// UpdateFailFirst implements fleetcert.FailFirstUpdater. It is Update: a
// PostgreSQL transaction is no other's, and fn's error rolls all of it
// back, whenever fn fails.
func (db *DB) UpdateFailFirst(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return db.Update(ctx, fn)
}

// certificateColumnCount is the number of certificateColumns, and of the
// values certificateArgs returns.
const certificateColumnCount = 25

// CreateCertificates stores each certificate of cs that its scope does not
// hold, and sets its Seq; see fleetcert.CertificatesCreator. In one round
// trip it takes the advisory lock of every id, as CreateCertificate takes
// its one (in key order, so that two batches sharing keys wait for each
// other instead of deadlocking), and inserts every row in one statement
// that skips those the table's unique key holds.
func (tx *Tx) CreateCertificates(ctx context.Context, cs []*fleetcert.Certificate) ([]bool, error) {
	if err := tx.checkWritable("create certificates"); err != nil {
		return nil, err
	}
	type key struct{ account, region, id string }
	stored := make([]bool, len(cs))
	at := make(map[key]int, len(cs)) // the first of cs with each key
	var rows []int                   // indexes in cs of the rows to insert
	var locks []int32
	for i, c := range cs {
		if c.ID == "" {
			return nil, errors.New("create certificates: a certificate without an id")
		}
		k := key{c.AccountID, c.Region, c.ID}
		if _, ok := at[k]; ok {
			continue // an earlier one of cs has it
		}
		at[k] = i
		rows = append(rows, i)
		locks = append(locks, certificateKey(c.ID))
	}
	if len(rows) == 0 {
		return stored, nil
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)

	var q strings.Builder
	q.WriteString(`INSERT INTO certificates (` + certificateColumns + `) VALUES `)
	args := make([]any, 0, certificateColumnCount*len(rows))
	for n, i := range rows {
		if n > 0 {
			q.WriteString(", ")
		}
		q.WriteByte('(')
		for j := range certificateColumnCount {
			if j > 0 {
				q.WriteString(", ")
			}
			q.WriteString("$" + strconv.Itoa(len(args)+j+1))
		}
		q.WriteByte(')')
		row := certificateArgs(cs[i])
		if len(row) != certificateColumnCount {
			return nil, fmt.Errorf("create certificates: %d values for %d columns", len(row), certificateColumnCount)
		}
		args = append(args, row...)
	}
	q.WriteString(` ON CONFLICT (account_id, region, certificate_id) DO NOTHING
		RETURNING account_id, region, certificate_id, seq`)

	br, err := tx.locked(ctx, exclusive, locks, q.String(), args...)
	if err != nil {
		return nil, storeError(ctx, err, "create certificates")
	}
	err = func() error {
		r, err := br.Query()
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
			var k key
			var seq int64
			if err := r.Scan(&k.account, &k.region, &k.id, &seq); err != nil {
				return err
			}
			i, ok := at[k]
			if !ok || stored[i] {
				return fmt.Errorf("the insert returned certificate %s, not one of the batch's", k.id)
			}
			cs[i].Seq, stored[i] = seq, true
		}
		return r.Err()
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, storeError(ctx, err, "create certificates")
	}
	return stored, nil
}
