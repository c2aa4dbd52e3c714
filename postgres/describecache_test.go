package postgres_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// The describe cache on PostgreSQL, which has no commit stamp: every
// Describe waits for a feed read begun after it, so another node's
// UpdateCertificate that returned is seen by the next Describe here, and
// under concurrent writers on both nodes no answer is older than an
// acknowledged update.
func TestRegistryDescribeCacheAcrossNodes(t *testing.T) {
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	cached := fleetcert.NewRegistry(mustOpenDBAt(t, url), nil)
	cached.DescribeCacheSize = 2 // smaller than the certificates: entries come and go
	other := fleetcert.NewRegistry(mustOpenDBAt(t, url), nil)

	const certs = 4
	ids := make([]string, certs)
	for i := range ids {
		c, err := other.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusInactive)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	describe := func(id string) *fleetcert.Certificate {
		t.Helper()
		c, err := cached.DescribeCertificate(ctx, scope, id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	describe(ids[0])
	if err := other.UpdateCertificate(ctx, scope, ids[0], fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	if c := describe(ids[0]); c.Status != fleetcert.StatusActive {
		t.Fatalf("after the other node's update: %s, want ACTIVE", c.Status)
	}

	var acked [certs]atomic.Int64
	var first [certs]fleetcert.Status // the other status than now, so every update moves the version
	for i := range acked {
		c := describe(ids[i])
		acked[i].Store(int64(c.CustomerVersion))
		first[i] = fleetcert.StatusActive
		if c.Status == fleetcert.StatusActive {
			first[i] = fleetcert.StatusInactive
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for i, id := range ids {
		writer := []*fleetcert.Registry{cached, other}[i%2]
		wg.Go(func() {
			status := []fleetcert.Status{fleetcert.StatusActive, fleetcert.StatusInactive}
			if first[i] == fleetcert.StatusInactive {
				status[0], status[1] = status[1], status[0]
			}
			for n := 0; n < 100 && time.Now().Before(deadline); n++ {
				if err := writer.UpdateCertificate(ctx, scope, id, status[n%2]); err != nil {
					t.Error(err)
					return
				}
				acked[i].Add(1) // each update moves customerVersion by one
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for n := 0; n < 1000 && time.Now().Before(deadline); n++ {
				i := n % certs
				want := acked[i].Load()
				got, err := cached.DescribeCertificate(ctx, scope, ids[i])
				if err != nil {
					t.Error(err)
					return
				}
				if int64(got.CustomerVersion) < want {
					t.Errorf("certificate %d: described customerVersion %d after version %d was acknowledged", i, got.CustomerVersion, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
