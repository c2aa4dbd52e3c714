package fleetcert_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// auditLog returns every audit entry of reg, oldest first.
func auditLog(t *testing.T, reg *fleetcert.Registry, q fleetcert.AuditQuery) []fleetcert.AuditEntry {
	t.Helper()
	entries, _, err := reg.Audit(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestRegistryAuditActor: the Actor of the request's context, the
// operation and the old and new status land in the entry, in the
// transaction of the change.
func TestRegistryAuditActor(t *testing.T) {
	reg, clk := mustOpenRegistry(t)
	api := fleetcert.Actor{ID: "AKIAIOSFODNN7EXAMPLE", AccountID: scope.AccountID, SourceIP: "127.0.0.1"}
	ctx := fleetcert.WithActor(context.Background(), api)
	c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	registered := clk.t
	clk.advance(time.Minute)
	console := fleetcert.Actor{ID: fleetcert.ActorConsolePrefix + "AKIAIOSFODNN7EXAMPLE", AccountID: scope.AccountID, SourceIP: "::1"}
	if err := reg.UpdateCertificate(fleetcert.WithActor(context.Background(), console), scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	// Setting the same status again changes nothing: no entry.
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	// A refused operation leaves no entry either.
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusActive); fleetcert.ErrorCode(err) != fleetcert.ECertificateState {
		t.Fatalf("activating a revoked certificate: %v", err)
	}
	clk.advance(time.Minute)
	// No actor: the system.
	if err := reg.DeleteCertificate(context.Background(), scope, c.ID, false); err != nil {
		t.Fatal(err)
	}
	// A session announcement is no mutation: no entry.
	if _, err := reg.AnnounceSession(ctx, scope, c.ID, "sensor", "s1"); err != nil {
		t.Fatal(err)
	}

	got := auditLog(t, reg, fleetcert.AuditQuery{CertificateID: c.ID})
	for i := range got {
		got[i].Seq = 0
	}
	want := []fleetcert.AuditEntry{
		{Time: registered, Scope: scope, Operation: "RegisterCertificateWithoutCA", Kind: fleetcert.ChangeCertificateCreated,
			CertificateID: c.ID, NewStatus: fleetcert.StatusActive, Actor: api.ID, ActorAccount: api.AccountID, SourceIP: api.SourceIP},
		{Time: registered.Add(time.Minute), Scope: scope, Operation: "UpdateCertificate", Kind: fleetcert.ChangeCertificateUpdated,
			CertificateID: c.ID, OldStatus: fleetcert.StatusActive, NewStatus: fleetcert.StatusRevoked,
			Actor: console.ID, ActorAccount: console.AccountID, SourceIP: console.SourceIP},
		{Time: registered.Add(2 * time.Minute), Scope: scope, Operation: "DeleteCertificate", Kind: fleetcert.ChangeCertificateDeleted,
			CertificateID: c.ID, OldStatus: fleetcert.StatusRevoked, Actor: fleetcert.ActorSystem},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("audit log:\n got %+v\nwant %+v", got, want)
	}
}

// TestRegistryAuditOperations: each mutation is recorded under its AWS
// operation's name (or fleetcert's own), whichever Registry path makes it.
func TestRegistryAuditOperations(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	c, _, err := reg.CreateKeysAndCertificate(ctx, scope, false)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := testpki.CSR(t, "thing-7")
	fromCSR, err := reg.CreateCertificateFromCSR(ctx, scope, csr, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "pump"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.AttachThingPrincipal(ctx, scope, "pump", fleetcert.CertificateARN(scope, c.ID), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreatePolicy(ctx, scope, "p", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}`, nil); err != nil {
		t.Fatal(err)
	}
	if err := reg.AttachPolicy(ctx, scope, "p", fleetcert.CertificateARN(scope, fromCSR.ID)); err != nil {
		t.Fatal(err)
	}
	k, err := reg.CreateAccessKey(fleetcert.WithActor(ctx, fleetcert.Actor{ID: fleetcert.ActorCLI}), scope.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteAccessKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}

	type row struct{ op, certificateID, resource, actor string }
	var got []row
	for _, e := range auditLog(t, reg, fleetcert.AuditQuery{}) {
		got = append(got, row{e.Operation, e.CertificateID, e.Resource, e.Actor})
	}
	want := []row{
		{"CreateKeysAndCertificate", c.ID, "", fleetcert.ActorSystem},
		{"CreateCertificateFromCsr", fromCSR.ID, "", fleetcert.ActorSystem},
		{"CreateThing", "", "thing/pump", fleetcert.ActorSystem},
		{"AttachThingPrincipal", "", "thing-principal/pump", fleetcert.ActorSystem},
		{"CreatePolicy", "", "policy/p", fleetcert.ActorSystem},
		{"AttachPolicy", "", "policy-target/p", fleetcert.ActorSystem},
		{"CreateAccessKey", "", k.ID, fleetcert.ActorCLI},
		{"DeleteAccessKey", "", k.ID, fleetcert.ActorSystem},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("audit log:\n got %q\nwant %q", got, want)
	}
}

func TestRegistryAuditPagingAndPruning(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	var ids []string
	for range 5 {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
		clk.advance(time.Hour)
	}
	var got []string
	q := fleetcert.AuditQuery{Newest: true, Limit: 2}
	for range 5 {
		entries, next, err := reg.Audit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			got = append(got, e.CertificateID)
		}
		if next == nil {
			break
		}
		q.After = next
	}
	if want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("paged newest first: %q, want %q", got, want)
	}

	// clk is an hour after the last registration: keep the last two hours.
	if n, err := reg.PruneAudit(ctx, 2*time.Hour); err != nil || n != 3 {
		t.Fatalf("PruneAudit = %d, %v; want 3", n, err)
	}
	if got := auditLog(t, reg, fleetcert.AuditQuery{}); len(got) != 2 || got[0].CertificateID != ids[3] {
		t.Fatalf("after pruning: %+v", got)
	}

	for _, tc := range []struct {
		name string
		q    fleetcert.AuditQuery
	}{
		{"fail/negative-limit", fleetcert.AuditQuery{Limit: -1}},
		{"fail/empty-range", fleetcert.AuditQuery{Since: clk.t, Until: clk.t}},
	} {
		if _, _, err := reg.Audit(ctx, tc.q); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
			t.Errorf("%s: %v, want InvalidRequestException", tc.name, err)
		}
	}
}
