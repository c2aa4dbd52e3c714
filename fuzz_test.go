package fleetcert_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// The fuzz targets feed the registry what callers send it: certificate PEM
// with and without a registered CA, CSRs, pagination markers and
// certificate ids. Their committed seeds are in testdata/fuzz/FuzzXxx,
// made by testdata/fuzzgen.go with the CAs in testdata/fuzzpki. Run one
// with, say,
//
//	go test -run '^$' -fuzz '^FuzzRegisterCertificate$' -fuzztime 30s .

// refusalCodes are the codes a refusal of a caller's input may carry:
// AWS's, and never InternalFailureException, which an input must not be
// able to cause.
var refusalCodes = map[string]bool{
	fleetcert.ECertificateConflict: true, fleetcert.ECertificateState: true,
	fleetcert.ECertificateValidation: true, fleetcert.EDeleteConflict: true,
	fleetcert.EInvalidRequest: true, fleetcert.ELimitExceeded: true,
	fleetcert.ERegistrationCodeValidation: true, fleetcert.EResourceAlreadyExists: true,
	fleetcert.EResourceNotFound: true, fleetcert.EServiceUnavailable: true,
	fleetcert.EThrottling: true, fleetcert.ETransferAlreadyCompleted: true,
	fleetcert.ETransferConflict: true, fleetcert.EUnauthorized: true,
}

// wantRefusal fails t unless err is a refusal a caller can act on: a
// *fleetcert.Error with one of AWS's codes and a message.
func wantRefusal(t *testing.T, err error) {
	t.Helper()
	var e *fleetcert.Error
	if !errors.As(err, &e) {
		t.Fatalf("refused with %T, not a *fleetcert.Error: %v", err, err)
	}
	if !refusalCodes[e.Code] || e.Message == "" {
		t.Fatalf("refused with code %q, message %q: want one of AWS's codes other than %s, and a message",
			e.Code, e.Message, fleetcert.EInternalFailure)
	}
}

// feed follows a registry's change feed, so that a target can tell what
// each call stored: every mutation appends to it in the same transaction.
type feed struct {
	reg  *fleetcert.Registry
	seen int64
}

// next returns the changes since the last call.
func (f *feed) next(t testing.TB) []fleetcert.Change {
	t.Helper()
	ch, err := f.reg.Store.Changes(context.Background(), f.seen, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) > 0 {
		f.seen = ch[len(ch)-1].Seq
	}
	return ch
}

// wantNothing fails t if anything was stored since the last call.
func (f *feed) wantNothing(t *testing.T) {
	t.Helper()
	if ch := f.next(t); len(ch) != 0 {
		t.Fatalf("a refused input stored %d changes: %+v", len(ch), ch)
	}
}

// wantCreated fails t unless c, and only c, was stored since the last call,
// with status and mode, and reads back as it was returned.
func (f *feed) wantCreated(t *testing.T, c *fleetcert.Certificate, status fleetcert.Status, mode fleetcert.CertificateMode) *x509.Certificate {
	t.Helper()
	ch := f.next(t)
	if len(ch) != 1 || ch[0].Kind != fleetcert.ChangeCertificateCreated || ch[0].CertificateID != c.ID ||
		ch[0].Scope != scope || ch[0].NewStatus != status {
		t.Fatalf("registering %s as %s stored %+v, want one %s change", c.ID, status, ch, fleetcert.ChangeCertificateCreated)
	}
	got, err := f.reg.DescribeCertificate(context.Background(), scope, c.ID)
	if err != nil {
		t.Fatalf("describe the certificate just registered: %v", err)
	}
	if got.Status != status || got.Mode != mode || got.PEM != c.PEM || got.CACertificateID != c.CACertificateID {
		t.Fatalf("stored %s %s %q, returned %s %s %q, want status %s, mode %s",
			got.Status, got.Mode, got.CACertificateID, c.Status, c.Mode, c.CACertificateID, status, mode)
	}
	b, rest := pem.Decode([]byte(got.PEM))
	if b == nil || b.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("stored PEM is not one CERTIFICATE block: %q", got.PEM)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("stored certificate does not parse: %v", err)
	}
	if id := fleetcert.CertificateID(cert.Raw); id != c.ID {
		t.Fatalf("stored certificate's id is %s, registered as %s", id, c.ID)
	}
	if !got.NotAfter.Equal(cert.NotAfter) || !got.NotBefore.Equal(cert.NotBefore) {
		t.Fatalf("stored validity %s–%s, the certificate's %s–%s", got.NotBefore, got.NotAfter, cert.NotBefore, cert.NotAfter)
	}
	return cert
}

// wantUnregistered fails t if the certificate that input holds, if any, is
// registered in scope.
func (f *feed) wantUnregistered(t *testing.T, input []byte) {
	t.Helper()
	b, _ := pem.Decode(bytes.TrimSpace(input))
	if b == nil {
		return
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return
	}
	id := fleetcert.CertificateID(cert.Raw)
	if _, err := f.reg.DescribeCertificate(context.Background(), scope, id); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
		t.Fatalf("a refused certificate %s: describe answered %v, want %s", id, err, fleetcert.EResourceNotFound)
	}
}

// forget deletes c, which was just registered, so that every input meets
// the same registry: a target whose outcome depended on the inputs before
// could be neither minimized nor reproduced.
func (f *feed) forget(t *testing.T, c *fleetcert.Certificate) {
	t.Helper()
	ctx := context.Background()
	if c.Status == fleetcert.StatusActive {
		if err := f.reg.UpdateCertificate(ctx, scope, c.ID, fleetcert.StatusInactive); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.reg.DeleteCertificate(ctx, scope, c.ID, true); err != nil {
		t.Fatal(err)
	}
	f.next(t)
}

// registrationStatus is the status a registration asking for status (and
// setAsActive) stores, and whether it is accepted.
func registrationStatus(status string, setAsActive bool) (fleetcert.Status, bool) {
	s := fleetcert.Status(status)
	if s == "" && setAsActive {
		s = fleetcert.StatusActive
	}
	s, err := fleetcert.CheckRegistrationStatus(s)
	return s, err == nil
}

func FuzzRegisterCertificateWithoutCA(f *testing.F) {
	f.Add([]byte(testpki.Leaf(f).PEM), "ACTIVE")
	f.Add([]byte(testpki.Leaf(f).PEM), "")
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), "INACTIVE")
	f.Add([]byte("not PEM"), "REVOKED")
	reg, clk := mustOpenRegistry(f)
	changes := &feed{reg: reg}
	f.Fuzz(func(t *testing.T, certificatePEM []byte, status string) {
		c, err := reg.RegisterCertificateWithoutCA(context.Background(), scope, string(certificatePEM), fleetcert.Status(status))
		if err != nil {
			wantRefusal(t, err)
			changes.wantNothing(t)
			changes.wantUnregistered(t, certificatePEM)
			return
		}
		want, ok := registrationStatus(status, false)
		if !ok {
			t.Fatalf("registered with status %q, which a registration may not ask for", status)
		}
		cert := changes.wantCreated(t, c, want, fleetcert.ModeSNIOnly)
		if c.CACertificateID != "" {
			t.Fatalf("registered without a CA, yet under CA %s", c.CACertificateID)
		}
		if clk.now().After(cert.NotAfter) {
			t.Fatalf("registered a certificate that expired on %s", cert.NotAfter)
		}
		changes.forget(t, c)
	})
}

func FuzzRegisterCertificate(f *testing.F) {
	ctx := context.Background()
	reg, clk := mustOpenRegistry(f)
	// The CAs of the committed seeds, and one made now for the added ones.
	cas := map[string]*x509.Certificate{}
	register := func(caPEM string, active bool) {
		ca, err := reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{
			CACertificatePEM: caPEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: active})
		if err != nil {
			f.Fatal(err)
		}
		cert, err := fleetcert.ParseCertificatePEM("caCertificatePem", caPEM)
		if err != nil {
			f.Fatal(err)
		}
		cas[ca.ID] = cert
	}
	for name, active := range map[string]bool{"testdata/fuzzpki/ca-active.pem": true, "testdata/fuzzpki/ca-inactive.pem": false} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		register(string(b), active)
	}
	ca := testpki.New(f, testpki.Options{IsCA: true, CommonName: "fuzz CA"})
	register(ca.PEM, true)
	f.Add([]byte(testpki.New(f, testpki.Options{Parent: ca}).PEM), []byte(""), "", true)
	f.Add([]byte(testpki.New(f, testpki.Options{Parent: ca}).PEM), []byte(ca.PEM), "REVOKED", false)
	f.Add([]byte(testpki.Leaf(f).PEM), []byte(ca.PEM), "", false)
	f.Add([]byte(""), []byte(""), "", false)

	changes := &feed{reg: reg}
	changes.next(f) // the CAs' registrations
	f.Fuzz(func(t *testing.T, certificatePEM, caCertificatePEM []byte, status string, setAsActive bool) {
		c, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{
			CertificatePEM: string(certificatePEM), CACertificatePEM: string(caCertificatePEM),
			Status: fleetcert.Status(status), SetAsActive: setAsActive,
		})
		if err != nil {
			wantRefusal(t, err)
			changes.wantNothing(t)
			changes.wantUnregistered(t, certificatePEM)
			return
		}
		want, ok := registrationStatus(status, setAsActive)
		if !ok {
			t.Fatalf("registered with status %q, which a registration may not ask for", status)
		}
		cert := changes.wantCreated(t, c, want, fleetcert.ModeSNIOnly)
		// AWS IoT (RegisterCertificate): the certificate must be signed by
		// a registered CA, and registration stops while it is inactive.
		issuer := cas[c.CACertificateID]
		if issuer == nil {
			t.Fatalf("registered under %q, not a registered CA", c.CACertificateID)
		}
		if err := cert.CheckSignatureFrom(issuer); err != nil {
			t.Fatalf("registered under CA %s, which did not sign it: %v", c.CACertificateID, err)
		}
		if got, err := reg.DescribeCACertificate(ctx, scope, c.CACertificateID); err != nil || got.Status != fleetcert.CAStatusActive {
			t.Fatalf("registered under CA %s, which is not ACTIVE (%v)", c.CACertificateID, err)
		}
		if clk.now().After(cert.NotAfter) {
			t.Fatalf("registered a certificate that expired on %s", cert.NotAfter)
		}
		changes.forget(t, c)
	})
}

func FuzzCreateCertificateFromCSR(f *testing.F) {
	csr, _ := testpki.CSR(f, "thing-1")
	f.Add([]byte(csr), true)
	f.Add([]byte(strings.ReplaceAll(csr, "\n", "\r\n")), false)
	f.Add([]byte(""), false)
	reg, _ := mustOpenRegistry(f)
	changes := &feed{reg: reg}
	f.Fuzz(func(t *testing.T, csrPEM []byte, setAsActive bool) {
		c, err := reg.CreateCertificateFromCSR(context.Background(), scope, string(csrPEM), setAsActive)
		if err != nil {
			wantRefusal(t, err)
			changes.wantNothing(t)
			return
		}
		want := fleetcert.StatusInactive
		if setAsActive {
			want = fleetcert.StatusActive
		}
		cert := changes.wantCreated(t, c, want, fleetcert.ModeDefault)
		if c.CACertificateID != "" {
			t.Fatalf("an issued certificate is registered under CA %s", c.CACertificateID)
		}
		if err := cert.CheckSignatureFrom(reg.Issuer.Certificate); err != nil {
			t.Fatalf("the issued certificate is not signed by the issuing CA: %v", err)
		}
		// The certificate is for the CSR's key.
		b, _ := pem.Decode(bytes.TrimSpace(csrPEM))
		req, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			t.Fatalf("a CSR that does not parse was signed: %v", err)
		}
		wantKey, err1 := x509.MarshalPKIXPublicKey(req.PublicKey)
		gotKey, err2 := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err1 != nil || err2 != nil || !bytes.Equal(wantKey, gotKey) {
			t.Fatalf("the issued certificate's key is not the CSR's (%v, %v)", err1, err2)
		}
		changes.forget(t, c)
	})
}

func FuzzDecodeMarker(f *testing.F) {
	f.Add(fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: time.Now(), Seq: 1}))
	f.Add("")
	f.Add("AQ==")
	f.Fuzz(func(t *testing.T, marker string) {
		c, err := fleetcert.DecodeMarker(marker)
		if err != nil {
			if fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
				t.Fatalf("marker %q refused with %v, want %s", marker, err, fleetcert.EInvalidRequest)
			}
			wantRefusal(t, err)
			return
		}
		if c == nil {
			if marker != "" {
				t.Fatalf("marker %q decoded to no cursor", marker)
			}
			return
		}
		// What decodes is that cursor's marker as EncodeMarker writes it:
		// one page has one marker (the seeds line-break and padding-bits
		// are other spellings base64 alone would take).
		if again := fleetcert.EncodeMarker(*c); again != marker {
			t.Fatalf("marker %q decoded to %+v, whose marker is %q", marker, c, again)
		}
	})
}

func FuzzEncodeMarker(f *testing.F) {
	f.Add(time.Now().UnixNano(), int64(7))
	f.Add(int64(0), int64(-1))
	f.Fuzz(func(t *testing.T, nanos, seq int64) {
		c := fleetcert.Cursor{CreationDate: time.Unix(0, nanos), Seq: seq}
		m := fleetcert.EncodeMarker(c)
		// AWS model: Marker matches [A-Za-z0-9+/]+={0,2}, up to 1024
		// characters.
		if _, err := base64.StdEncoding.Strict().DecodeString(m); err != nil || len(m) > 1024 ||
			strings.Trim(strings.TrimRight(m, "="), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != "" {
			t.Fatalf("marker %q of %+v is not of the model's form", m, c)
		}
		got, err := fleetcert.DecodeMarker(m)
		if err != nil || got == nil || !got.CreationDate.Equal(c.CreationDate) || got.Seq != seq {
			t.Fatalf("marker %q of %+v decoded to %+v, %v", m, c, got, err)
		}
		if again := fleetcert.EncodeMarker(*got); again != m {
			t.Fatalf("marker %q of %+v re-encoded as %q", m, c, again)
		}
	})
}

func FuzzParseCertificateID(f *testing.F) {
	f.Add(fleetcert.CertificateID([]byte("fleetcert")))
	f.Add(strings.ToUpper(fleetcert.CertificateID([]byte("fleetcert"))))
	f.Add("0x" + strings.Repeat("a", 62))
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		got, err := fleetcert.ParseCertificateID("certificateId", id)
		// AWS model: CertificateId is 64 characters of (0x)?[a-fA-F0-9]+;
		// only the 64 hex digits of a SHA-256 can name a certificate.
		_, hexErr := hex.DecodeString(id)
		valid := len(id) == 64 && hexErr == nil
		if err != nil {
			if valid {
				t.Fatalf("id %q refused: %v", id, err)
			}
			if fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
				t.Fatalf("id %q refused with %v, want %s", id, err, fleetcert.EInvalidRequest)
			}
			wantRefusal(t, err)
			return
		}
		if !valid {
			t.Fatalf("id %q accepted as %q", id, got)
		}
		if got != strings.ToLower(id) {
			t.Fatalf("id %q accepted as %q, want it in lowercase", id, got)
		}
		if again, err := fleetcert.ParseCertificateID("certificateId", got); err != nil || again != got {
			t.Fatalf("the canonical id %q parsed again as %q, %v", got, again, err)
		}
	})
}
