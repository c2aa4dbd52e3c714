package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

// Filters of listCertificatesSQL (sqlite/certificate.go), a bit each.
const (
	filterCA = 1 << iota
	filterStatus
	filterOwner
	filterIDPrefix
	filterCombinations = 1 << iota
)

// TestListCertificatesPlan checks the plan of every listing statement:
// each filter combination the index serves reads two index ranges, the
// cursor's creation date past its seq and then the other dates, and sorts
// nothing. A row value (creation_date, seq) > (?, ?) would show as one
// range on creation_date alone, which steps over every row of the cursor's
// date before the cursor.
func TestListCertificatesPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	mustOpenDBAt(t, path, nil)
	raw := openRaw(t, path)
	for _, ascending := range []bool{true, false} {
		op := ">"
		if !ascending {
			op = "<"
		}
		for f := range filterCombinations {
			if f&filterIDPrefix != 0 {
				// Found by id and sorted: the cursor is a filter there.
				continue
			}
			index, prefix := "certificates_by_creation", "account_id=? AND region=?"
			switch {
			case f&filterCA != 0:
				index, prefix = "certificates_by_ca", prefix+" AND ca_certificate_id=?"
			case f&filterStatus != 0:
				index, prefix = "certificates_by_status", prefix+" AND status=?"
			}
			want := []string{
				"SEARCH certificates USING INDEX " + index + " (" + prefix + " AND creation_date=? AND seq" + op + "?)",
				"SEARCH certificates USING INDEX " + index + " (" + prefix + " AND creation_date" + op + "?)",
			}
			t.Run(fmt.Sprintf("ok/ascending=%v/filters=%04b", ascending, f), func(t *testing.T) {
				query := sqlite.ListCertificatesSQL(ascending, f)
				plan := queryPlan(t, raw, query, "a", "r", 1, 2, 3, "ca", "ACTIVE", "owner", "p", "q")
				var searches []string
				for _, detail := range plan {
					if strings.HasPrefix(detail, "SEARCH") || strings.HasPrefix(detail, "SCAN certificates") {
						searches = append(searches, detail)
					}
					if strings.Contains(detail, "TEMP B-TREE") {
						t.Errorf("the listing sorts: %s", detail)
					}
				}
				if strings.Join(searches, "\n") != strings.Join(want, "\n") {
					t.Fatalf("plan:\n%s\nwant the searches:\n%s", strings.Join(plan, "\n"), strings.Join(want, "\n"))
				}
			})
		}
	}
}

// queryPlan returns the details of EXPLAIN QUERY PLAN for query.
func queryPlan(t *testing.T, raw *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := raw.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// benchCAID is the CA the listing benchmarks' certificates are registered
// under.
var benchCAID = fleetcert.CertificateID([]byte("bench-ca"))

// seedUnderCA stores n benchmark certificates registered under benchCAID,
// ties of them per millisecond of creation (as ImportCertificates, which
// dates a batch with one clock reading), in a few transactions.
func seedUnderCA(b *testing.B, db *sqlite.DB, n, ties int) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 10_000 {
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			for i := start; i < min(n, start+10_000); i++ {
				c := benchCertificate(i)
				c.CACertificateID = benchCAID
				c.CreationDate = benchTime.Add(time.Duration(i/ties) * time.Millisecond)
				if err := tx.CreateCertificate(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListByCAPage is one page of ListCertificatesByCA (pageSize 250:
// Limit 251) after a cursor anywhere in the CA's certificates, newest
// first, in stores of 10,000 and 100,000 certificates dated 1,000 or
// 10,000 to a millisecond. One op is one page: its time should depend on
// neither the store's size nor the ties. cpu-ns/op is the process's CPU
// time per page, steadier than ns/op on a shared machine.
func BenchmarkListByCAPage(b *testing.B) {
	const size = fleetcert.MaxPageSize
	for _, bc := range []struct{ n, ties int }{
		{10_000, 1_000}, {100_000, 1_000}, {100_000, 10_000},
	} {
		b.Run(fmt.Sprintf("n=%d/ties=%d", bc.n, bc.ties), func(b *testing.B) {
			ctx := context.Background()
			db := MustOpenDB(b)
			seedUnderCA(b, db, bc.n, bc.ties)
			// The cursors: every certificate's position, read by paging
			// through once.
			var cursors []fleetcert.Cursor
			q := fleetcert.CertificateQuery{Scope: benchScope, CACertificateID: benchCAID, Limit: 10_000}
			for {
				var certs []*fleetcert.Certificate
				err := db.View(ctx, func(tx fleetcert.Tx) (err error) {
					certs, err = tx.ListCertificates(ctx, q)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range certs {
					cursors = append(cursors, fleetcert.Cursor{CreationDate: c.CreationDate, Seq: c.Seq})
				}
				if len(certs) < q.Limit {
					break
				}
				q.After = &cursors[len(cursors)-1]
			}
			if len(cursors) != bc.n {
				b.Fatalf("listed %d certificates, want %d", len(cursors), bc.n)
			}
			// Cursors that leave a full page after them.
			cursors = cursors[:bc.n-size-1]
			rng := rand.New(rand.NewPCG(1, 2))
			q.Limit = size + 1
			cpu := processCPU()
			for b.Loop() {
				q.After = &cursors[rng.IntN(len(cursors))]
				var certs []*fleetcert.Certificate
				err := db.View(ctx, func(tx fleetcert.Tx) (err error) {
					certs, err = tx.ListCertificates(ctx, q)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				if len(certs) != size+1 {
					b.Fatalf("a page of %d, want %d", len(certs), size+1)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
