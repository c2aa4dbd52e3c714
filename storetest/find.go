package storetest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// testListFindFilters checks the console's filters (store.go,
// CertificateQuery): no CA, issuer and authority key id (empty matches),
// excluding a CA, common name prefix, the order by expiry with its cursor,
// and CountCertificates bounded by its limit. Each is paged with small
// pages in both orders and compared with the same filter applied in Go.
func testListFindFilters(t *testing.T, s fleetcert.Store) {
	issuerX, issuerY := []byte("0\x0b1\x090\x07\x06\x03U\x04\x03\x0c\x00X"), []byte("0\x0b1\x090\x07\x06\x03U\x04\x03\x0c\x00Y")
	akiX, akiZ := []byte{1, 2, 3}, []byte{9, 9}
	caX := certificateID("ca-x")
	const n = 60
	certs := make([]*fleetcert.Certificate, n)
	for i := range n {
		c := newCertificate(scopeA, fmt.Sprint("find-", i), baseTime.Add(time.Duration(i)*time.Millisecond))
		c.CACertificateID = []string{"", caX, certificateID("ca-y")}[i%3]
		c.Issuer = [][]byte{issuerX, issuerY, nil}[i%4%3]
		c.AuthorityKeyID = [][]byte{akiX, nil, akiZ}[i%5%3]
		c.CommonName = []string{"sensor-", "Sensor-", "pump-", ""}[i%4] + fmt.Sprintf("%03d", i)
		// Expiry in another order than creation, with ties (seq breaks them)
		// and one "no expiration" date (RFC 5280 4.1.2.5).
		c.NotAfter = baseTime.Truncate(time.Second).Add(time.Duration((n-i)/2) * time.Hour)
		if i == 7 {
			c.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		}
		certs[i] = c
	}
	create(t, s, certs...)
	// The same in another account: out of scope.
	var others []*fleetcert.Certificate
	for _, c := range certs[:10] {
		o := *c
		o.Scope = scopeB
		others = append(others, &o)
	}
	create(t, s, others...)
	// The fields round-trip.
	equalCertificate(t, mustGet(t, s, scopeA, certs[5].ID), certs[5])
	// An upper bound on expiry that falls on some certificates' NotAfter:
	// theirs is not before it, so they are left out.
	expiringBefore := certs[n-24].NotAfter

	for _, tc := range []struct {
		name    string
		q       fleetcert.CertificateQuery
		matches func(c *fleetcert.Certificate) bool
	}{
		{"no CA", fleetcert.CertificateQuery{NoCA: true},
			func(c *fleetcert.Certificate) bool { return c.CACertificateID == "" }},
		{"issuer", fleetcert.CertificateQuery{Issuer: issuerX},
			func(c *fleetcert.Certificate) bool { return bytes.Equal(c.Issuer, issuerX) }},
		{"issuer and key id", fleetcert.CertificateQuery{Issuer: issuerX, AuthorityKeyID: akiX},
			func(c *fleetcert.Certificate) bool {
				return bytes.Equal(c.Issuer, issuerX) && (c.AuthorityKeyID == nil || bytes.Equal(c.AuthorityKeyID, akiX))
			}},
		{"issuer, key id, not under CA x", fleetcert.CertificateQuery{Issuer: issuerX, AuthorityKeyID: akiX, ExcludeCACertificateID: caX},
			func(c *fleetcert.Certificate) bool {
				return bytes.Equal(c.Issuer, issuerX) && (c.AuthorityKeyID == nil || bytes.Equal(c.AuthorityKeyID, akiX)) && c.CACertificateID != caX
			}},
		{"common name prefix", fleetcert.CertificateQuery{CommonNamePrefix: "sensor-0"},
			func(c *fleetcert.Certificate) bool { return strings.HasPrefix(c.CommonName, "sensor-0") }},
		{"no CA and status", fleetcert.CertificateQuery{NoCA: true, Status: fleetcert.StatusActive},
			func(c *fleetcert.Certificate) bool { return c.CACertificateID == "" }},
		{"by expiry", fleetcert.CertificateQuery{OrderByExpiry: true},
			func(c *fleetcert.Certificate) bool { return true }},
		{"by expiry, CA x", fleetcert.CertificateQuery{OrderByExpiry: true, CACertificateID: caX},
			func(c *fleetcert.Certificate) bool { return c.CACertificateID == caX }},
		{"by expiry, expiring before", fleetcert.CertificateQuery{OrderByExpiry: true, NotAfterBefore: expiringBefore},
			func(c *fleetcert.Certificate) bool { return c.NotAfter.Before(expiringBefore) }},
		{"expiring before, by creation", fleetcert.CertificateQuery{NotAfterBefore: expiringBefore},
			func(c *fleetcert.Certificate) bool { return c.NotAfter.Before(expiringBefore) }},
		{"by expiry, expiring before, CA x", fleetcert.CertificateQuery{OrderByExpiry: true, NotAfterBefore: expiringBefore, CACertificateID: caX},
			func(c *fleetcert.Certificate) bool {
				return c.NotAfter.Before(expiringBefore) && c.CACertificateID == caX
			}},
	} {
		var want []*fleetcert.Certificate
		for _, c := range certs {
			if tc.matches(c) {
				want = append(want, c)
			}
		}
		if len(want) < 4 {
			t.Fatalf("%s: only %d certificates match; the test needs a few pages", tc.name, len(want))
		}
		for _, ascending := range []bool{true, false} {
			key := func(c *fleetcert.Certificate) time.Time {
				if tc.q.OrderByExpiry {
					return c.NotAfter
				}
				return c.CreationDate
			}
			slices.SortFunc(want, func(a, b *fleetcert.Certificate) int {
				r := cmp.Or(key(a).Compare(key(b)), cmp.Compare(a.Seq, b.Seq))
				if !ascending {
					r = -r
				}
				return r
			})
			q := tc.q
			q.Scope, q.Ascending, q.Limit = scopeA, ascending, 4
			var got []*fleetcert.Certificate
			for {
				page := list(t, s, q)
				got = append(got, page...)
				if len(page) < q.Limit {
					break
				}
				last := page[len(page)-1]
				q.After = &fleetcert.Cursor{CreationDate: key(last), Seq: last.Seq}
			}
			sameOrder(t, fmt.Sprintf("%s, ascending=%v", tc.name, ascending), got, want)
		}
		ctx := context.Background()
		err := s.View(ctx, func(tx fleetcert.Tx) error {
			q := tc.q
			q.Scope = scopeA
			for _, limit := range []int{len(want) + 10, len(want), len(want) - 1, 1} {
				got, err := tx.CountCertificates(ctx, q, limit)
				if err != nil {
					return err
				}
				if w := min(len(want), limit); got != w {
					t.Errorf("%s: CountCertificates limit %d = %d, want %d", tc.name, limit, got, w)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: count: %v", tc.name, err)
		}
	}
}
