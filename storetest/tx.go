package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

func testUpdateErrorRollsBack(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	existing := newCertificate(scopeA, "existing", baseTime)
	create(t, s, existing)

	for _, tc := range []struct {
		name string
		err  error
	}{
		{"plain error", fmt.Errorf("after the writes: %w", errBoom)},
		{"fleetcert error", fleetcert.Errorf(fleetcert.ECertificateState, "refused after the writes")},
	} {
		c := newCertificate(scopeA, "rolled-back", baseTime)
		err := s.Update(ctx, func(tx fleetcert.Tx) error {
			if err := tx.CreateCertificate(ctx, c); err != nil {
				return err
			}
			if err := tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateCreated,
				Scope: scopeA, CertificateID: c.ID, NewStatus: c.Status, Time: c.CreationDate}); err != nil {
				return err
			}
			u := *existing
			u.Status = fleetcert.StatusRevoked
			if err := tx.UpdateCertificate(ctx, &u); err != nil {
				return err
			}
			return tc.err
		})
		if !errors.Is(err, tc.err) {
			t.Fatalf("%s: Update returned %v, want %v", tc.name, err, tc.err)
		}
		if got, want := fleetcert.ErrorCode(err), fleetcert.ErrorCode(tc.err); got != want {
			t.Fatalf("%s: error code %q, want %q", tc.name, got, want)
		}
		_, err = get(t, s, scopeA, c.ID)
		wantCode(t, err, fleetcert.EResourceNotFound, tc.name+": get certificate of a failed Update")
		equalCertificate(t, mustGet(t, s, scopeA, existing.ID), existing)
		if chs := changes(t, s, 0, 10); len(chs) != 0 {
			t.Fatalf("%s: changes of a failed Update are visible: %+v", tc.name, chs)
		}
	}

	// The store is usable afterwards, and the rolled-back id is free.
	create(t, s, newCertificate(scopeA, "rolled-back", baseTime))
}

func testUpdateErrorRollsBackAll(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	ca := newCA(scopeA, "existing", baseTime)
	gone := newCA(scopeA, "gone", baseTime)
	createCAs(t, s, ca, gone)
	code := certificateID("code")
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.PutRegistrationCode(ctx, scopeA, code) }); err != nil {
		t.Fatal(err)
	}
	tr := newTransfer("t", baseTime)
	putTransfers(t, s, tr)

	added := newCA(scopeA, "rolled-back", baseTime)
	newTr := newTransfer("t", baseTime.Add(time.Hour))
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.CreateCACertificate(ctx, added); err != nil {
			return err
		}
		u := *ca
		u.Status = fleetcert.CAStatusInactive
		u.Tags = []fleetcert.Tag{{Key: "k", Value: "v"}}
		if err := tx.UpdateCACertificate(ctx, &u); err != nil {
			return err
		}
		if err := tx.DeleteCACertificate(ctx, scopeA, gone.ID); err != nil {
			return err
		}
		if err := tx.DeleteRegistrationCode(ctx, scopeA); err != nil {
			return err
		}
		if err := tx.PutRegistrationCode(ctx, scopeB, "rolled back"); err != nil {
			return err
		}
		done := *tr
		done.CancelDate = baseTime.Add(time.Minute)
		if err := tx.PutTransfer(ctx, &done); err != nil {
			return err
		}
		if err := tx.PutTransfer(ctx, newTr); err != nil {
			return err
		}
		if err := tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCACertificateCreated,
			Scope: scopeA, CertificateID: added.ID, NewStatus: fleetcert.Status(added.Status), Time: baseTime}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want %v", err, errBoom)
	}
	_, err = getCA(t, s, scopeA, added.ID)
	wantCode(t, err, fleetcert.EResourceNotFound, "get CA created by a failed Update")
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), ca)
	equalCA(t, mustGetCA(t, s, scopeA, gone.ID), gone)
	sameCAs(t, "list after a failed Update", listCAs(t, s, fleetcert.CAQuery{Scope: scopeA, Ascending: true, Limit: 10}),
		[]*fleetcert.CACertificate{ca, gone})
	wantRegistrationCode(t, s, scopeA, code)
	_, err = registrationCode(t, s, scopeB)
	wantCode(t, err, fleetcert.EResourceNotFound, "registration code put by a failed Update")
	wantLatest(t, s, "transfer after a failed Update", tr.CertificateID, scopeA.AccountID, tr)
	if chs := changes(t, s, 0, 10); len(chs) != 0 {
		t.Fatalf("changes of a failed Update are visible: %+v", chs)
	}

	// The store is usable afterwards, and the rolled-back records are free.
	createCAs(t, s, added)
	putTransfers(t, s, newTr)
	wantLatest(t, s, "transfer after the retry", tr.CertificateID, scopeA.AccountID, newTr)
}

func testWriteInViewAll(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	ca := newCA(scopeA, "existing", baseTime)
	createCAs(t, s, ca)
	if err := s.Update(ctx, func(tx fleetcert.Tx) error { return tx.PutRegistrationCode(ctx, scopeA, "code") }); err != nil {
		t.Fatal(err)
	}
	u := *ca
	u.Status = fleetcert.CAStatusInactive
	for _, tc := range []struct {
		name string
		fn   func(tx fleetcert.Tx) error
	}{
		{"CreateCACertificate", func(tx fleetcert.Tx) error { return tx.CreateCACertificate(ctx, newCA(scopeA, "v", baseTime)) }},
		{"UpdateCACertificate", func(tx fleetcert.Tx) error { return tx.UpdateCACertificate(ctx, &u) }},
		{"DeleteCACertificate", func(tx fleetcert.Tx) error { return tx.DeleteCACertificate(ctx, scopeA, ca.ID) }},
		{"PutRegistrationCode", func(tx fleetcert.Tx) error { return tx.PutRegistrationCode(ctx, scopeB, "code") }},
		{"DeleteRegistrationCode", func(tx fleetcert.Tx) error { return tx.DeleteRegistrationCode(ctx, scopeA) }},
		{"PutTransfer", func(tx fleetcert.Tx) error { return tx.PutTransfer(ctx, newTransfer("v", baseTime)) }},
	} {
		if err := s.View(ctx, tc.fn); err == nil {
			t.Fatalf("%s in View succeeded, want an error", tc.name)
		}
	}
	_, err := getCA(t, s, scopeA, certificateID("ca/v"))
	wantCode(t, err, fleetcert.EResourceNotFound, "get CA created in a View")
	equalCA(t, mustGetCA(t, s, scopeA, ca.ID), ca)
	wantRegistrationCode(t, s, scopeA, "code")
	_, err = registrationCode(t, s, scopeB)
	wantCode(t, err, fleetcert.EResourceNotFound, "registration code put in a View")
	_, err = latestTransfer(t, s, scopeA.Region, certificateID("v"), scopeA.AccountID)
	wantCode(t, err, fleetcert.EResourceNotFound, "transfer put in a View")
}

func testErrorUnchanged(t *testing.T, s fleetcert.Store) {
	ctx := context.Background()
	sentinel := fleetcert.Errorf(fleetcert.EInvalidRequest, "bad")
	wrapped := fmt.Errorf("context: %w", sentinel)
	err := s.View(ctx, func(tx fleetcert.Tx) error { return wrapped })
	if !errors.Is(err, sentinel) || fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("View returned %v, want %v", err, wrapped)
	}
	err = s.Update(ctx, func(tx fleetcert.Tx) error { return wrapped })
	if !errors.Is(err, sentinel) || fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
		t.Fatalf("Update returned %v, want %v", err, wrapped)
	}
	// A store error passed through fn keeps its code.
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		_, err := tx.Certificate(ctx, scopeA, certificateID("missing"))
		return fmt.Errorf("lookup: %w", err)
	})
	wantCode(t, err, fleetcert.EResourceNotFound, "Update returning a wrapped store error")
}

func testConcurrentReadCheckWrite(t *testing.T, s fleetcert.Store) {
	const workers, increments = 8, 25
	ctx := context.Background()
	c := newCertificate(scopeA, "counter", baseTime)
	c.CustomerVersion = 0
	create(t, s, c)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range increments {
				err := s.Update(ctx, func(tx fleetcert.Tx) error {
					cur, err := tx.Certificate(ctx, scopeA, c.ID)
					if err != nil {
						return err
					}
					cur.CustomerVersion++
					if err := tx.UpdateCertificate(ctx, cur); err != nil {
						return err
					}
					return tx.AppendChange(ctx, &fleetcert.Change{Kind: fleetcert.ChangeCertificateUpdated,
						Scope: scopeA, CertificateID: c.ID, OldStatus: cur.Status, NewStatus: cur.Status, Time: baseTime})
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	if got := mustGet(t, s, scopeA, c.ID).CustomerVersion; got != workers*increments {
		t.Fatalf("CustomerVersion %d after %d increments: updates were lost", got, workers*increments)
	}
	if n := len(changes(t, s, 0, 2*workers*increments)); n != workers*increments {
		t.Fatalf("%d changes, want %d", n, workers*increments)
	}
}
