package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

// Migration 0014 rebuilds the certificates table with one index by id, and
// 0015 keys that index on the id's number. A store written before them
// keeps every registration (one id in two accounts included) with its seq,
// keeps the AUTOINCREMENT counter past a deleted row's seq, refuses a
// duplicate as before, and is left with a single index for the id, the
// unique one on its number, which the gateway's lookup reads too; no index
// of the table is keyed on the id itself.
func TestDB_MigrateCertificatesOneIDIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	if err := sqlite.MigrateTo(path, 13); err != nil {
		t.Fatal(err)
	}
	a := fleetcert.Scope{AccountID: "111111111111", Region: "us-east-1"}
	b := fleetcert.Scope{AccountID: "222222222222", Region: "us-east-1"}
	id := func(s string) string { return fleetcert.CertificateID([]byte(s)) }
	raw := openRaw(t, path)
	for _, r := range []struct {
		scope fleetcert.Scope
		id    string
	}{{a, id("x")}, {b, id("x")}, {a, id("y")}, {a, id("deleted")}} {
		// As the build before 0014 wrote them (filled: the backfill at
		// open leaves them alone), without the ids' numbers that
		// CreateCertificate gives since 0013: 0015 numbers them.
		if _, err := raw.Exec(`INSERT INTO certificates (account_id, region, certificate_id, status, pem, mode,
			creation_date, customer_version, common_name, serial) VALUES (?, ?, ?, 'ACTIVE', 'pem', 'DEFAULT', 1, 1, 'cn', x'01')`,
			r.scope.AccountID, r.scope.Region, r.id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`DELETE FROM certificates WHERE certificate_id = ?`, id("deleted")); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db := mustOpenDBAt(t, path, nil)
	err := db.View(ctx, func(tx fleetcert.Tx) error {
		regs, err := tx.CertificatesByID(ctx, id("x"))
		if err != nil {
			return err
		}
		var got []string
		for _, c := range regs {
			got = append(got, fmt.Sprintf("%s/%d", c.AccountID, c.Seq))
		}
		if want := []string{a.AccountID + "/1", b.AccountID + "/2"}; !slices.Equal(got, want) {
			t.Errorf("registrations of x: %v, want %v", got, want)
		}
		c, err := tx.Certificate(ctx, a, id("y"))
		if err != nil {
			return err
		}
		if c.Seq != 3 {
			t.Errorf("y: seq %d, want 3", c.Seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	newCert := func(scope fleetcert.Scope, id string) *fleetcert.Certificate {
		return &fleetcert.Certificate{Scope: scope, ID: id, Status: fleetcert.StatusActive, PEM: "pem",
			Mode: fleetcert.ModeDefault, CreationDate: time.Unix(2, 0).UTC()}
	}
	err = db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, newCert(a, id("x"))) })
	if code := fleetcert.ErrorCode(err); code != fleetcert.EResourceAlreadyExists {
		t.Errorf("x again in the same account: %v, want %s", err, fleetcert.EResourceAlreadyExists)
	}
	z := newCert(a, id("z"))
	if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, z) }); err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx fleetcert.Tx) (err error) {
		z, err = tx.Certificate(ctx, a, id("z"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if z.Seq != 5 {
		t.Errorf("a certificate stored after the migration: seq %d, want 5 (4 was the deleted row's)", z.Seq)
	}

	raw = openRaw(t, path)
	indexes := queryStrings(t, raw, `SELECT name FROM pragma_index_list('certificates') WHERE name LIKE '%by_id%' OR origin <> 'c' ORDER BY name`)
	if want := []string{"certificates_by_id_number"}; !slices.Equal(indexes, want) {
		t.Errorf("indexes by id or from constraints: %v, want %v", indexes, want)
	}
	cols := queryStrings(t, raw, `SELECT name FROM pragma_index_info('certificates_by_id_number') ORDER BY seqno`)
	if want := []string{"id_number", "account_id", "region"}; !slices.Equal(cols, want) {
		t.Errorf("certificates_by_id_number columns %v, want %v", cols, want)
	}
	if first := queryStrings(t, raw, `SELECT l.name FROM pragma_index_list('certificates') l
		WHERE (SELECT name FROM pragma_index_info(l.name) WHERE seqno = 0) = 'certificate_id'`); len(first) > 0 {
		t.Errorf("indexes keyed first on the id, a hash, written at random places: %v", first)
	}
	// Every row carries its id's number; an id has one number.
	if bad := queryStrings(t, raw, `SELECT certificate_id FROM certificates c
		WHERE id_number IS NOT (SELECT id FROM audit_subjects s WHERE s.certificate_id = c.certificate_id)`); len(bad) > 0 {
		t.Errorf("rows without their id's number: %v", bad)
	}
	// Each statement by id reads it, by the whole key or by its prefix,
	// after the number's lookup.
	args := []any{a.AccountID, a.Region, id("y"), "", "ACTIVE", "pem", "DEFAULT", "", "", 1, nil, 1, "", nil, nil,
		nil, nil, nil, nil, nil, nil, nil, nil, "cn", []byte{1}}
	const number = "SEARCH audit_subjects USING COVERING INDEX audit_subjects_by_certificate (certificate_id=?)"
	for name, q := range map[string]string{"select": sqlite.SelectCertificateSQL, "update": sqlite.UpdateCertificateSQL,
		"delete": sqlite.DeleteCertificateSQL} {
		plan := fmt.Sprint(queryPlan(t, raw, q, args...))
		if !strings.Contains(plan, "USING INDEX certificates_by_id_number (id_number=? AND account_id=? AND region=?)") || !strings.Contains(plan, number) {
			t.Errorf("%s by id: plan %s, want a search of certificates_by_id_number by its whole key", name, plan)
		}
	}
	if plan := fmt.Sprint(queryPlan(t, raw, sqlite.CertificatesByIDSQL, id("x"))); !strings.Contains(plan, "USING INDEX certificates_by_id_number (id_number=?)") || !strings.Contains(plan, number) {
		t.Errorf("registrations by id: plan %s, want a search of certificates_by_id_number by its prefix", plan)
	}
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q %v", check, err)
	}
}
