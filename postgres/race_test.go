package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// twoNodes returns two Registries on two DBs (two pools, as two processes
// have) sharing one database.
func twoNodes(t *testing.T) (a, b *fleetcert.Registry) {
	t.Helper()
	url := testpg.NewDatabase(t)
	return fleetcert.NewRegistry(mustOpenDBAt(t, url), nil), fleetcert.NewRegistry(mustOpenDBAt(t, url), nil)
}

// race runs fns at once, each on its goroutine, and returns their errors.
func race(fns ...func() error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// wantChain checks that the feed's changes of certificate id in s form one
// chain of statuses, each starting where the previous ended: no update was
// made from a status another had already replaced.
func wantChain(t *testing.T, reg *fleetcert.Registry, s fleetcert.Scope, id string) []fleetcert.Change {
	t.Helper()
	chs, err := reg.Store.Changes(context.Background(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var mine []fleetcert.Change
	for _, ch := range chs {
		if ch.Scope == s && ch.CertificateID == id {
			if len(mine) > 0 && ch.OldStatus != mine[len(mine)-1].NewStatus {
				t.Fatalf("change %d: %s -> %s after %s: an update was lost", ch.Seq, ch.OldStatus, ch.NewStatus, mine[len(mine)-1].NewStatus)
			}
			mine = append(mine, ch)
		}
	}
	return mine
}

// TestRegistry_RacesAcrossNodes races two nodes on one certificate: the
// outcome must be one the state machine allows in some serial order.
func TestRegistry_RacesAcrossNodes(t *testing.T) {
	ctx := context.Background()
	src := fleetcert.Scope{AccountID: "111111111111", Region: "us-east-1"}
	dst := fleetcert.Scope{AccountID: "222222222222", Region: "us-east-1"}

	t.Run("ok/revoked-stays-revoked", func(t *testing.T) {
		a, b := twoNodes(t)
		for range 10 {
			c, err := a.RegisterCertificateWithoutCA(ctx, src, testpki.Leaf(t).PEM, fleetcert.StatusActive)
			if err != nil {
				t.Fatal(err)
			}
			// Node A revokes while node B flips the certificate between
			// INACTIVE and ACTIVE.
			flip := func() error {
				for i := range 6 {
					status := fleetcert.StatusInactive
					if i%2 == 1 {
						status = fleetcert.StatusActive
					}
					if err := b.UpdateCertificate(ctx, src, c.ID, status); err != nil {
						return err
					}
				}
				return nil
			}
			errs := race(func() error { return a.UpdateCertificate(ctx, src, c.ID, fleetcert.StatusRevoked) }, flip)
			if errs[0] != nil {
				t.Fatalf("revoke: %v", errs[0])
			}
			if errs[1] != nil && fleetcert.ErrorCode(errs[1]) != fleetcert.ECertificateState {
				t.Fatalf("flip: %v, want success or CertificateStateException", errs[1])
			}
			got, err := b.DescribeCertificate(ctx, src, c.ID)
			if err != nil || got.Status != fleetcert.StatusRevoked {
				t.Fatalf("status %v (%v) after the race, want REVOKED", got, err)
			}
			chain := wantChain(t, a, src, c.ID)
			if last := chain[len(chain)-1]; last.NewStatus != fleetcert.StatusRevoked {
				t.Fatalf("last change %s -> %s, want to REVOKED", last.OldStatus, last.NewStatus)
			}
		}
	})

	t.Run("ok/transfer-ends-once", func(t *testing.T) {
		a, b := twoNodes(t)
		ends := map[string]func(reg *fleetcert.Registry, id string) error{
			"accept": func(reg *fleetcert.Registry, id string) error {
				return reg.AcceptCertificateTransfer(ctx, dst, id, true)
			},
			"reject": func(reg *fleetcert.Registry, id string) error {
				return reg.RejectCertificateTransfer(ctx, dst, id, "no")
			},
			"cancel": func(reg *fleetcert.Registry, id string) error {
				return reg.CancelCertificateTransfer(ctx, src, id)
			},
		}
		for _, pair := range [][2]string{{"accept", "accept"}, {"accept", "cancel"}, {"accept", "reject"}, {"reject", "cancel"}} {
			for range 3 {
				c, err := a.RegisterCertificateWithoutCA(ctx, src, testpki.Leaf(t).PEM, fleetcert.StatusInactive)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := a.TransferCertificate(ctx, src, c.ID, dst.AccountID, "yours"); err != nil {
					t.Fatal(err)
				}
				errs := race(func() error { return ends[pair[0]](a, c.ID) }, func() error { return ends[pair[1]](b, c.ID) })
				won := 0
				for i, err := range errs {
					switch fleetcert.ErrorCode(err) {
					case "":
						won++
					case fleetcert.ETransferAlreadyCompleted, fleetcert.EResourceNotFound:
						// The other ended it first; a rejected or cancelled
						// transfer removed the target's record.
					default:
						t.Fatalf("%s: %v", pair[i], err)
					}
				}
				if won != 1 {
					t.Fatalf("%s vs %s: %d succeeded (%v), want exactly one", pair[0], pair[1], won, errs)
				}
				// One owner, one record: the transfer ended once.
				_, errSrc := b.DescribeCertificate(ctx, src, c.ID)
				_, errDst := b.DescribeCertificate(ctx, dst, c.ID)
				if (errSrc == nil) == (errDst == nil) {
					t.Fatalf("%s vs %s: source %v, target %v; want exactly one record", pair[0], pair[1], errSrc, errDst)
				}
				wantChain(t, a, src, c.ID)
				wantChain(t, a, dst, c.ID)
			}
		}
	})

	t.Run("ok/default-ca-registered-by-one-account", func(t *testing.T) {
		// AWS IoT: a CA in DEFAULT mode belongs to one account per region.
		// Both accounts find no other registration; only one may create it.
		a, b := twoNodes(t)
		for range 3 {
			ca := testpki.New(t, testpki.Options{CommonName: "race CA", IsCA: true})
			var ins [2]fleetcert.RegisterCAInput
			for i, node := range []struct {
				reg   *fleetcert.Registry
				scope fleetcert.Scope
			}{{a, src}, {b, dst}} {
				code, err := node.reg.GetRegistrationCode(ctx, node.scope)
				if err != nil {
					t.Fatal(err)
				}
				ins[i] = fleetcert.RegisterCAInput{CACertificatePEM: ca.PEM,
					VerificationCertificatePEM: testpki.New(t, testpki.Options{Parent: ca, CommonName: code}).PEM}
			}
			errs := race(func() error { _, err := a.RegisterCACertificate(ctx, src, ins[0]); return err },
				func() error { _, err := b.RegisterCACertificate(ctx, dst, ins[1]); return err })
			won := 0
			for _, err := range errs {
				switch fleetcert.ErrorCode(err) {
				case "":
					won++
				case fleetcert.EResourceAlreadyExists:
				default:
					t.Fatal(err)
				}
			}
			if won != 1 {
				t.Fatalf("%d accounts registered the CA in DEFAULT mode (%v), want one", won, errs)
			}
		}
	})

	t.Run("ok/bootstrap-key-stored-once", func(t *testing.T) {
		// Two nodes start with the same bootstrap key: both succeed.
		a, b := twoNodes(t)
		k, err := fleetcert.NewAccessKey(fleetcert.DefaultAccountID, time.Now().UTC().Truncate(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		errs := race(func() error { return a.EnsureAccessKey(ctx, k) }, func() error { return b.EnsureAccessKey(ctx, k) })
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("EnsureAccessKey on two nodes: %v", errs)
		}
		if got, err := b.AccessKey(ctx, k.ID); err != nil || *got != *k {
			t.Fatalf("stored key %+v (%v), want %+v", got, err, *k)
		}
	})

	t.Run("ok/registration-code-created-once", func(t *testing.T) {
		// Absent, then created: two nodes asking at once get the same code.
		a, b := twoNodes(t)
		var codes [2]string
		errs := race(func() (err error) { codes[0], err = a.GetRegistrationCode(ctx, src); return err },
			func() (err error) { codes[1], err = b.GetRegistrationCode(ctx, src); return err })
		if errs[0] != nil || errs[1] != nil || codes[0] != codes[1] {
			t.Fatalf("codes %q (%v): want one code for both", codes, errs)
		}
	})
}
