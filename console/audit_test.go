package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// TestCertificateHistory: the certificate page's History card lists its
// audit log newest first: who (the console session's access key id, never
// its secret), the operation, old → new status, from which address; only
// this account's entries, and at most 50.
func TestCertificateHistory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	k := e.key("111111111111")
	b := e.browser()
	if r := b.signIn(k.ID, k.Secret, testRegion); r.Status != http.StatusOK {
		t.Fatalf("sign in: %d", r.Status)
	}
	scope := fleetcert.Scope{AccountID: "111111111111", Region: testRegion}
	leaf := testpki.Leaf(t)
	c, err := e.Reg.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	// The same certificate in another account, changed there: not this
	// registration's history.
	other := fleetcert.Scope{AccountID: "222222222222", Region: testRegion}
	if _, err := e.Reg.RegisterCertificateWithoutCA(ctx, other, leaf.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	otherActor := fleetcert.Actor{ID: "AKIAOTHERACCOUNT0000", AccountID: other.AccountID, SourceIP: "192.0.2.99"}
	if err := e.Reg.UpdateCertificate(fleetcert.WithActor(ctx, otherActor), other, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}

	page := "/console/certificates/" + c.ID
	wantStatus(t, b.post(page+"/status", url.Values{"status": {"INACTIVE"}}), http.StatusOK)
	r := b.get(page)
	wantStatus(t, r, http.StatusOK)
	history := r.Body[strings.Index(r.Body, `id="h-history"`):]
	history = history[:strings.Index(history, "</section>")]
	wantText(t, response{Body: history}, "History", "When", "Operation", "Who", "From",
		"UpdateCertificate", "console:"+k.ID, "127.0.0.1", "RegisterCertificateWithoutCA", fleetcert.ActorSystem)
	if strings.Index(history, "UpdateCertificate") > strings.Index(history, "RegisterCertificateWithoutCA") {
		t.Error("history is not newest first")
	}
	if strings.Count(history, "<tr>") != 3 { // the head and two entries
		t.Errorf("history has %d rows, want 2 entries:\n%s", strings.Count(history, "<tr>")-1, text(history))
	}
	noText(t, r, k.Secret, otherActor.ID, "192.0.2.99")

	// Bounded: the 50 most recent, and a word on where the rest are.
	for i := range 50 {
		to := fleetcert.StatusActive
		if i%2 == 1 {
			to = fleetcert.StatusInactive
		}
		if err := e.Reg.UpdateCertificate(ctx, scope, c.ID, to); err != nil {
			t.Fatal(err)
		}
	}
	r = b.get(page)
	history = r.Body[strings.Index(r.Body, `id="h-history"`):]
	history = history[:strings.Index(history, "</section>")]
	if n := strings.Count(history, "<tr>") - 1; n != 50 {
		t.Errorf("history shows %d entries, want 50", n)
	}
	wantText(t, response{Body: history}, "The 50 most recent changes are shown", "fleetcert audit --certificate "+c.ID)
	noText(t, response{Body: history}, "RegisterCertificateWithoutCA")
}
