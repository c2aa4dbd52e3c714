package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/postgres"
)

// planNode is a node of EXPLAIN (FORMAT JSON)'s plan.
type planNode struct {
	NodeType      string     `json:"Node Type"`
	IndexName     string     `json:"Index Name"`
	IndexCond     string     `json:"Index Cond"`
	ActualRows    float64    `json:"Actual Rows"`
	RemovedByFilt float64    `json:"Rows Removed by Filter"`
	SharedHit     float64    `json:"Shared Hit Blocks"`
	SharedRead    float64    `json:"Shared Read Blocks"`
	Plans         []planNode `json:"Plans"`
}

// walk calls fn on n and every node below it.
func (n *planNode) walk(fn func(*planNode)) {
	fn(n)
	for i := range n.Plans {
		n.Plans[i].walk(fn)
	}
}

// TestListCertificatesPlan checks the plans of ListCertificates' pages on a
// store of certificates dated 1,000 to a millisecond (as a bulk import
// dates them), with the cursor inside a tie: without filters, by CA, by
// status, by CA and owner, in both orders. Each is one index scan whose
// condition holds the row value, so it starts at the cursor and sorts
// nothing, and reads the page's rows and at most as many that a filter
// removes (the planner may take the creation index for a CA that holds
// most certificates, filtering the others out): a page costs the same at
// any depth. FLEETCERT_PLAN_ROWS sets the store's size
// (20,000 by default; 1000000 for issue 17's million).
func TestListCertificatesPlan(t *testing.T) {
	n := 20_000
	if v := os.Getenv("FLEETCERT_PLAN_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2_000 {
			t.Fatalf("FLEETCERT_PLAN_ROWS=%q: want a number of at least 2000", v)
		}
	}
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	mustOpenDBAt(t, url) // migrates
	conn := raw(t, url)
	scope := fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}
	caID := fleetcert.CertificateID([]byte("plan-ca"))
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	start := time.Now()
	for from := 1; from <= n; from += 100_000 {
		// Three in four under the CA, one in five INACTIVE, 1,000 a
		// millisecond; a PEM of a real one's size.
		_, err := conn.Exec(ctx, `INSERT INTO certificates (account_id, region, certificate_id,
			ca_certificate_id, status, pem, mode, owned_by, creation_date, last_modified_date,
			customer_version, not_before, not_after, common_name)
			SELECT $1, $2, encode(sha256(i::text::bytea), 'hex'),
				CASE WHEN i % 4 = 3 THEN '' ELSE $3 END,
				CASE WHEN i % 5 = 4 THEN 'INACTIVE' ELSE 'ACTIVE' END,
				repeat('A', 700), 'DEFAULT', $1,
				$4::timestamptz + (i / 1000) * interval '1 millisecond',
				$4::timestamptz + (i / 1000) * interval '1 millisecond',
				1, $4::timestamptz, $4::timestamptz + interval '1 year', 'device-' || i
			FROM generate_series($5::int, $6::int) i`,
			scope.AccountID, scope.Region, caID, base, from, min(n, from+99_999))
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE certificates`); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d certificates inserted and analysed in %v", n, time.Since(start).Round(time.Millisecond))

	// A cursor in the middle of the store and of a millisecond's tie.
	var cursor fleetcert.Cursor
	err := conn.QueryRow(ctx, `SELECT creation_date, seq FROM certificates WHERE seq = $1`, int64(n/2+501)).
		Scan(&cursor.CreationDate, &cursor.Seq)
	if err != nil {
		t.Fatal(err)
	}
	const limit = fleetcert.MaxPageSize + 1
	for _, tc := range []struct {
		name  string
		q     fleetcert.CertificateQuery
		index string // or certificates_by_creation
	}{
		{"all", fleetcert.CertificateQuery{}, "certificates_by_creation"},
		{"CA", fleetcert.CertificateQuery{CACertificateID: caID}, "certificates_by_ca"},
		{"status", fleetcert.CertificateQuery{Status: fleetcert.StatusInactive}, "certificates_by_status"},
		{"CA and owner", fleetcert.CertificateQuery{CACertificateID: caID, OwnedBy: scope.AccountID}, "certificates_by_ca"},
	} {
		for _, ascending := range []bool{true, false} {
			t.Run(fmt.Sprintf("ok/%s/ascending=%v", tc.name, ascending), func(t *testing.T) {
				q := tc.q
				q.Scope, q.Ascending, q.After, q.Limit = scope, ascending, &cursor, limit
				query, args := postgres.ListCertificatesQuery(q)
				var out []byte
				err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+query, args...).Scan(&out)
				if err != nil {
					t.Fatal(err)
				}
				var plans []struct {
					Plan          planNode `json:"Plan"`
					ExecutionTime float64  `json:"Execution Time"`
				}
				if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
					t.Fatalf("EXPLAIN: %v\n%s", err, out)
				}
				var scans []*planNode
				plans[0].Plan.walk(func(p *planNode) {
					switch {
					case strings.Contains(p.NodeType, "Sort"):
						t.Errorf("the page sorts (%s)", p.NodeType)
					case strings.Contains(p.NodeType, "Scan"):
						scans = append(scans, p)
					}
				})
				if len(scans) != 1 || scans[0].NodeType != "Index Scan" ||
					scans[0].IndexName != tc.index && scans[0].IndexName != "certificates_by_creation" ||
					!strings.Contains(scans[0].IndexCond, "ROW(creation_date, seq)") {
					t.Fatalf("want one index scan of %s on the row value; plan:\n%s", tc.index, out)
				}
				s := scans[0]
				if s.ActualRows != limit || s.RemovedByFilt > limit {
					t.Fatalf("the scan returned %v rows and removed %v, want the page's %d and at most as many removed; plan:\n%s",
						s.ActualRows, s.RemovedByFilt, limit, out)
				}
				t.Logf("%s, %v removed by filter: %.2f ms, %v buffers hit, %v read", s.IndexCond, s.RemovedByFilt,
					plans[0].ExecutionTime, s.SharedHit, s.SharedRead)
			})
		}
	}
}
