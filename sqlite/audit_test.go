package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/sqlite"
)

var auditScope = fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}

// auditedCertificate is a certificate of auditScope and the change that
// audits an update of it at t.
func auditedCertificate(i int, t time.Time) (*fleetcert.Certificate, *fleetcert.Change) {
	c := benchCertificate(i)
	c.Scope = auditScope
	ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated, Scope: auditScope, CertificateID: c.ID,
		OldStatus: fleetcert.StatusActive, NewStatus: fleetcert.StatusRevoked, Time: t,
		Operation: "UpdateCertificate", Actor: "AKIAAUDITTEST0000001", ActorAccount: auditScope.AccountID, SourceIP: "127.0.0.1"}
	return c, ch
}

// TestAuditPlan: the audit log's queries read one index range in the order
// asked, a certificate's through its number (migration 0013), never sorting.
func TestAuditPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	mustOpenDBAt(t, path, nil)
	raw := openRaw(t, path)
	since := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name string
		q    fleetcert.AuditQuery
		want string
	}{
		{"ok/certificate", fleetcert.AuditQuery{CertificateID: "c1"}, "SEARCH audit USING INDEX audit_by_subject (subject=?)"},
		{"ok/certificate-since", fleetcert.AuditQuery{CertificateID: "c1", Since: since},
			"SEARCH audit USING INDEX audit_by_subject (subject=? AND time>?)"},
		{"ok/certificate-in-account", fleetcert.AuditQuery{CertificateID: "c1", AccountID: auditScope.AccountID},
			"SEARCH audit USING INDEX audit_by_subject (subject=?)"},
		{"ok/resource", fleetcert.AuditQuery{Resource: "thing/pump"}, "SEARCH audit USING INDEX audit_by_resource (resource=?)"},
		{"ok/time", fleetcert.AuditQuery{Since: since}, "SEARCH audit USING INDEX audit_by_time (time>?)"},
	} {
		for _, newest := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/newest=%v", tc.name, newest), func(t *testing.T) {
				q := tc.q
				q.Limit, q.Newest = 10, newest
				query, args, err := sqlite.AuditEntriesSQL(q)
				if err != nil {
					t.Fatal(err)
				}
				text := strings.Join(queryPlan(t, raw, query, args...), "\n")
				if !strings.Contains(text, tc.want) || strings.Contains(text, "TEMP B-TREE") || strings.Contains(text, "SCAN audit") {
					t.Fatalf("plan:\n%s\nwant %q, no sort, no scan", text, tc.want)
				}
			})
		}
	}
}

// TestAuditSubjectsInCreationOrder: certificates are numbered for the audit
// log's index when stored, in the order stored, whether or not an entry
// names them, so that a bulk job's entries (a CA's certificates in creation
// order) land beside each other in the index; ids that never were a client
// certificate's (a CA's) are numbered when an entry names them.
func TestAuditSubjectsInCreationOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	db := mustOpenDBAt(t, path, nil)
	var ids []string
	err := db.Update(ctx, func(tx fleetcert.Tx) error {
		for i := range 50 {
			c, _ := auditedCertificate(i, benchTime)
			if err := tx.CreateCertificate(ctx, c); err != nil {
				return err
			}
			ids = append(ids, c.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ca := &fleetcert.Change{Kind: fleetcert.ChangeCACertificateUpdated, Scope: auditScope, CertificateID: strings.Repeat("ca", 32),
		NewStatus: fleetcert.StatusInactive, Time: benchTime, Operation: "UpdateCACertificate", Actor: "AKIAAUDITTEST0000001"}
	if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.AppendChange(ctx, ca) }); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, ca.CertificateID)
	raw := openRaw(t, path)
	got := queryStrings(t, raw, `SELECT certificate_id FROM audit_subjects ORDER BY id`)
	if !reflect.DeepEqual(got, ids) {
		t.Fatalf("numbered:\n%q\nwant the creation order:\n%q", got, ids)
	}
}

// TestCertificatesKeyedOnIDNumber: a certificate row carries its id's
// number (migration 0015), the same number in every account that holds the
// id and again after the id was deleted and registered anew; an empty id,
// which has no number, is refused and stores nothing.
func TestCertificatesKeyedOnIDNumber(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	db := mustOpenDBAt(t, path, nil)
	other := fleetcert.Scope{AccountID: "210987654321", Region: auditScope.Region}
	create := func(c *fleetcert.Certificate) error {
		return db.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateCertificate(ctx, c) })
	}
	x, _ := auditedCertificate(1, benchTime)
	y, _ := auditedCertificate(2, benchTime)
	xOther := *x
	xOther.Scope = other
	for _, c := range []*fleetcert.Certificate{x, y, &xOther} {
		if err := create(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.DeleteCertificate(ctx, x.Scope, x.ID) }); err != nil {
		t.Fatal(err)
	}
	again := *x
	if err := create(&again); err != nil {
		t.Fatal(err)
	}
	if err := create(&again); fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
		t.Errorf("the same id again in the same account: %v, want %s", err, fleetcert.EResourceAlreadyExists)
	}
	empty, _ := auditedCertificate(3, benchTime)
	empty.ID = ""
	if err := create(empty); err == nil {
		t.Error("a certificate with no id was stored")
	}

	raw := openRaw(t, path)
	got := queryStrings(t, raw, `SELECT c.account_id || ' ' || c.id_number || ' ' || s.id FROM certificates c
		JOIN audit_subjects s ON s.certificate_id = c.certificate_id ORDER BY c.seq`)
	want := []string{auditScope.AccountID + " 2 2", other.AccountID + " 1 1", auditScope.AccountID + " 1 1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows (account, id_number, the id's number) in seq order: %q, want %q", got, want)
	}
	if n := queryStrings(t, raw, `SELECT count(*) FROM certificates`); !reflect.DeepEqual(n, []string{"3"}) {
		t.Errorf("%v certificates stored, want 3", n)
	}
}

// TestDB_MigrateAuditSubjects: a store written before migration 0013 (the
// audit log indexed by certificate id) keeps every certificate's history
// after it: live certificates', a deleted one's, a CA's.
func TestDB_MigrateAuditSubjects(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	var (
		certs []*fleetcert.Certificate
		chs   []*fleetcert.Change
	)
	for i := range 20 {
		c, ch := auditedCertificate(i, benchTime.Add(time.Duration(i)*time.Second))
		certs, chs = append(certs, c), append(chs, ch)
	}
	ca := &fleetcert.Change{Kind: fleetcert.ChangeCACertificateUpdated, Scope: auditScope, CertificateID: strings.Repeat("ca", 32),
		NewStatus: fleetcert.StatusInactive, Time: benchTime, Operation: "UpdateCACertificate", Actor: "AKIAAUDITTEST0000001"}
	err := db.Update(ctx, func(tx fleetcert.Tx) error {
		for _, c := range certs {
			if err := tx.CreateCertificate(ctx, c); err != nil {
				return err
			}
		}
		if err := tx.AppendChanges(ctx, chs[:10]); err != nil {
			return err
		}
		for _, ch := range append(chs[10:], ca) {
			if err := tx.AppendChange(ctx, ch); err != nil {
				return err
			}
		}
		return tx.DeleteCertificate(ctx, auditScope, certs[3].ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	history := func(db *sqlite.DB, id string) []fleetcert.AuditEntry {
		t.Helper()
		var got []fleetcert.AuditEntry
		err := db.View(ctx, func(tx fleetcert.Tx) (err error) {
			got, err = tx.AuditEntries(ctx, fleetcert.AuditQuery{CertificateID: id, Limit: 10})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	ids := []string{certs[0].ID, certs[3].ID, certs[15].ID, ca.CertificateID}
	want := map[string][]fleetcert.AuditEntry{}
	for _, id := range ids {
		if want[id] = history(db, id); len(want[id]) != 1 {
			t.Fatalf("history of %s before: %+v, want one entry", id, want[id])
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Back to the schema before 0013, as a store written by a build without it.
	raw := openRaw(t, path)
	for _, stmt := range []string{
		`DROP INDEX audit_by_subject`,
		`ALTER TABLE audit DROP COLUMN subject`,
		`DROP TABLE audit_subjects`,
		`CREATE INDEX audit_by_certificate ON audit (certificate_id, time, seq) WHERE certificate_id <> ''`,
		`DELETE FROM schema_migrations WHERE version >= 13`,
	} {
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw.Close()

	db = mustOpenDBAt(t, path, nil)
	for _, id := range ids {
		if got := history(db, id); !reflect.DeepEqual(got, want[id]) {
			t.Errorf("history of %s after the migration:\n got %+v\nwant %+v", id, got, want[id])
		}
	}
}

// TestAuditSubjectAfterUndoneMember: a certificate stored by a member of a
// write group that is then undone loses its number with it, which SQLite
// gives the next id numbered; a later member's audit entry about the first
// certificate's id must not be filed under that number (the writer forgets
// the number CreateCertificate remembered for the entry that follows it).
func TestAuditSubjectAfterUndoneMember(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleetcert.db")
	db := mustOpenDBAt(t, path, nil)
	undone, undoneCh := auditedCertificate(1, benchTime)
	ca := &fleetcert.Change{Kind: fleetcert.ChangeCACertificateUpdated, Scope: auditScope, CertificateID: strings.Repeat("ca", 32),
		NewStatus: fleetcert.StatusInactive, Time: benchTime, Operation: "UpdateCACertificate", Actor: "AKIAAUDITTEST0000001"}
	errUndo := errors.New("undo this member")
	members := []func(tx fleetcert.Tx) error{
		func(tx fleetcert.Tx) error { // numbers the certificate, then fails
			if err := tx.CreateCertificate(ctx, undone); err != nil {
				return err
			}
			return errUndo
		},
		func(tx fleetcert.Tx) error { return tx.AppendChange(ctx, ca) }, // takes the freed number
		func(tx fleetcert.Tx) error { return tx.AppendChange(ctx, undoneCh) },
	}

	// The holder keeps the writer until the members queue, in order.
	release, holding := make(chan struct{}), make(chan struct{})
	errs := make([]chan error, len(members)+1)
	for i := range errs {
		errs[i] = make(chan error, 1)
	}
	go func() {
		errs[0] <- db.Update(ctx, func(tx fleetcert.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	for i, fn := range members {
		go func() { errs[i+1] <- db.Update(ctx, fn) }()
		testwait.For(t, fmt.Sprintf("member %d queued", i+1), func() bool { return db.WaitingWriters() == i+1 })
	}
	close(release)
	for i, ch := range errs {
		if err := <-ch; (i == 1) != errors.Is(err, errUndo) {
			t.Fatalf("member %d: %v", i, err)
		}
	}

	for _, id := range []string{undone.ID, ca.CertificateID} {
		var got []fleetcert.AuditEntry
		err := db.View(ctx, func(tx fleetcert.Tx) error {
			var err error
			got, err = tx.AuditEntries(ctx, fleetcert.AuditQuery{CertificateID: id, Limit: 10})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].CertificateID != id {
			t.Errorf("history of %s: %+v, want its one entry", id, got)
		}
	}
}
