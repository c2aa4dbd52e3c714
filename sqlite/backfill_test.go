package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/sqlite"
)

// TestDB_BackfillIssuer: rows stored before migration 0004 (issuer,
// authority key id and common name NULL) get them from their PEM on the
// next Open, so the console finds them by issuer and name.
func TestDB_BackfillIssuer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	reg := fleetcert.NewRegistry(db, nil)
	scope := fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Backfill CA"})
	var want []*fleetcert.Certificate
	for _, cn := range []string{"sensor-1", "sensor-2", "sensor-3"} {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{Parent: ca, CommonName: cn}).PEM, fleetcert.StatusActive)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE certificates SET issuer = NULL, authority_key_id = NULL, common_name = NULL, serial = NULL`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db = sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg = fleetcert.NewRegistry(db, nil)
	for _, w := range want {
		got, err := reg.DescribeCertificate(ctx, scope, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("after the backfill:\n got %+v\nwant %+v", got, w)
		}
		if got.CommonName == "" || got.Issuer == nil || got.AuthorityKeyID == nil || got.Serial == nil {
			t.Errorf("%s: fields not filled: %q %x %x %x", got.ID[:8], got.CommonName, got.Issuer, got.AuthorityKeyID, got.Serial)
		}
	}
	page, err := reg.FindCertificates(ctx, scope, fleetcert.CertificateFilter{CommonNamePrefix: "sensor-"}, fleetcert.ListOptions{})
	if err != nil || len(page.Certificates) != 3 {
		t.Fatalf("search by name after the backfill: %d certificates, %v", len(page.Certificates), err)
	}
}
