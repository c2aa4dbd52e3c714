// Package storetest is the contract suite every fleetcert.Store must pass.
// A store's tests call Run with a constructor of fresh, empty stores:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB) fleetcert.Store { return MustOpenDB(tb) })
//	}
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Run runs the contract suite. newStore returns a new, empty store whose
// resources are released by tb.Cleanup; each subtest gets its own.
//
// Times given to the store have millisecond precision, as the Registry's,
// and X.509 validity whole seconds; a store must return them equal, in UTC.
func Run(t *testing.T, newStore func(tb testing.TB) fleetcert.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s fleetcert.Store)
	}{
		{"ok/create-and-get", testCreateAndGet},
		{"ok/create-and-get-transfer", testCreateAndGetTransfer},
		{"ok/create-and-get-zero-fields", testCreateAndGetZeroFields},
		{"ok/seq-increasing", testSeqIncreasing},
		{"fail/duplicate", testDuplicate},
		{"ok/same-id-other-scope", testSameIDOtherScope},
		{"fail/not-found", testNotFound},
		{"ok/update", testUpdate},
		{"ok/update-transfer", testUpdateTransfer},
		{"ok/update-certificate-status", testUpdateCertificateStatus},
		{"ok/update-certificate-statuses", testUpdateCertificateStatuses},
		{"ok/delete", testDelete},
		{"fail/write-in-view", testWriteInView},
		{"fail/write-in-view-ca-code-transfer", testWriteInViewAll},
		{"ok/list-order", testListOrder},
		{"ok/list-limit", testListLimit},
		{"ok/list-paging", testListPaging},
		{"ok/list-paging-concurrent-inserts", testListPagingConcurrentInserts},
		{"ok/list-paging-long-ties", testListPagingLongTies},
		{"ok/list-ca-filter", testListCAFilter},
		{"ok/list-scope-isolation", testListScopeIsolation},
		{"ok/list-status-owner-ca-filters", testListFilters},
		{"ok/list-status-filter-follows-updates", testListStatusFilterFollowsUpdates},
		{"ok/list-id-prefix", testListIDPrefix},
		{"ok/list-find-filters-and-count", testListFindFilters},
		{"ok/certificates-by-id", testCertificatesByID},
		{"ok/certificates-after", testCertificatesAfter},
		{"ok/certificates-by-serial", testCertificatesBySerial},
		{"ok/unusable-certificates-by-issuer", testUnusableCertificatesByIssuer},
		{"ok/ca-create-and-get", testCACreateAndGet},
		{"ok/ca-create-and-get-zero-fields", testCACreateAndGetZeroFields},
		{"fail/ca-duplicate", testCADuplicate},
		{"ok/ca-same-id-other-scope", testCASameIDOtherScope},
		{"fail/ca-not-found", testCANotFound},
		{"ok/ca-update", testCAUpdate},
		{"ok/ca-delete", testCADelete},
		{"ok/ca-by-id-across-accounts", testCAByID},
		{"ok/ca-list-order", testCAListOrder},
		{"ok/ca-list-paging", testCAListPaging},
		{"ok/ca-list-subject-filter", testCAListSubjectFilter},
		{"ok/ca-list-template-filter", testCAListTemplateFilter},
		{"ok/ca-list-scope-isolation", testCAListScopeIsolation},
		{"ok/registration-code", testRegistrationCode},
		{"fail/registration-code-not-found", testRegistrationCodeNotFound},
		{"ok/transfer", testTransfer},
		{"ok/transfer-update-same-key", testTransferUpdate},
		{"ok/transfer-latest", testTransferLatest},
		{"fail/transfer-not-found", testTransferNotFound},
		{"ok/access-key", testAccessKey},
		{"fail/access-key-duplicate", testAccessKeyDuplicate},
		{"fail/access-key-not-found", testAccessKeyNotFound},
		{"ok/access-key-delete", testAccessKeyDelete},
		{"ok/access-key-list", testAccessKeyList},
		{"ok/changes", testChanges},
		{"ok/changes-after-limit", testChangesAfterLimit},
		{"ok/changes-concurrent-updates-none-skipped", testChangesConcurrentUpdates},
		{"ok/changes-head", testChangesHead},
		{"ok/changes-visible-after-update", testChangesVisibleAfterUpdate},
		{"ok/prune-changes", testPruneChanges},
		{"ok/audit-append-same-transaction", testAuditAppend},
		{"ok/append-changes-batch", testAppendChanges},
		{"ok/create-certificates-batch", testCreateCertificates},
		{"ok/audit-query-filters", testAuditQuery},
		{"ok/prune-audit", testPruneAudit},
		{"ok/audit-outlives-certificate", testAuditOutlivesCertificate},
		{"ok/update-error-rolls-back", testUpdateErrorRollsBack},
		{"ok/update-error-rolls-back-ca-code-transfer", testUpdateErrorRollsBackAll},
		{"ok/error-unchanged", testErrorUnchanged},
		{"ok/concurrent-read-check-write", testConcurrentReadCheckWrite},
		{"ok/setting", testSetting},
		{"ok/setting-concurrent-create", testSettingConcurrentCreate},
		{"ok/expiring", testExpiring},
		{"ok/expiring-counter", testExpiringCounter},
		{"ok/object-create-and-get", testObjectCreateAndGet},
		{"ok/object-update", testObjectUpdate},
		{"fail/object-update-concurrent-one-wins", testObjectUpdateConcurrent},
		{"ok/object-delete", testObjectDelete},
		{"ok/object-list", testObjectList},
		{"ok/object-list-label-follows-updates", testObjectListFollowsUpdates},
		{"ok/link-create-get-delete", testLinkCreateGetDelete},
		{"ok/link-list", testListLinks},
		{"ok/object-link-changes", testObjectChanges},
		{"fail/object-link-write-in-view", testObjectWriteInView},
		{"ok/object-link-update-error-rolls-back", testObjectRollsBack},
		{"ok/registry-provisioning-one-transaction", testProvisioning},
		{"ok/registry-bulk-job", testBulkJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
	t.Run("ok/copy-store", func(t *testing.T) {
		t.Parallel()
		testCopyStore(t, newStore)
	})
}

// Scopes of the tests.
var (
	scopeA       = fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}
	scopeB       = fleetcert.Scope{AccountID: "210987654321", Region: "us-east-1"}
	scopeARegion = fleetcert.Scope{AccountID: "123456789012", Region: "eu-west-1"}
)

// baseTime is the creation date of the first test certificate.
var baseTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// certificateID returns a well-formed certificate id derived from name.
func certificateID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// pem is a stand-in for a certificate PEM of realistic size.
var pem = "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(strings.Repeat("A", 64)+"\n", 17) + "-----END CERTIFICATE-----\n"

// newCertificate returns a certificate of scope named name, created at
// created, with every field but Transfer and Seq set.
func newCertificate(scope fleetcert.Scope, name string, created time.Time) *fleetcert.Certificate {
	return &fleetcert.Certificate{
		Scope:            scope,
		ID:               certificateID(name),
		Status:           fleetcert.StatusActive,
		PEM:              pem,
		Mode:             fleetcert.ModeDefault,
		OwnedBy:          scope.AccountID,
		CreationDate:     created,
		LastModifiedDate: created,
		CustomerVersion:  1,
		GenerationID:     "0f8e2a3c-1b5d-4e6f-8a9b-" + certificateID(name)[:12],
		NotBefore:        created.Truncate(time.Second).Add(-time.Hour),
		NotAfter:         created.Truncate(time.Second).AddDate(1, 0, 0),
	}
}

// create stores certs in one Update, setting their Seq.
func create(tb testing.TB, s fleetcert.Store, certs ...*fleetcert.Certificate) {
	tb.Helper()
	createEach(tb, s, "certificates", fleetcert.Tx.CreateCertificate, certs)
}

// createEach stores items in one Update with the Tx method add.
func createEach[T any](tb testing.TB, s fleetcert.Store, what string, add func(fleetcert.Tx, context.Context, T) error, items []T) {
	tb.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		for _, item := range items {
			if err := add(tx, ctx, item); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("create %s: %v", what, err)
	}
}

// get returns the certificate id of scope, or the store's error.
func get(tb testing.TB, s fleetcert.Store, scope fleetcert.Scope, id string) (*fleetcert.Certificate, error) {
	tb.Helper()
	ctx := context.Background()
	var c *fleetcert.Certificate
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		c, err = tx.Certificate(ctx, scope, id)
		return err
	})
	return c, err
}

// mustGet returns the certificate id of scope.
func mustGet(tb testing.TB, s fleetcert.Store, scope fleetcert.Scope, id string) *fleetcert.Certificate {
	tb.Helper()
	c, err := get(tb, s, scope, id)
	if err != nil {
		tb.Fatalf("get certificate %s: %v", id, err)
	}
	return c
}

// list runs ListCertificates in a View.
func list(tb testing.TB, s fleetcert.Store, q fleetcert.CertificateQuery) []*fleetcert.Certificate {
	tb.Helper()
	ctx := context.Background()
	var certs []*fleetcert.Certificate
	err := s.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		certs, err = tx.ListCertificates(ctx, q)
		return err
	})
	if err != nil {
		tb.Fatalf("list certificates %+v: %v", q, err)
	}
	return certs
}

// listAll pages through q with pages of size and returns every item.
func listAll(tb testing.TB, s fleetcert.Store, q fleetcert.CertificateQuery, size int) []*fleetcert.Certificate {
	tb.Helper()
	var all []*fleetcert.Certificate
	q.Limit = size
	for {
		page := list(tb, s, q)
		if len(page) > size {
			tb.Fatalf("page of %d items for limit %d", len(page), size)
		}
		all = append(all, page...)
		if len(page) < size {
			return all
		}
		last := page[len(page)-1]
		next := &fleetcert.Cursor{CreationDate: last.CreationDate, Seq: last.Seq}
		if q.After != nil && *next == *q.After {
			// A store that repeats the cursor's item would page forever.
			tb.Fatalf("page after %+v ends at the cursor again: %v", *q.After, ids(page))
		}
		q.After = next
	}
}

// ids returns the ids of certs, for readable failures.
func ids(certs []*fleetcert.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.ID[:8]
	}
	return out
}

// wantCode fails tb unless err carries the fleetcert error code want.
func wantCode(tb testing.TB, err error, want, what string) {
	tb.Helper()
	if got := fleetcert.ErrorCode(err); got != want {
		tb.Fatalf("%s: error code %q (%v), want %q", what, got, err, want)
	}
}

// equalCertificate fails tb unless got equals want exactly, times included
// (same instant, UTC).
func equalCertificate(tb testing.TB, got, want *fleetcert.Certificate) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("certificate differs:\n got %s\nwant %s", describe(got), describe(want))
	}
}

// describe prints c with its transfer data and time zones.
func describe(c *fleetcert.Certificate) string {
	if c == nil {
		return "<nil>"
	}
	cc := *c
	cc.PEM = fmt.Sprintf("<%d bytes>", len(c.PEM))
	s := fmt.Sprintf("%+v", cc)
	if c.Transfer != nil {
		s += fmt.Sprintf(" transfer=%+v", *c.Transfer)
	}
	return s
}

// counter gives unique names across the goroutines of a test.
type counter struct{ n atomic.Int64 }

func (c *counter) next(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, c.n.Add(1))
}

// errBoom is returned by functions given to Update to make them fail.
var errBoom = errors.New("boom")
