package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/fleetcert/fleetcert"
)

// getSetting returns Setting(name).
func getSetting(s fleetcert.Store, name string) ([]byte, error) {
	ctx := context.Background()
	var v []byte
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		v, err = tx.Setting(ctx, name)
		return err
	})
	return v, err
}

// createSetting stores value under name in one Update.
func createSetting(s fleetcert.Store, name string, value []byte) error {
	ctx := context.Background()
	return s.Update(ctx, func(tx fleetcert.Tx) error { return tx.CreateSetting(ctx, name, value) })
}

func testSetting(t *testing.T, s fleetcert.Store) {
	if _, err := getSetting(s, "issuer"); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("Setting of a missing name: %v, want ResourceNotFoundException", err)
	}
	// Binary values round-trip exactly, NUL bytes and all.
	value := []byte("-----BEGIN PRIVATE KEY-----\x00\xff\n")
	if err := createSetting(s, "issuer", value); err != nil {
		t.Fatalf("CreateSetting: %v", err)
	}
	if err := createSetting(s, "empty", nil); err != nil {
		t.Fatalf("CreateSetting of an empty value: %v", err)
	}
	for name, want := range map[string][]byte{"issuer": value, "empty": {}} {
		got, err := getSetting(s, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Setting(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	// A setting is never replaced.
	err := createSetting(s, "issuer", []byte("other"))
	if fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
		t.Fatalf("CreateSetting of an existing name: %v, want ResourceAlreadyExistsException", err)
	}
	if got, _ := getSetting(s, "issuer"); !bytes.Equal(got, value) {
		t.Fatalf("after a refused CreateSetting the value is %q, want %q", got, value)
	}
	// Writes in a View fail and store nothing.
	ctx := context.Background()
	err = s.View(ctx, func(tx fleetcert.Tx) error { return tx.CreateSetting(ctx, "in-view", []byte("x")) })
	if err == nil {
		t.Fatal("CreateSetting in a View succeeded")
	}
	if _, err := getSetting(s, "in-view"); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("a setting written in a View exists: %v", err)
	}
}

// testSettingConcurrentCreate: of concurrent creators of one name exactly
// one succeeds, and every reader then sees that creator's value — what
// lets nodes starting together agree on one issuing CA.
func testSettingConcurrentCreate(t *testing.T, s fleetcert.Store) {
	const n = 8
	var (
		wg      sync.WaitGroup
		errs    = make([]error, n)
		winners int
		won     []byte
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = createSetting(s, "gateway-ca", fmt.Appendf(nil, "value %d", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch fleetcert.ErrorCode(err) {
		case "":
			winners++
			won = fmt.Appendf(nil, "value %d", i)
		case fleetcert.EResourceAlreadyExists:
		default:
			t.Fatalf("creator %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d of %d concurrent creators succeeded, want 1", winners, n)
	}
	if got, err := getSetting(s, "gateway-ca"); err != nil || !bytes.Equal(got, won) {
		t.Fatalf("Setting = %q, %v; want the winner's %q", got, err, won)
	}
}
