package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/postgres"
)

// The benchmarks mirror sqlite/bench_test.go's, to compare the stores.

var (
	benchScope = fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}
	benchPEM   = "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(strings.Repeat("A", 64)+"\n", 18) + "-----END CERTIFICATE-----\n"
	benchTime  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// benchCertificate returns the i-th certificate of the benchmarks, as the
// Registry would build it.
func benchCertificate(i int) *fleetcert.Certificate {
	created := benchTime.Add(time.Duration(i) * time.Millisecond)
	return &fleetcert.Certificate{
		Scope: benchScope, ID: fleetcert.CertificateID(fmt.Appendf(nil, "bench-%d", i)),
		Status: fleetcert.StatusActive, PEM: benchPEM, Mode: fleetcert.ModeDefault,
		OwnedBy: benchScope.AccountID, CreationDate: created, LastModifiedDate: created,
		CustomerVersion: 1, GenerationID: "5a8b3c2d-1e4f-4a6b-9c8d-7e6f5a4b3c2d",
		NotBefore: created.Truncate(time.Second), NotAfter: created.Truncate(time.Second).AddDate(1, 0, 0),
	}
}

// seed stores n benchmark certificates in transactions of 1,000 and
// returns their ids.
func seed(b *testing.B, db *postgres.DB, n int) (ids []string) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 1_000 {
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			for i := start; i < min(n, start+1_000); i++ {
				if err := tx.CreateCertificate(ctx, benchCertificate(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for i := start; i < min(n, start+1_000); i++ {
			ids = append(ids, benchCertificate(i).ID)
		}
	}
	// A table in use has statistics (autovacuum gathers them); a table
	// just filled has none, and the planner may pick any index that
	// matches the scope for a point read.
	if _, err := raw(b, db.URL).Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return ids
}

// create registers c as Registry.create does: the certificate and its
// change-feed entry in one transaction.
func create(ctx context.Context, db *postgres.DB, c *fleetcert.Certificate) error {
	return db.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateCertificate(ctx, c); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated,
			Scope: c.Scope, CertificateID: c.ID, NewStatus: c.Status, Time: c.CreationDate})
	})
}

func BenchmarkCreateCertificate(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	i := 0
	for b.Loop() {
		if err := create(ctx, db, benchCertificate(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCreateCertificateParallel(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(ctx, db, benchCertificate(int(next.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// update changes a certificate's status as Registry.UpdateCertificate
// does: read it (locked), write it, append the change.
func update(ctx context.Context, db *postgres.DB, id string, i int) error {
	return updateAudited(ctx, db, id, i, "")
}

// updateAudited is update with the change's Operation set to op, as the
// Registry sets it ("": none), so that the store writes its audit entry.
func updateAudited(ctx context.Context, db *postgres.DB, id string, i int, op string) error {
	return db.Update(ctx, func(tx fleetcert.Tx) error {
		c, err := tx.Certificate(ctx, benchScope, id)
		if err != nil {
			return err
		}
		old := c.Status
		c.Status = fleetcert.StatusInactive
		if i%2 == 1 {
			c.Status = fleetcert.StatusActive
		}
		c.LastModifiedDate = benchTime.Add(time.Duration(i) * time.Millisecond)
		if err := tx.UpdateCertificate(ctx, c); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated,
			Scope: c.Scope, CertificateID: c.ID, OldStatus: old, NewStatus: c.Status, Time: c.LastModifiedDate,
			Operation: op, Actor: "AKIAIOSFODNN7EXAMPLE", ActorAccount: c.Scope.AccountID, SourceIP: "192.0.2.10"})
	})
}

func BenchmarkUpdateCertificate(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	rng := rand.New(rand.NewPCG(1, 2))
	i := 0
	for b.Loop() {
		if err := update(ctx, db, ids[rng.IntN(n)], i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkUpdateCertificateParallel(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	var seedN atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seedN.Add(1), 2))
		i := 0
		for pb.Next() {
			if err := update(ctx, db, ids[rng.IntN(n)], i); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// describe reads one certificate as DescribeCertificate does.
func describe(ctx context.Context, db *postgres.DB, id string) error {
	return db.View(ctx, func(tx fleetcert.Tx) error {
		_, err := tx.Certificate(ctx, benchScope, id)
		return err
	})
}

func BenchmarkCertificate(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if err := describe(ctx, db, ids[rng.IntN(n)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCertificateParallel(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	var seedN atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seedN.Add(1), 2))
		for pb.Next() {
			if err := describe(ctx, db, ids[rng.IntN(n)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCertificatesByID is the device gateway's lookup by fingerprint,
// once per TLS handshake.
func BenchmarkCertificatesByID(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		err := db.View(ctx, func(tx fleetcert.Tx) error {
			regs, err := tx.CertificatesByID(ctx, ids[rng.IntN(n)])
			if err == nil && len(regs) != 1 {
				err = fmt.Errorf("%d registrations", len(regs))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateCertificateAudited is BenchmarkUpdateCertificate with the
// audit entry the Registry's changes now carry: its cost is the difference.
func BenchmarkUpdateCertificateAudited(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	rng := rand.New(rand.NewPCG(1, 2))
	i := 0
	for b.Loop() {
		if err := updateAudited(ctx, db, ids[rng.IntN(n)], i, "UpdateCertificate"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
