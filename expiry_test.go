package fleetcert_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// ScanExpiry reports the registrations whose certificate expires in the
// scanned interval, each once, and counts the ACTIVE ones by time to
// expiry; INACTIVE ones are reported (with Active false) and not counted.
func TestScanExpiry(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	now := clk.now()
	register := func(notAfter time.Duration, st fleetcert.Status, scopes ...fleetcert.Scope) string {
		c := testpki.New(t, testpki.Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(notAfter)})
		for _, s := range scopes {
			if _, err := reg.RegisterCertificateWithoutCA(ctx, s, c.PEM, st); err != nil {
				t.Fatal(err)
			}
		}
		return fleetcert.CertificateID(c.Cert.Raw)
	}
	inHour := register(time.Hour, fleetcert.StatusActive, scope, otherAccount)
	inactive := register(2*time.Hour, fleetcert.StatusInactive, scope)
	inWeek := register(6*24*time.Hour, fleetcert.StatusActive, scope)
	register(60*24*time.Hour, fleetcert.StatusActive, scope)
	register(365*24*time.Hour, fleetcert.StatusActive, scope)
	v := reg.NewAdmissionView()
	if _, err := v.Load(ctx); err != nil {
		t.Fatal(err)
	}
	windows := []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 90 * 24 * time.Hour}

	type hit struct {
		scope  fleetcert.Scope
		id     string
		active bool
	}
	scan := func(from, to time.Time) ([]hit, fleetcert.ExpiryScan) {
		var hits []hit
		res := v.ScanExpiry(from, to, windows, func(e fleetcert.ExpiredRegistration) {
			hits = append(hits, hit{e.Scope, e.CertificateID, e.Active})
		})
		slices.SortFunc(hits, func(a, b hit) int {
			if a.scope.AccountID < b.scope.AccountID {
				return -1
			}
			return 1
		})
		return hits, res
	}
	for _, tc := range []struct {
		name       string
		from, to   time.Duration
		hits       []hit
		within     []int
		expiredNow int
	}{
		{"start", 0, 0, nil, []int{2, 3, 4}, 0},
		{"an hour on", 0, 90 * time.Minute, []hit{{scope, inHour, true}, {otherAccount, inHour, true}}, []int{0, 1, 2}, 2},
		{"already announced", 90 * time.Minute, 3 * time.Hour, []hit{{scope, inactive, false}}, []int{0, 1, 2}, 2},
		{"a week on", 3 * time.Hour, 7 * 24 * time.Hour, []hit{{scope, inWeek, true}}, []int{0, 0, 1}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits, res := scan(now.Add(tc.from), now.Add(tc.to))
			if !slices.Equal(hits, tc.hits) || !slices.Equal(res.Within, tc.within) || res.Expired != tc.expiredNow {
				t.Fatalf("hits %v within %v expired %d, want %v %v %d", hits, res.Within, res.Expired, tc.hits, tc.within, tc.expiredNow)
			}
		})
	}
}

// ClaimOnce: the first claim of a key wins until its time to live ends.
func TestClaimOnce(t *testing.T) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(t)
	for i, want := range []bool{true, false, false} {
		got, err := reg.ClaimOnce(ctx, "k", time.Minute)
		if err != nil || got != want {
			t.Fatalf("claim %d: %v %v, want %v", i, got, err, want)
		}
		clk.advance(20 * time.Second)
	}
	if got, _ := reg.ClaimOnce(ctx, "other", time.Minute); !got {
		t.Fatal("another key is claimed")
	}
	clk.advance(time.Minute)
	if got, err := reg.ClaimOnce(ctx, "k", time.Minute); !got || err != nil {
		t.Fatalf("after its time to live: %v %v", got, err)
	}
}
