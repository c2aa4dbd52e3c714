package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// TestCertificatesExpiringFilter: "Expiring within N days" lists the
// certificates whose validity ends within N days, soonest first.
func TestCertificatesExpiringFilter(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	register := func(days int) string {
		cert := testpki.New(t, testpki.Options{CommonName: "dev", NotAfter: time.Now().Add(time.Duration(days)*24*time.Hour - time.Hour)})
		c, err := e.Reg.RegisterCertificateWithoutCA(context.Background(), scope, cert.PEM, fleetcert.StatusActive)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	in60, in10, in2 := register(60), register(10), register(2)

	all := b.get("/console/certificates")
	if !strings.Contains(all.Body, "expiring=30&amp;sort=expiry") {
		t.Fatal("no link to the certificates expiring within 30 days")
	}
	resp := b.get("/console/certificates?expiring=30&sort=expiry")
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d", resp.Status)
	}
	i2, i10 := strings.Index(resp.Body, `id="c-`+in2), strings.Index(resp.Body, `id="c-`+in10)
	if i2 < 0 || i10 < 0 || i2 > i10 || strings.Contains(resp.Body, `id="c-`+in60) {
		t.Fatalf("expiring within 30 days: rows at %d, %d; 60-day row listed: %v", i2, i10, strings.Contains(resp.Body, in60))
	}
	wantText(t, resp, "2 certificates match", "Within 30 days")
	if resp := b.get("/console/certificates?expiring=5"); !strings.Contains(resp.Body, `id="c-`+in2) || strings.Contains(resp.Body, `id="c-`+in10) {
		t.Fatal("expiring within 5 days lists the wrong certificates")
	}
	bad := b.get("/console/certificates?expiring=soon")
	if bad.Status != http.StatusBadRequest {
		t.Fatalf("expiring=soon: %d", bad.Status)
	}
	wantText(t, bad, "a whole number of days")
}
