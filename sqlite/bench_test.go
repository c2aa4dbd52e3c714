package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

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

// seed stores n benchmark certificates in transactions of 10,000 and
// returns their ids.
func seed(b *testing.B, db *sqlite.DB, n int) (ids []string) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 10_000 {
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			for i := start; i < min(n, start+10_000); i++ {
				if err := tx.CreateCertificate(ctx, benchCertificate(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for i := start; i < min(n, start+10_000); i++ {
			ids = append(ids, benchCertificate(i).ID)
		}
	}
	return ids
}

// create registers c as Registry.create does: the certificate and its
// change-feed entry in one transaction, and with op its audit entry.
func create(ctx context.Context, db *sqlite.DB, c *fleetcert.Certificate, op string) error {
	return db.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateCertificate(ctx, c); err != nil {
			return err
		}
		ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated,
			Scope: c.Scope, CertificateID: c.ID, NewStatus: c.Status, Time: c.CreationDate}
		if op != "" {
			ch.Operation, ch.Actor, ch.ActorAccount, ch.SourceIP = op, "AKIAIOSFODNN7EXAMPLE", c.Scope.AccountID, "192.0.2.10"
		}
		return tx.AppendChange(ctx, ch)
	})
}

func BenchmarkCreateCertificate(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	i := 0
	for b.Loop() {
		if err := create(ctx, db, benchCertificate(i), ""); err != nil {
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
			if err := create(ctx, db, benchCertificate(int(next.Add(1))), ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// describe reads one certificate as DescribeCertificate does.
func describe(ctx context.Context, db *sqlite.DB, id string) error {
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

// BenchmarkListScan100k pages through 100,000 certificates, newest first,
// as ListCertificates does with pageSize 250: Limit 251 and the cursor of
// the 250th item. One op is the whole scan.
func BenchmarkListScan100k(b *testing.B) {
	const n, size = 100_000, fleetcert.MaxPageSize
	ctx := context.Background()
	db := MustOpenDB(b)
	seed(b, db, n)
	for b.Loop() {
		total, pages := 0, 0
		q := fleetcert.CertificateQuery{Scope: benchScope, Limit: size + 1}
		for {
			var certs []*fleetcert.Certificate
			err := db.View(ctx, func(tx fleetcert.Tx) error {
				var err error
				certs, err = tx.ListCertificates(ctx, q)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			pages++
			if len(certs) <= size {
				total += len(certs)
				break
			}
			total += size
			last := certs[size-1]
			q.After = &fleetcert.Cursor{CreationDate: last.CreationDate, Seq: last.Seq}
		}
		if total != n {
			b.Fatalf("scanned %d certificates in %d pages, want %d", total, pages, n)
		}
	}
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

// BenchmarkChangesHead is the read of the change feed's head that the
// device gateway makes per TLS handshake (shared by concurrent ones) before
// it trusts its admission view.
func BenchmarkChangesHead(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	for i := range 1000 {
		ch := &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated, Scope: fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"},
			CertificateID: fmt.Sprintf("%064x", i), NewStatus: fleetcert.StatusActive, Time: time.Unix(int64(i), 0)}
		if err := db.Update(ctx, func(tx fleetcert.Tx) error { return tx.AppendChange(ctx, ch) }); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := db.ChangesHead(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// update changes a certificate's status as Registry.UpdateCertificate
// does: read it, write it, append the change.
func update(ctx context.Context, db *sqlite.DB, id string, i int) error {
	return updateAudited(ctx, db, id, i, "")
}

// updateAudited is update with the change's Operation set to op, as the
// Registry sets it ("": none), so that the store writes its audit entry.
func updateAudited(ctx context.Context, db *sqlite.DB, id string, i int, op string) error {
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

// benchmarkUpdateBatch updates certificates 1,000 to a transaction, as a
// bulk job does: without a commit per update, what each costs the store
// (the change, and with op its audit entry) stands out.
func benchmarkUpdateBatch(b *testing.B, op string) {
	const n, batch = 10_000, 1000
	ctx := context.Background()
	db := MustOpenDB(b)
	ids := seed(b, db, n)
	i := 0
	for b.Loop() {
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			for range batch {
				c, err := tx.Certificate(ctx, benchScope, ids[i%n])
				if err != nil {
					return err
				}
				old := c.Status
				c.Status = fleetcert.StatusInactive
				if (i/n)%2 == 1 {
					c.Status = fleetcert.StatusActive
				}
				c.LastModifiedDate = benchTime.Add(time.Duration(i) * time.Millisecond)
				if err := tx.UpdateCertificate(ctx, c); err != nil {
					return err
				}
				if err := tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated,
					Scope: c.Scope, CertificateID: c.ID, OldStatus: old, NewStatus: c.Status, Time: c.LastModifiedDate,
					Operation: op, Actor: "AKIAIOSFODNN7EXAMPLE", ActorAccount: c.Scope.AccountID, SourceIP: "192.0.2.10"}); err != nil {
					return err
				}
				i++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/update")
}

func BenchmarkUpdateCertificateBatch(b *testing.B) { benchmarkUpdateBatch(b, "") }
func BenchmarkUpdateCertificateBatchAudited(b *testing.B) {
	benchmarkUpdateBatch(b, "UpdateCertificate")
}

// benchmarkAppendBatch appends 1,000 changes to a transaction: the feed's
// insert alone, and with op its audit entry's.
func benchmarkAppendBatch(b *testing.B, op string) {
	const batch = 1000
	ctx := context.Background()
	db := MustOpenDB(b)
	id := benchCertificate(0).ID
	i := 0
	for b.Loop() {
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			for range batch {
				if err := tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated,
					Scope: benchScope, CertificateID: id, OldStatus: fleetcert.StatusActive, NewStatus: fleetcert.StatusRevoked,
					Time: benchTime.Add(time.Duration(i) * time.Millisecond), Operation: op,
					Actor: "AKIAIOSFODNN7EXAMPLE", ActorAccount: benchScope.AccountID, SourceIP: "192.0.2.10"}); err != nil {
					return err
				}
				i++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendChangeBatch(b *testing.B)        { benchmarkAppendBatch(b, "") }
func BenchmarkAppendChangeBatchAudited(b *testing.B) { benchmarkAppendBatch(b, "UpdateCertificate") }

// BenchmarkRegisterAuditedParallel is a registration's store work under
// the API load's 16 callers (8 goroutines per CPU on 2): the certificate,
// its change-feed entry and its audit entry in one Update, the Updates
// sharing commits. Its ns/op is the writer's wall time per registration,
// which bounds the API's registrations per second.
func BenchmarkRegisterAuditedParallel(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	var next atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := benchCertificate(int(next.Add(1)))
			c.Mode = fleetcert.ModeSNIOnly
			err := create(ctx, db, c, "RegisterCertificateWithoutCA")
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// indexedBenchCertificate is benchCertificate(i) with an issuer, a common
// name, a serial and an authority key id, as the load tool's certificates
// have, so that every index gets its entry.
func indexedBenchCertificate(i int) *fleetcert.Certificate {
	c := benchCertificate(i)
	c.Issuer = []byte("CN=fleetcert bench CA,O=fleetcert")
	c.AuthorityKeyID = []byte("0123456789abcdefghij")
	c.CommonName = fmt.Sprintf("device-%09d", i)
	c.Serial = fmt.Appendf(nil, "%09d", i)
	return c
}

// registeredChange is the audited feed entry of c's registration through
// the API.
func registeredChange(c *fleetcert.Certificate) *fleetcert.Change {
	return &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated,
		Scope: c.Scope, CertificateID: c.ID, NewStatus: c.Status, Time: c.CreationDate,
		Operation: "RegisterCertificateWithoutCA", Actor: "AKIAIOSFODNN7EXAMPLE",
		ActorAccount: c.Scope.AccountID, SourceIP: "192.0.2.10"}
}

// BenchmarkRegisterGroup is a group commit of the API load's size: ten
// audited registrations in one Update, one after another, as the writer
// runs a group's members. It splits a registration's store time between
// its statements (the certificate's number, row, feed and audit entries:
// statements-ns/reg) and its share of the commit (commit-ns/reg: the WAL
// frames of every page the group changed, two write system calls each).
// The certificates carry an issuer, a common name, a serial and an
// authority key id, as the load tool's do, so every index gets its entry.
func BenchmarkRegisterGroup(b *testing.B) {
	const group = 10
	ctx := context.Background()
	db := MustOpenDB(b)
	var statements, total time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		err := db.Update(ctx, func(tx fleetcert.Tx) error {
			defer func(t time.Time) { statements += time.Since(t) }(time.Now())
			for range group {
				c := indexedBenchCertificate(i)
				i++
				if err := tx.CreateCertificate(ctx, c); err != nil {
					return err
				}
				if err := tx.AppendChange(ctx, registeredChange(c)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(i), "ns/reg")
	b.ReportMetric(float64(statements.Nanoseconds())/float64(i), "statements-ns/reg")
	b.ReportMetric(float64((total-statements).Nanoseconds())/float64(i), "commit-ns/reg")
}

// BenchmarkRegisterBatch is the registrar's batch (fleetcert's
// registrar.go): n audited registrations stored with one
// CreateCertificates and one AppendChanges in one UpdateFailFirst, as the
// API load's batches of 7–12 are. Its ns/reg is the writer's time per
// registration, statements and commit.
func BenchmarkRegisterBatch(b *testing.B) {
	for _, n := range []int{7, 8, 11, 15} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ctx := context.Background()
			db := MustOpenDB(b)
			i := 0
			for b.Loop() {
				cs := make([]*fleetcert.Certificate, n)
				for j := range cs {
					cs[j] = indexedBenchCertificate(i)
					i++
				}
				err := db.UpdateFailFirst(ctx, func(tx fleetcert.Tx) error {
					if _, err := tx.(fleetcert.CertificatesCreator).CreateCertificates(ctx, cs); err != nil {
						return err
					}
					chs := make([]*fleetcert.Change, len(cs))
					for j, c := range cs {
						chs[j] = registeredChange(c)
					}
					return tx.AppendChanges(ctx, chs)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/reg")
		})
	}
}
