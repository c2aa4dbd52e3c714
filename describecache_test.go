package fleetcert_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// viewCountingStore counts the Views (store reads) and the feed reads
// made through it.
type viewCountingStore struct {
	fleetcert.Store
	views, feedReads atomic.Int64
}

func (s *viewCountingStore) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	s.feedReads.Add(1)
	return s.Store.Changes(ctx, after, limit)
}

func (s *viewCountingStore) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// stampedCountingStore is a viewCountingStore that passes the store's
// commit stamps on.
type stampedCountingStore struct{ *viewCountingStore }

func (s stampedCountingStore) CommitStamp() (uint64, bool) {
	return s.Store.(fleetcert.CommitStamper).CommitStamp()
}

// cachedNodes returns two Registries on one SQLite file, as two processes:
// the first with a describe cache (its store counting reads, and offering
// SQLite's commit stamps when stamped), the second without.
func cachedNodes(t *testing.T, size int, stamped bool) (cached *fleetcert.Registry, counting *viewCountingStore, other *fleetcert.Registry) {
	t.Helper()
	nodes := openNodes(t, 2)
	counting = &viewCountingStore{Store: nodes[0]}
	var store fleetcert.Store = counting
	if stamped {
		store = stampedCountingStore{counting}
	}
	cached = fleetcert.NewRegistry(store, nil)
	cached.DescribeCacheSize = size
	other = fleetcert.NewRegistry(nodes[1], nil)
	return cached, counting, other
}

// stampModes runs f with and without the store's commit stamps: with them
// a Describe reads no feed when nothing committed, without it always does.
var stampModes = []struct {
	name    string
	stamped bool
}{{"stamped", true}, {"feed", false}}

// A described certificate is described again from memory, and every write
// — through the same Registry or another process's — is seen by the next
// DescribeCertificate, as a read of the store would see it.
func TestDescribeCache(t *testing.T) {
	ctx := context.Background()
	other := fleetcert.Scope{AccountID: "210987654321", Region: "us-east-1"}
	tests := []struct {
		name  string
		write func(t *testing.T, self, peer *fleetcert.Registry, id string)
		want  fleetcert.Status // "" for not found
	}{
		{"ok/update on this node", func(t *testing.T, self, _ *fleetcert.Registry, id string) {
			must(t, self.UpdateCertificate(ctx, scope, id, fleetcert.StatusActive))
		}, fleetcert.StatusActive},
		{"ok/update by another process", func(t *testing.T, _, peer *fleetcert.Registry, id string) {
			must(t, peer.UpdateCertificate(ctx, scope, id, fleetcert.StatusRevoked))
		}, fleetcert.StatusRevoked},
		{"ok/delete by another process", func(t *testing.T, _, peer *fleetcert.Registry, id string) {
			must(t, peer.DeleteCertificate(ctx, scope, id, false))
		}, ""},
		{"ok/transfer started by another process", func(t *testing.T, _, peer *fleetcert.Registry, id string) {
			_, err := peer.TransferCertificate(ctx, scope, id, other.AccountID, "")
			must(t, err)
		}, fleetcert.StatusPendingTransfer},
		{"ok/same certificate registered in another account", func(t *testing.T, _, peer *fleetcert.Registry, id string) {
			c, err := peer.DescribeCertificate(ctx, scope, id)
			must(t, err)
			_, err = peer.RegisterCertificateWithoutCA(ctx, other, c.PEM, fleetcert.StatusActive)
			must(t, err)
		}, fleetcert.StatusInactive},
	}
	for _, mode := range stampModes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				self, counting, peer := cachedNodes(t, 16, mode.stamped)
				leaf := testpki.Leaf(t)
				c, err := self.RegisterCertificateWithoutCA(ctx, scope, leaf.PEM, fleetcert.StatusInactive)
				must(t, err)

				for range 2 {
					got, err := self.DescribeCertificate(ctx, scope, c.ID)
					must(t, err)
					if got.Status != fleetcert.StatusInactive {
						t.Fatalf("status %s, want INACTIVE", got.Status)
					}
				}
				views, feedReads := counting.views.Load(), counting.feedReads.Load()
				got, err := self.DescribeCertificate(ctx, scope, c.ID)
				must(t, err)
				if n := counting.views.Load() - views; n != 0 {
					t.Errorf("a described certificate described again: %d store reads, want 0", n)
				}
				if n := counting.feedReads.Load() - feedReads; mode.stamped && n != 0 {
					t.Errorf("described again with nothing committed: %d feed reads, want 0", n)
				}
				got.Status = "CHANGED BY THE CALLER" // a copy: the cache's stays

				tt.write(t, self, peer, c.ID)
				got, err = self.DescribeCertificate(ctx, scope, c.ID)
				if tt.want == "" {
					if fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
						t.Fatalf("after the write: %v, %v; want ResourceNotFoundException", got, err)
					}
					return
				}
				must(t, err)
				if got.Status != tt.want {
					t.Fatalf("after the write: status %s, want %s", got.Status, tt.want)
				}
			})
		}
	}
}

// Under concurrent writers, a DescribeCertificate that begins after an
// UpdateCertificate returned never answers with what it replaced, however
// full the cache (size 2: reservations evicted while being read).
func TestDescribeCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	for _, mode := range stampModes {
		for _, size := range []int{2, 64} {
			t.Run(fmt.Sprint(mode.name, "/size ", size), func(t *testing.T) {
				self, _, peer := cachedNodes(t, size, mode.stamped)
				const certs = 4
				ids := make([]string, certs)
				for i := range ids {
					c, err := peer.RegisterCertificateWithoutCA(ctx, scope, testpki.Leaf(t).PEM, fleetcert.StatusInactive)
					must(t, err)
					ids[i] = c.ID
				}
				// Per certificate, the customerVersion of the latest update that
				// returned: a Describe begun after it must show as much.
				var acked [certs]atomic.Int64
				for i := range acked {
					acked[i].Store(1)
				}
				deadline := time.Now().Add(2 * time.Second)
				var wg sync.WaitGroup
				for i, id := range ids {
					writer := []*fleetcert.Registry{self, peer}[i%2]
					wg.Go(func() {
						status := []fleetcert.Status{fleetcert.StatusActive, fleetcert.StatusInactive}
						for n := 0; n < 200 && time.Now().Before(deadline); n++ {
							if err := writer.UpdateCertificate(ctx, scope, id, status[n%2]); err != nil {
								t.Error(err)
								return
							}
							acked[i].Store(int64(n + 2)) // each update moves customerVersion by one
						}
					})
				}
				for range 4 {
					wg.Go(func() {
						for n := 0; n < 2000 && time.Now().Before(deadline); n++ {
							i := n % certs
							want := acked[i].Load()
							got, err := self.DescribeCertificate(ctx, scope, ids[i])
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
			})
		}
	}
}
