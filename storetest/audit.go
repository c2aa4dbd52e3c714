package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// auditChange returns a change carrying an Operation and an actor, so that
// AppendChange writes its audit entry.
func auditChange(scope fleetcert.Scope, name, op string, from, to fleetcert.Status, at time.Time) *fleetcert.Change {
	ch := newChange(scope, name, fleetcert.ChangeCertificateUpdated, from, to, at)
	ch.Operation, ch.Actor, ch.ActorAccount, ch.SourceIP = op, "AKIAAUDITTEST0000001", scope.AccountID, "127.0.0.1"
	return ch
}

// entryOf is the audit entry a store must keep for ch.
func entryOf(ch *fleetcert.Change) fleetcert.AuditEntry {
	return fleetcert.AuditEntry{
		Seq: ch.Seq, Time: ch.Time, Scope: ch.Scope, Operation: ch.Operation, Kind: ch.Kind,
		CertificateID: ch.CertificateID, OldStatus: ch.OldStatus, NewStatus: ch.NewStatus,
		Resource: ch.Resource, Target: ch.Target,
		Actor: ch.Actor, ActorAccount: ch.ActorAccount, SourceIP: ch.SourceIP,
	}
}

// audit returns AuditEntries(q).
func audit(tb testing.TB, s fleetcert.Store, q fleetcert.AuditQuery) []fleetcert.AuditEntry {
	tb.Helper()
	ctx := context.Background()
	var got []fleetcert.AuditEntry
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		got, err = tx.AuditEntries(ctx, q)
		return err
	})
	if err != nil {
		tb.Fatalf("audit entries %+v: %v", q, err)
	}
	return got
}

func testAuditAppend(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	c := newCertificate(scopeA, "c", baseTime)
	create(t, s, c)
	// No Operation (a session announcement): no entry.
	appendChanges(t, s, &fleetcert.Change{Kind: fleetcert.ChangeSessionStarted, Scope: scopeA, CertificateID: c.ID,
		ClientID: "sensor", SessionID: "s1", Time: baseTime})
	revoke := auditChange(scopeA, "c", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, baseTime.Add(time.Second))
	revoke.Actor, revoke.SourceIP = "console:AKIAAUDITTEST0000001", "::1"
	key := &fleetcert.Change{Kind: fleetcert.ChangeAccessKeyCreated, Scope: fleetcert.Scope{AccountID: scopeA.AccountID},
		Resource: "AKIAAUDITTEST0000002", Time: baseTime.Add(2 * time.Second), Operation: "CreateAccessKey", Actor: fleetcert.ActorCLI}
	appendChanges(t, s, revoke, key)

	want := []fleetcert.AuditEntry{entryOf(revoke), entryOf(key)}
	if got := audit(t, s, fleetcert.AuditQuery{Limit: 10}); !reflect.DeepEqual(got, want) {
		t.Fatalf("audit log:\n got %+v\nwant %+v", got, want)
	}

	// The entry is written in the change's transaction: rolled back with it.
	errRollback := errors.New("rolled back")
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		ch := auditChange(scopeA, "c", "DeleteCertificate", fleetcert.StatusRevoked, "", baseTime.Add(3*time.Second))
		ch.Kind = fleetcert.ChangeCertificateDeleted
		if err := tx.AppendChange(ctx, ch); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update returned %v, want %v", err, errRollback)
	}
	if got := audit(t, s, fleetcert.AuditQuery{Limit: 10}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a rolled-back Update, audit log:\n got %+v\nwant %+v", got, want)
	}

	// The feed's pruning leaves the audit log alone.
	if _, err := s.PruneChanges(ctx, baseTime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := audit(t, s, fleetcert.AuditQuery{Limit: 10}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after PruneChanges, audit log:\n got %+v\nwant %+v", got, want)
	}
}

func testAuditQuery(t *testing.T, s fleetcert.Store) {
	at := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Minute) }
	chs := []*fleetcert.Change{
		auditChange(scopeA, "c1", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusInactive, at(0)),
		auditChange(scopeB, "c1", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, at(1)),
		auditChange(scopeARegion, "c1", "UpdateCertificate", fleetcert.StatusInactive, fleetcert.StatusActive, at(2)),
		auditChange(scopeA, "c2", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, at(3)),
		{Kind: fleetcert.ChangeObjectCreated, Scope: scopeA, Resource: "thing/pump", Time: at(4),
			Operation: "CreateThing", Actor: "AKIAAUDITTEST0000001", ActorAccount: scopeA.AccountID, SourceIP: "127.0.0.1"},
		{Kind: fleetcert.ChangeLinkCreated, Scope: scopeA, Resource: "thing-principal/pump",
			Target: "arn:aws:iot:us-east-1:123456789012:cert/" + certificateID("c1"), Time: at(5),
			Operation: "AttachThingPrincipal", Actor: "AKIAAUDITTEST0000001", ActorAccount: scopeA.AccountID},
		auditChange(scopeA, "c1", "UpdateCertificate", fleetcert.StatusInactive, fleetcert.StatusActive, at(6)),
	}
	// Out of Seq order in time: the log is read in (Time, Seq) order.
	late := auditChange(scopeA, "c1", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusActive, at(6))
	appendChanges(t, s, chs[0], chs[1])
	appendChanges(t, s, chs[2:]...)
	appendChanges(t, s, late)
	all := append(chs, late)
	entries := func(idx ...int) []fleetcert.AuditEntry {
		var out []fleetcert.AuditEntry
		for _, i := range idx {
			out = append(out, entryOf(all[i]))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    fleetcert.AuditQuery
		want []fleetcert.AuditEntry
	}{
		{"ok/all", fleetcert.AuditQuery{}, entries(0, 1, 2, 3, 4, 5, 6, 7)},
		{"ok/newest-first", fleetcert.AuditQuery{Newest: true}, entries(7, 6, 5, 4, 3, 2, 1, 0)},
		{"ok/certificate", fleetcert.AuditQuery{CertificateID: certificateID("c1")}, entries(0, 1, 2, 6, 7)},
		{"ok/certificate-in-scope", fleetcert.AuditQuery{CertificateID: certificateID("c1"), AccountID: scopeA.AccountID, Region: scopeA.Region},
			entries(0, 6, 7)},
		{"ok/certificate-newest-limit", fleetcert.AuditQuery{CertificateID: certificateID("c1"), Newest: true, Limit: 2}, entries(7, 6)},
		{"ok/account", fleetcert.AuditQuery{AccountID: scopeB.AccountID}, entries(1)},
		{"ok/region", fleetcert.AuditQuery{Region: scopeARegion.Region}, entries(2)},
		{"ok/resource", fleetcert.AuditQuery{Resource: "thing/pump"}, entries(4)},
		{"ok/since", fleetcert.AuditQuery{Since: at(5)}, entries(5, 6, 7)},
		{"ok/until", fleetcert.AuditQuery{Until: at(2)}, entries(0, 1)},
		{"ok/since-until-certificate", fleetcert.AuditQuery{Since: at(1), Until: at(6), CertificateID: certificateID("c1")}, entries(1, 2)},
		{"ok/after", fleetcert.AuditQuery{After: &fleetcert.AuditCursor{Time: at(6), Seq: chs[6].Seq}}, entries(7)},
		{"ok/after-newest", fleetcert.AuditQuery{Newest: true, After: &fleetcert.AuditCursor{Time: at(1), Seq: chs[1].Seq}}, entries(0)},
		{"ok/none", fleetcert.AuditQuery{CertificateID: certificateID("none")}, nil},
		{"ok/since-far-future", fleetcert.AuditQuery{Since: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}, nil},
		{"ok/until-far-future", fleetcert.AuditQuery{Until: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}, entries(0, 1, 2, 3, 4, 5, 6, 7)},
		{"ok/since-long-ago", fleetcert.AuditQuery{Since: time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)}, entries(0, 1, 2, 3, 4, 5, 6, 7)},
		{"ok/until-long-ago", fleetcert.AuditQuery{Until: time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Limit == 0 {
				q.Limit = 100
			}
			if got := audit(t, s, q); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("AuditEntries(%+v):\n got %+v\nwant %+v", q, got, tc.want)
			}
		})
	}

	// Paging by cursor, in both orders, visits every entry once.
	for _, newest := range []bool{false, true} {
		var got []fleetcert.AuditEntry
		q := fleetcert.AuditQuery{Newest: newest, Limit: 3}
		for range len(all) + 1 {
			page := audit(t, s, q)
			got = append(got, page...)
			if len(page) < q.Limit {
				break
			}
			last := page[len(page)-1]
			q.After = &fleetcert.AuditCursor{Time: last.Time, Seq: last.Seq}
		}
		want := entries(0, 1, 2, 3, 4, 5, 6, 7)
		if newest {
			want = entries(7, 6, 5, 4, 3, 2, 1, 0)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("paged (newest %v):\n got %+v\nwant %+v", newest, got, want)
		}
	}
}

// testAuditOutlivesCertificate: a certificate's history is found by its id
// whichever way its entries were written (one AppendChange, a batch of
// AppendChanges), after the certificate was deleted, and across a new
// registration of the same id; a CA's id, never a client certificate's,
// has its history too.
func testAuditOutlivesCertificate(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	at := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Minute) }
	c, other := newCertificate(scopeA, "kept", at(0)), newCertificate(scopeA, "other", at(0))
	create(t, s, c, other)
	single := auditChange(scopeA, "kept", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusInactive, at(1))
	appendChanges(t, s, single)
	var batch []*fleetcert.Change
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		batch = []*fleetcert.Change{
			auditChange(scopeA, "other", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusRevoked, at(2)),
			auditChange(scopeA, "kept", "UpdateCertificate", fleetcert.StatusInactive, fleetcert.StatusRevoked, at(2)),
			auditChange(scopeA, "ca", "UpdateCACertificate", fleetcert.StatusActive, fleetcert.StatusInactive, at(2)),
		}
		return tx.AppendChanges(ctx, batch)
	})
	if err != nil {
		t.Fatal(err)
	}
	deleted := auditChange(scopeA, "kept", "DeleteCertificate", fleetcert.StatusRevoked, "", at(3))
	deleted.Kind = fleetcert.ChangeCertificateDeleted
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.DeleteCertificate(ctx, scopeA, c.ID); err != nil {
			return err
		}
		return tx.AppendChange(ctx, deleted)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []fleetcert.AuditEntry{entryOf(single), entryOf(batch[1]), entryOf(deleted)}
	q := fleetcert.AuditQuery{CertificateID: c.ID, Limit: 10}
	if got := audit(t, s, q); !reflect.DeepEqual(got, want) {
		t.Fatalf("history of a deleted certificate:\n got %+v\nwant %+v", got, want)
	}

	again := newCertificate(scopeA, "kept", at(4))
	create(t, s, again)
	registered := auditChange(scopeA, "kept", "RegisterCertificateWithoutCA", "", fleetcert.StatusActive, at(4))
	registered.Kind = fleetcert.ChangeCertificateCreated
	appendChanges(t, s, registered)
	want = append(want, entryOf(registered))
	if got := audit(t, s, q); !reflect.DeepEqual(got, want) {
		t.Fatalf("history of a certificate registered again:\n got %+v\nwant %+v", got, want)
	}
	if got, want := audit(t, s, fleetcert.AuditQuery{CertificateID: certificateID("ca"), Limit: 10}),
		[]fleetcert.AuditEntry{entryOf(batch[2])}; !reflect.DeepEqual(got, want) {
		t.Fatalf("history of a CA:\n got %+v\nwant %+v", got, want)
	}
	if got, want := audit(t, s, fleetcert.AuditQuery{CertificateID: other.ID, Limit: 10}),
		[]fleetcert.AuditEntry{entryOf(batch[0])}; !reflect.DeepEqual(got, want) {
		t.Fatalf("history of a certificate in the same batch:\n got %+v\nwant %+v", got, want)
	}
}

func testPruneAudit(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	var chs []*fleetcert.Change
	for i := range 5 {
		chs = append(chs, auditChange(scopeA, "c", "UpdateCertificate", fleetcert.StatusActive, fleetcert.StatusInactive,
			baseTime.Add(time.Duration(i)*time.Hour)))
	}
	appendChanges(t, s, chs...)
	n, err := s.PruneAudit(ctx, baseTime.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneAudit = %d, %v; want 2 removed", n, err)
	}
	want := []fleetcert.AuditEntry{entryOf(chs[2]), entryOf(chs[3]), entryOf(chs[4])}
	if got := audit(t, s, fleetcert.AuditQuery{Limit: 10}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after pruning:\n got %+v\nwant %+v", got, want)
	}
	if n, err := s.PruneAudit(ctx, baseTime.Add(2*time.Hour)); err != nil || n != 0 {
		t.Fatalf("PruneAudit again = %d, %v; want 0", n, err)
	}
	// The feed keeps its entries: pruning the audit log is not the feed's.
	if got := changes(t, s, 0, 10); len(got) != 5 {
		t.Fatalf("%d changes after PruneAudit, want 5", len(got))
	}
}
