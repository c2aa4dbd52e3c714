package revocation_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/revocation"
	"github.com/fleetcert/fleetcert/sqlite"
	"golang.org/x/crypto/ocsp"
)

var scope = fleetcert.Scope{AccountID: fleetcert.DefaultAccountID, Region: "us-east-1"}

type env struct {
	reg *fleetcert.Registry
	iss *fleetcert.Issuer
	h   *revocation.Handler
	srv *httptest.Server
}

func newEnv(tb testing.TB, anyRegistered bool) *env {
	tb.Helper()
	db := sqlite.NewDB(filepath.Join(tb.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	iss, err := fleetcert.NewIssuer(time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	reg := fleetcert.NewRegistry(db, iss)
	h := &revocation.Handler{Registry: reg, Issuer: iss, AnyRegistered: anyRegistered,
		Region: scope.Region, DefaultAccountID: scope.AccountID,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := h.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	mux := http.NewServeMux()
	for _, p := range revocation.Patterns {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	iss.SetPublicURL(srv.URL)
	return &env{reg: reg, iss: iss, h: h, srv: srv}
}

// issue makes a certificate with fleetcert's CA, ACTIVE.
func (e *env) issue(tb testing.TB) (*fleetcert.Certificate, *x509.Certificate) {
	tb.Helper()
	csr, _ := testpki.CSR(tb, "device")
	c, err := e.reg.CreateCertificateFromCSR(context.Background(), scope, csr, true)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := fleetcert.ParseCertificatePEM("pem", c.PEM)
	if err != nil {
		tb.Fatal(err)
	}
	return c, cert
}

func request(tb testing.TB, cert, issuer *x509.Certificate, nonce []byte) []byte {
	tb.Helper()
	der, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		tb.Fatal(err)
	}
	if nonce == nil {
		return der
	}
	return withNonce(tb, der, nonce)
}

// withNonce adds requestExtensions with a nonce to an OCSPRequest without
// one, as openssl's -nonce does.
func withNonce(tb testing.TB, der, nonce []byte) []byte {
	tb.Helper()
	var req struct {
		TBS struct {
			Raw  asn1.RawContent
			List asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		tb.Fatal(err)
	}
	value, _ := asn1.Marshal(nonce)
	exts, _ := asn1.Marshal([]pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: value}})
	tagged, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: exts})
	tbs, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: append(append([]byte{}, req.TBS.List.FullBytes...), tagged...)})
	out, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: tbs})
	return out
}

func (e *env) post(tb testing.TB, body []byte) *http.Response {
	tb.Helper()
	resp, err := http.Post(e.srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *env) get(tb testing.TB, path string) *http.Response {
	tb.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(tb testing.TB, resp *http.Response) []byte {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// check parses an OCSP response for cert, verifying its signature by the
// issuer, and returns it.
func check(tb testing.TB, der []byte, cert, issuer *x509.Certificate) *ocsp.Response {
	tb.Helper()
	r, err := ocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		tb.Fatalf("parse response: %v", err)
	}
	return r
}

// responseNonce returns the nonce in the responseExtensions of a DER
// OCSPResponse, nil without one.
func responseNonce(tb testing.TB, der []byte) []byte {
	tb.Helper()
	var resp struct {
		Status asn1.Enumerated
		Bytes  struct {
			Type asn1.ObjectIdentifier
			Resp []byte
		} `asn1:"explicit,tag:0"`
	}
	var basic struct {
		Data struct {
			Version     int `asn1:"optional,default:0,explicit,tag:0"`
			ResponderID asn1.RawValue
			ProducedAt  time.Time `asn1:"generalized"`
			Responses   asn1.RawValue
			Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
		}
		Rest asn1.RawContent
	}
	if _, err := asn1.Unmarshal(der, &resp); err != nil {
		tb.Fatal(err)
	}
	if _, err := asn1.Unmarshal(resp.Bytes.Resp, &basic.Data); err != nil {
		var seq asn1.RawValue
		asn1.Unmarshal(resp.Bytes.Resp, &seq)
		if _, err := asn1.Unmarshal(seq.Bytes, &basic.Data); err != nil {
			tb.Fatal(err)
		}
	}
	for _, e := range basic.Data.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}) {
			var n []byte
			if _, err := asn1.Unmarshal(e.Value, &n); err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	return nil
}

func TestOCSP(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	issuer := e.iss.Certificate
	_, goodCert := e.issue(t)
	revoked, revokedCert := e.issue(t)
	held, heldCert := e.issue(t)
	deleted, deletedCert := e.issue(t)
	for _, u := range []struct {
		c  *fleetcert.Certificate
		to fleetcert.Status
	}{{revoked, fleetcert.StatusRevoked}, {held, fleetcert.StatusInactive}, {deleted, fleetcert.StatusInactive}} {
		if err := e.reg.UpdateCertificate(ctx, scope, u.c.ID, u.to); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.reg.DeleteCertificate(ctx, scope, deleted.ID, false); err != nil {
		t.Fatal(err)
	}
	// A certificate with fleetcert's issuer name and key the CA never
	// issued: a serial nobody holds.
	neverCert := *goodCert
	neverCert.SerialNumber = big.NewInt(424242)

	if !slices.Equal(goodCert.OCSPServer, []string{e.srv.URL + "/ocsp"}) ||
		!slices.Equal(goodCert.CRLDistributionPoints, []string{e.srv.URL + "/crl/" + e.iss.ID() + ".crl"}) {
		t.Fatalf("issued certificate's URLs: OCSP %v, CRL %v", goodCert.OCSPServer, goodCert.CRLDistributionPoints)
	}

	for _, tc := range []struct {
		name   string
		cert   *x509.Certificate
		status int
		reason int
	}{
		{"ok/good", goodCert, ocsp.Good, 0},
		{"ok/revoked", revokedCert, ocsp.Revoked, ocsp.Unspecified},
		{"ok/inactive-on-hold", heldCert, ocsp.Revoked, ocsp.CertificateHold},
		{"ok/deleted-stays-revoked", deletedCert, ocsp.Revoked, ocsp.CessationOfOperation},
		{"ok/unknown-serial", &neverCert, ocsp.Unknown, 0},
	} {
		t.Run(tc.name+"/post", func(t *testing.T) {
			resp := e.post(t, request(t, tc.cert, issuer, nil))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			r := check(t, body(t, resp), tc.cert, issuer)
			if r.Status != tc.status || r.SerialNumber.Cmp(tc.cert.SerialNumber) != 0 {
				t.Fatalf("status %d serial %x, want %d %x", r.Status, r.SerialNumber, tc.status, tc.cert.SerialNumber)
			}
			if tc.status == ocsp.Revoked && r.RevocationReason != tc.reason {
				t.Fatalf("reason %d, want %d", r.RevocationReason, tc.reason)
			}
			if !r.NextUpdate.After(r.ThisUpdate) || r.NextUpdate.Sub(r.ThisUpdate) != revocation.ResponseValidity {
				t.Fatalf("thisUpdate %v nextUpdate %v", r.ThisUpdate, r.NextUpdate)
			}
		})
		t.Run(tc.name+"/get", func(t *testing.T) {
			enc := url.PathEscape(base64.StdEncoding.EncodeToString(request(t, tc.cert, issuer, nil)))
			resp := e.get(t, "/ocsp/"+enc)
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
				t.Fatalf("HTTP %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
			if r := check(t, body(t, resp), tc.cert, issuer); r.Status != tc.status {
				t.Fatalf("status %d, want %d", r.Status, tc.status)
			}
		})
	}
	if revoked.LastModifiedDate.IsZero() {
		t.Fatal("no revocation time")
	}

	t.Run("ok/nonce-echoed", func(t *testing.T) {
		for _, n := range [][]byte{{1}, bytes.Repeat([]byte{7}, 32)} {
			der := body(t, e.post(t, request(t, goodCert, issuer, n)))
			check(t, der, goodCert, issuer)
			if got := responseNonce(t, der); !bytes.Equal(got, n) {
				t.Fatalf("nonce %x, want %x", got, n)
			}
		}
		if got := responseNonce(t, body(t, e.post(t, request(t, goodCert, issuer, nil)))); got != nil {
			t.Fatalf("nonce %x without one asked", got)
		}
	})
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"fail/garbage", []byte("not DER")},
		{"fail/empty", nil},
		{"fail/nonce-too-long", request(t, goodCert, issuer, bytes.Repeat([]byte{1}, 33))},
		{"fail/nonce-empty", request(t, goodCert, issuer, []byte{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "fail/nonce-empty" {
				tc.req = withNonce(t, request(t, goodCert, issuer, nil), []byte{})
			}
			resp := e.post(t, tc.req)
			b := body(t, resp)
			if resp.StatusCode != 200 || !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
				t.Fatalf("HTTP %d, body %x, want malformedRequest", resp.StatusCode, b)
			}
		})
	}
	t.Run("fail/get-not-base64", func(t *testing.T) {
		if b := body(t, e.get(t, "/ocsp/%21%21%21")); !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
			t.Fatalf("body %x, want malformedRequest", b)
		}
	})
	t.Run("fail/too-large", func(t *testing.T) {
		if resp := e.post(t, make([]byte, revocation.MaxRequestSize+1)); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("HTTP %d, want 413", resp.StatusCode)
		}
	})
	t.Run("fail/content-type", func(t *testing.T) {
		resp, err := http.Post(e.srv.URL+"/ocsp", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("HTTP %d, want 415", resp.StatusCode)
		}
	})
	t.Run("fail/other-issuer-unauthorized", func(t *testing.T) {
		ca := testpki.New(t, testpki.Options{IsCA: true})
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		if b := body(t, e.post(t, request(t, leaf.Cert, ca.Cert, nil))); !bytes.Equal(b, ocsp.UnauthorizedErrorResponse) {
			t.Fatalf("body %x, want unauthorized", b)
		}
	})
}

// fetchCRL returns the CRL served, checked against the issuer.
func (e *env) fetchCRL(tb testing.TB) (*x509.RevocationList, *http.Response) {
	tb.Helper()
	resp := e.get(tb, "/crl/"+e.iss.ID()+".crl")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		tb.Fatalf("HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(body(tb, resp))
	if err != nil {
		tb.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(e.iss.Certificate); err != nil {
		tb.Fatal(err)
	}
	return crl, resp
}

func listed(crl *x509.RevocationList, serial *big.Int) *x509.RevocationListEntry {
	for i, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return &crl.RevokedCertificateEntries[i]
		}
	}
	return nil
}

// TestCRLFollowsRevocation: a revocation made through the registry shows
// in the CRL and in OCSP within a second, with a higher CRL number.
func TestCRLFollowsRevocation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	c, cert := e.issue(t)
	held, heldCert := e.issue(t)
	first, resp := e.fetchCRL(t)
	if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("headers %v", resp.Header)
	}
	if first.NextUpdate.Sub(first.ThisUpdate) != fleetcert.CRLValidity {
		t.Fatalf("thisUpdate %v nextUpdate %v", first.ThisUpdate, first.NextUpdate)
	}
	if listed(first, cert.SerialNumber) != nil {
		t.Fatal("an ACTIVE certificate is listed")
	}
	start := time.Now()
	if err := e.reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.UpdateCertificate(ctx, scope, held.ID, fleetcert.StatusInactive); err != nil {
		t.Fatal(err)
	}
	var crl *x509.RevocationList
	testwait.For(t, "the revocation in the CRL", func() bool {
		crl, _ = e.fetchCRL(t)
		return listed(crl, cert.SerialNumber) != nil && listed(crl, heldCert.SerialNumber) != nil
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("revocation took %v to show in the CRL, want under a second", d)
	}
	if crl.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("CRL number %v after %v", crl.Number, first.Number)
	}
	if en := listed(crl, heldCert.SerialNumber); en.ReasonCode != ocsp.CertificateHold {
		t.Fatalf("inactive: reason %d, want certificateHold", en.ReasonCode)
	}
	now, err := e.reg.DescribeCertificate(ctx, scope, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The revocation time is the change's: the registration's
	// LastModifiedDate, to the second a CRL keeps.
	if en := listed(crl, cert.SerialNumber); en.ReasonCode != 0 || !en.RevocationTime.Equal(now.LastModifiedDate.Truncate(time.Second)) {
		t.Fatalf("revoked: reason %d time %v, want none at %v", en.ReasonCode, en.RevocationTime, now.LastModifiedDate)
	}
	r := check(t, body(t, e.post(t, request(t, cert, e.iss.Certificate, nil))), cert, e.iss.Certificate)
	if r.Status != ocsp.Revoked {
		t.Fatalf("OCSP status %d, want revoked", r.Status)
	}

	// Back to ACTIVE: off hold, off the CRL. Deleted: on it for good.
	if err := e.reg.UpdateCertificate(ctx, scope, held.ID, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the certificate off hold", func() bool {
		crl, _ = e.fetchCRL(t)
		return listed(crl, heldCert.SerialNumber) == nil
	})
	if err := e.reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.DeleteCertificate(ctx, scope, c.ID, false); err != nil {
		t.Fatal(err)
	}
	before := crl.Number
	testwait.For(t, "a CRL after the deletion", func() bool {
		crl, _ = e.fetchCRL(t)
		return crl.Number.Cmp(before) > 0
	})
	if listed(crl, cert.SerialNumber) == nil {
		t.Fatal("a deleted revoked certificate left the CRL")
	}

	// Conditional GET: the same CRL is not sent again.
	req, _ := http.NewRequest("GET", e.srv.URL+"/crl/"+e.iss.ID()+".crl", nil)
	req.Header.Set("If-None-Match", `"`+crl.Number.String()+`"`)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: HTTP %d, want 304", resp2.StatusCode)
	}
	if resp := e.get(t, "/crl/nope.crl"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown CRL: HTTP %d", resp.StatusCode)
	}
}

// TestCRLNumbersShared: two responders on one store (two nodes) never sign
// two CRLs with one number, and numbers survive a restart.
func TestCRLNumbersShared(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	seen := map[int64]bool{e.h.CRL().Number: true}
	for range 5 {
		crl, err := e.reg.CreateCRL(ctx) // what another node's responder does
		if err != nil {
			t.Fatal(err)
		}
		if seen[crl.Number] {
			t.Fatalf("CRL number %d given twice", crl.Number)
		}
		seen[crl.Number] = true
	}
	other := &revocation.Handler{Registry: e.reg, Issuer: e.iss, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if n := other.CRL().Number; seen[n] || n < 6 {
		t.Fatalf("a restarted responder's CRL number %d, seen %v", n, seen)
	}
}

// TestAnyRegistered: certificates of other CAs are answered only in the
// opt-in mode, from their registration under the CA.
func TestAnyRegistered(t *testing.T) {
	ctx := context.Background()
	ca := testpki.New(t, testpki.Options{IsCA: true})
	leaf := testpki.New(t, testpki.Options{Parent: ca})
	stranger := testpki.New(t, testpki.Options{Parent: testpki.New(t, testpki.Options{IsCA: true})})
	for _, anyRegistered := range []bool{false, true} {
		e := newEnv(t, anyRegistered)
		// SNI_ONLY needs no proof of possession.
		caReg, err := e.reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{
			CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{
			CertificatePEM: leaf.PEM, CACertificatePEM: ca.PEM, Status: fleetcert.StatusActive})
		if err != nil {
			t.Fatal(err)
		}
		_ = caReg
		ask := func() []byte { return body(t, e.post(t, request(t, leaf.Cert, ca.Cert, nil))) }
		if !anyRegistered {
			if b := ask(); !bytes.Equal(b, ocsp.UnauthorizedErrorResponse) {
				t.Fatalf("default mode: %x, want unauthorized", b)
			}
			continue
		}
		// The relying party trusts fleetcert's responder key locally: the
		// response is signed by the issuing CA, not by the certificate's.
		parse := func(der []byte, cert, issuer *x509.Certificate) *ocsp.Response {
			r, err := ocsp.ParseResponse(der, e.iss.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if r.SerialNumber.Cmp(cert.SerialNumber) != 0 {
				t.Fatalf("serial %x", r.SerialNumber)
			}
			return r
		}
		if r := parse(ask(), leaf.Cert, ca.Cert); r.Status != ocsp.Good {
			t.Fatalf("status %d, want good", r.Status)
		}
		if err := e.reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
			t.Fatal(err)
		}
		if r := parse(ask(), leaf.Cert, ca.Cert); r.Status != ocsp.Revoked {
			t.Fatalf("status %d, want revoked", r.Status)
		}
		b := body(t, e.post(t, request(t, stranger.Cert, ca.Cert, nil)))
		if r := parse(b, stranger.Cert, ca.Cert); r.Status != ocsp.Unknown {
			t.Fatalf("unregistered: status %d, want unknown", r.Status)
		}
	}
}

// BenchmarkOCSP measures OCSP responses per second through the HTTP
// handler: a POSTed request for an issued certificate, a store read and an
// ECDSA P-256 signature.
func BenchmarkOCSP(b *testing.B) {
	e := newEnv(b, false)
	_, cert := e.issue(b)
	req := request(b, cert, e.iss.Certificate, []byte{1, 2, 3, 4})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", "/ocsp", bytes.NewReader(req))
			r.Header.Set("Content-Type", "application/ocsp-request")
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			if w.Code != 200 || w.Body.Len() < 100 {
				b.Fatalf("HTTP %d, %d bytes", w.Code, w.Body.Len())
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "responses/s")
}

// countingStore counts the change-feed reads made through it.
type countingStore struct {
	fleetcert.Store
	reads atomic.Int64
}

func (s *countingStore) Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error) {
	s.reads.Add(1)
	return s.Store.Changes(ctx, after, limit)
}

// A stream of commits does not make the CRL follower read the feed once
// per commit, only about once per 100 ms (minCRLGap), and a revocation in
// the stream still reaches the CRL.
func TestCRLFollowerCoalescesCommits(t *testing.T) {
	ctx := context.Background()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs := &countingStore{Store: db}
	iss, err := fleetcert.NewIssuer(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg := fleetcert.NewRegistry(cs, iss)
	h := &revocation.Handler{Registry: reg, Issuer: iss, Region: scope.Region, DefaultAccountID: scope.AccountID,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	e := &env{reg: reg, iss: iss, h: h}
	c, _ := e.issue(t)
	reads0 := cs.reads.Load()
	start := time.Now()
	const commits = 200
	for i := range commits {
		status := fleetcert.StatusInactive
		if i%2 == 1 {
			status = fleetcert.StatusActive
		}
		if err := reg.UpdateCertificate(ctx, scope, c.ID, status); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if reads, most := cs.reads.Load()-reads0, int64(elapsed/(100*time.Millisecond))+3; reads > most {
		t.Errorf("%d commits in %s made the CRL follower read the feed %d times, want at most %d", commits, elapsed.Round(time.Millisecond), reads, most)
	}
	if err := reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	serial := new(big.Int).SetBytes(c.Serial)
	testwait.For(t, "the CRL lists the revoked certificate", func() bool {
		crl, err := x509.ParseRevocationList(h.CRL().DER)
		return err == nil && listed(crl, serial) != nil
	})
}
