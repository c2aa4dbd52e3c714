package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// The console's listings (issue 13): filters by CA or none, by issuer, by
// common name, and the order by expiry. There are too many combinations to
// prepare each up front (as listCertificatesSQL's are), so the query is
// built for the filters given and prepared on its first use (queryAdhoc).

// certificateWhere returns the WHERE clause of q's filters and its
// arguments (named parameters, so each clause is independent of the rest).
func certificateWhere(q fleetcert.CertificateQuery) (string, []any) {
	var b strings.Builder
	args := []any{q.AccountID, q.Region}
	// The index of the most selective filter: the planner, asked to sort by
	// creation, would otherwise walk the creation index and test every row.
	switch {
	case q.IDPrefix != "":
		b.WriteString(` INDEXED BY certificates_by_id_number`)
	case q.CommonNamePrefix != "":
		b.WriteString(` INDEXED BY certificates_by_common_name`)
	case q.Issuer != nil:
		b.WriteString(` INDEXED BY certificates_by_issuer`)
	}
	b.WriteString(` WHERE account_id = ?1 AND region = ?2`)
	add := func(clause string, vs ...any) {
		parts := strings.Split(clause, "?")
		b.WriteString(" AND " + parts[0])
		for i, v := range vs {
			args = append(args, v)
			fmt.Fprintf(&b, "?%d%s", len(args), parts[i+1])
		}
	}
	switch {
	case q.CACertificateID != "":
		add(`ca_certificate_id = ?`, q.CACertificateID)
	case q.NoCA:
		add(`ca_certificate_id = ''`)
	}
	if q.ExcludeCACertificateID != "" {
		// Tested on the index entry (certificates_by_issuer has the column),
		// so the many registered under the CA cost no row reads.
		add(`ca_certificate_id <> ?`, q.ExcludeCACertificateID)
	}
	if q.Status != "" {
		add(`status = ?`, string(q.Status))
	}
	if q.OwnedBy != "" {
		add(`owned_by = ?`, q.OwnedBy)
	}
	if q.IDPrefix != "" {
		// Ids are lowercase hex: every id that starts with the prefix sorts
		// below the prefix followed by 'g'. The ids' numbers come from
		// audit_subjects' index by id (migration 0015).
		add(`id_number IN (SELECT id FROM audit_subjects WHERE certificate_id >= ? AND certificate_id < ?)`, q.IDPrefix, q.IDPrefix+"g")
	}
	if q.Issuer != nil {
		add(`issuer = ?`, q.Issuer)
		if q.AuthorityKeyID != nil {
			// Absent is stored as an empty blob: an IN of two values on the
			// index.
			add(`authority_key_id IN (?, x'')`, q.AuthorityKeyID)
		}
	}
	if !q.NotAfterBefore.IsZero() {
		// A range on certificates_by_expiry; a row without a NotAfter
		// (NULL) never matches.
		add(`not_after < ?`, q.NotAfterBefore.UnixMicro())
	}
	if p := q.CommonNamePrefix; p != "" {
		// A range on the index: the strings that start with p sort from p
		// up to, not including, p with its last byte incremented (text
		// compares byte for byte, BINARY collation).
		if end, ok := prefixEnd(p); ok {
			add(`common_name >= ? AND common_name < ?`, p, end)
		} else {
			add(`common_name >= ?`, p)
		}
	}
	return b.String(), args
}

// prefixEnd returns the smallest string above every string with prefix p,
// and false when there is none (p is all 0xff bytes).
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// findCertificates is ListCertificates for the filters the prepared
// statements do not have.
func (tx *Tx) findCertificates(ctx context.Context, q fleetcert.CertificateQuery) ([]*fleetcert.Certificate, error) {
	if q.Issuer != nil && q.ExcludeCACertificateID != "" && q.CACertificateID == "" && !q.NoCA && !q.OrderByExpiry {
		return tx.findSignedCandidates(ctx, q)
	}
	return tx.findPage(ctx, q, "", nil)
}

// findSignedCandidates lists the certificates of an issuer not registered
// under one CA (what a CA's page checks for its signature). "Not this CA"
// would keep the index from giving creation order, and every view would
// sort all the issuer's entries, those registered under the CA included.
// So the ones registered without a CA (most) are read in the index's order,
// up to the page, and those under other CAs (few) from the two ranges on
// either side of the CA's id; the two are merged in order.
func (tx *Tx) findSignedCandidates(ctx context.Context, q fleetcert.CertificateQuery) ([]*fleetcert.Certificate, error) {
	exclude := q.ExcludeCACertificateID
	q.ExcludeCACertificateID = ""
	noCA := q
	noCA.NoCA = true
	var lists [3][]*fleetcert.Certificate
	for i, extra := range []string{
		"",
		// Each a range of the index; SQLite would not use their OR.
		`ca_certificate_id > '' AND ca_certificate_id < ?`,
		`ca_certificate_id > ?`,
	} {
		page, arg := q, any(exclude)
		if i == 0 {
			page, arg = noCA, nil
		}
		var err error
		if lists[i], err = tx.findPage(ctx, page, extra, arg); err != nil {
			return nil, err
		}
	}
	return mergePages(lists[:], q.Ascending, q.Limit), nil
}

// mergePages merges pages sorted in (CreationDate, Seq) order, ascending
// or not, into one of at most limit.
func mergePages(pages [][]*fleetcert.Certificate, ascending bool, limit int) []*fleetcert.Certificate {
	var merged []*fleetcert.Certificate
	for len(merged) < limit {
		best := -1
		for i, p := range pages {
			if len(p) == 0 {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			c := cmp.Or(p[0].CreationDate.Compare(pages[best][0].CreationDate), cmp.Compare(p[0].Seq, pages[best][0].Seq))
			if (c < 0) == ascending {
				best = i
			}
		}
		if best < 0 {
			break
		}
		merged = append(merged, pages[best][0])
		pages[best] = pages[best][1:]
	}
	return merged
}

// findPage reads a page of q, with extra (when not "") as one more
// condition, whose one parameter (a ?, when arg is not nil) is arg.
func (tx *Tx) findPage(ctx context.Context, q fleetcert.CertificateQuery, extra string, arg any) ([]*fleetcert.Certificate, error) {
	where, args := certificateWhere(q)
	if extra != "" {
		if arg != nil {
			args = append(args, arg)
			extra = strings.Replace(extra, "?", fmt.Sprintf("?%d", len(args)), 1)
		}
		where += " AND " + extra
	}
	col := "creation_date"
	if q.OrderByExpiry {
		col = "not_after"
	}
	var pos, seq int64 = math.MinInt64, math.MinInt64
	if !q.Ascending {
		pos, seq = math.MaxInt64, math.MaxInt64
	}
	if q.After != nil {
		var e encoder
		if q.OrderByExpiry {
			pos = e.micros(q.After.CreationDate).Int64
		} else {
			pos = e.nanos(q.After.CreationDate).Int64
		}
		if e.err != nil {
			return nil, fmt.Errorf("list certificates: cursor: %w", e.err)
		}
		seq = q.After.Seq
	}
	n := len(args)
	var b strings.Builder
	b.WriteString(`SELECT ` + strings.Replace(certificateColumns, "status, pem,", "status, '' AS pem,", 1) + `, seq FROM certificates`)
	b.WriteString(where)
	// The Registry always sets NotAfter; a row without one (NULL) is left
	// out of the listing by expiry.
	if q.Ascending {
		fmt.Fprintf(&b, ` AND (%s, seq) > (?%d, ?%d) ORDER BY %s, seq`, col, n+1, n+2, col)
	} else {
		fmt.Fprintf(&b, ` AND (%s, seq) < (?%d, ?%d) ORDER BY %s DESC, seq DESC`, col, n+1, n+2, col)
	}
	fmt.Fprintf(&b, ` LIMIT ?%d`, n+3)
	args = append(args, pos, seq, q.Limit)
	rows, err := tx.queryAdhoc(ctx, b.String(), args...)
	return scanCertificateList(rows, err, q.Limit)
}

// CountCertificates returns min(limit, the number of certificates of
// q.Scope matching q's filters).
func (tx *Tx) CountCertificates(ctx context.Context, q fleetcert.CertificateQuery, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	where, args := certificateWhere(q)
	query := fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM certificates%s LIMIT ?%d)`, where, len(args)+1)
	rows, err := tx.queryAdhoc(ctx, query, append(args, limit)...)
	if err != nil {
		return 0, fmt.Errorf("count certificates: %w", err)
	}
	defer rows.Close()
	var n int
	if rows.Next() {
		err = rows.Scan(&n)
	}
	if err = cmp.Or(err, rows.Err()); err != nil {
		return 0, fmt.Errorf("count certificates: %w", err)
	}
	return n, nil
}
