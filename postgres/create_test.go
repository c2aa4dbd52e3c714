package postgres_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/postgres"
)

// batchCounter is a DB whose transactions count the certificates each
// CreateCertificates call is given.
type batchCounter struct {
	*postgres.DB
	largest atomic.Int64 // the most certificates one call stored together
}

func (d *batchCounter) UpdateFailFirst(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return d.DB.UpdateFailFirst(ctx, func(tx fleetcert.Tx) error { return fn(countingTx{tx, d}) })
}

type countingTx struct {
	fleetcert.Tx
	d *batchCounter
}

func (tx countingTx) CreateCertificates(ctx context.Context, cs []*fleetcert.Certificate) ([]bool, error) {
	stored, err := tx.Tx.(fleetcert.CertificatesCreator).CreateCertificates(ctx, cs)
	n := int64(0)
	for _, s := range stored {
		if s {
			n++
		}
	}
	for {
		l := tx.d.largest.Load()
		if n <= l || tx.d.largest.CompareAndSwap(l, n) {
			break
		}
	}
	return stored, err
}

// TestRegistrationsTogetherAcrossNodes: two nodes on one database register
// the same certificates at once, each from many callers, so that each
// node stores them in batches (CreateCertificates) that overlap the
// other's. Each certificate is stored once, by exactly one caller; every
// other caller gets ResourceAlreadyExists, none a deadlock or another
// error; the change feed holds one entry per certificate; and registrations
// were stored together (a batch of more than one). Then the same for
// certificates under a CA (RegisterCertificate).
func TestRegistrationsTogetherAcrossNodes(t *testing.T) {
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	counted := &batchCounter{DB: mustOpenDBAt(t, url)}
	nodes := []*fleetcert.Registry{
		fleetcert.NewRegistry(counted, nil),
		fleetcert.NewRegistry(mustOpenDBAt(t, url), nil),
	}
	const certs, callersPerNode = 40, 8
	pems := make([]string, certs)
	for i := range pems {
		pems[i] = testpki.Leaf(t).PEM
	}

	type outcome struct {
		id  string
		err error
	}
	results := make(chan outcome, certs*callersPerNode*len(nodes))
	var wg sync.WaitGroup
	for _, reg := range nodes {
		for range callersPerNode {
			order := rand.Perm(certs) // each caller its own order
			wg.Go(func() {
				for _, i := range order {
					c, err := reg.RegisterCertificateWithoutCA(ctx, scope, pems[i], fleetcert.StatusActive)
					id := ""
					if c != nil {
						id = c.ID
					}
					results <- outcome{id, err}
				}
			})
		}
	}
	wg.Wait()
	close(results)

	stored := map[string]int{}
	for r := range results {
		var e *fleetcert.Error
		switch {
		case r.err == nil:
			stored[r.id]++
		case !errors.As(r.err, &e) || e.Code != fleetcert.EResourceAlreadyExists:
			t.Fatalf("a registration failed with %v, want success or ResourceAlreadyExists", r.err)
		}
	}
	if len(stored) != certs {
		t.Fatalf("%d certificates stored, want %d", len(stored), certs)
	}
	for id, n := range stored {
		if n != 1 {
			t.Fatalf("certificate %s stored by %d callers, want 1", id, n)
		}
	}
	chs, err := nodes[0].Changes(ctx, 0, 10*certs)
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]int{}
	for _, ch := range chs {
		if ch.Kind == fleetcert.ChangeCertificateCreated {
			created[ch.CertificateID]++
			// The feed keeps the registration made (migration 0009): node
			// 0 reads its own and node 1's without a read of the
			// certificate.
			if r := ch.Registration; r == nil || r.ID != ch.CertificateID || r.Scope != scope ||
				r.Status != fleetcert.StatusActive || r.Mode != fleetcert.ModeSNIOnly || r.Seq == 0 || r.NotAfter.IsZero() {
				t.Fatalf("the entry of %s: Registration = %+v; want the registration made", ch.CertificateID, r)
			}
		}
	}
	if len(created) != certs {
		t.Fatalf("the feed has %d certificates created, want %d", len(created), certs)
	}
	for id, n := range created {
		if n != 1 || stored[id] != 1 {
			t.Fatalf("certificate %s: %d feed entries, stored %d times; want 1 and 1", id, n, stored[id])
		}
	}
	pageSize := 250
	page, err := nodes[1].ListCertificates(ctx, scope, fleetcert.ListOptions{PageSize: &pageSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Certificates) != certs {
		t.Fatalf("ListCertificates: %d certificates, want %d", len(page.Certificates), certs)
	}
	if n := counted.largest.Load(); n < 2 {
		t.Fatalf("the largest batch stored %d certificates: registrations were not stored together", n)
	}

	// The same under a CA, found by subject: each batch's transaction
	// finds the CA again, on both nodes at once.
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Cluster CA"})
	ca, err := nodes[0].RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pems {
		pems[i] = testpki.New(t, testpki.Options{Parent: caCert}).PEM
	}
	var errs atomic.Int64
	var under sync.Map // id → callers that stored it
	for _, reg := range nodes {
		for range callersPerNode {
			order := rand.Perm(certs)
			wg.Go(func() {
				for _, i := range order {
					c, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: pems[i], SetAsActive: true})
					switch {
					case err == nil && c.CACertificateID == ca.ID && c.Mode == fleetcert.ModeSNIOnly:
						n, _ := under.LoadOrStore(c.ID, new(atomic.Int64))
						n.(*atomic.Int64).Add(1)
					case fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists:
						t.Errorf("a registration under the CA: %+v, %v", c, err)
						errs.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.FailNow()
	}
	n := 0
	under.Range(func(id, stored any) bool {
		n++
		if got := stored.(*atomic.Int64).Load(); got != 1 {
			t.Errorf("certificate %s under the CA stored by %d callers, want 1", id, got)
		}
		return true
	})
	if n != certs {
		t.Fatalf("%d certificates stored under the CA, want %d", n, certs)
	}
}
