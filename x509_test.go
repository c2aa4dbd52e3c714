package fleetcert_test

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func TestParseCertificatePEM(t *testing.T) {
	leaf := testpki.Leaf(t)
	other := testpki.Leaf(t)
	csr, _ := testpki.CSR(t, "x")
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leaf.Key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	badDER := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))

	tests := []struct {
		name, in, code string
	}{
		{"ok/plain", leaf.PEM, ""},
		{"ok/surrounding-whitespace", "\n\n  " + leaf.PEM + "\n\t \n", ""},
		{"ok/crlf", strings.ReplaceAll(leaf.PEM, "\n", "\r\n"), ""},
		{"fail/empty", "", fleetcert.EInvalidRequest},
		{"fail/too-long", leaf.PEM + strings.Repeat(" ", fleetcert.MaxCertificatePEM), fleetcert.EInvalidRequest},
		{"fail/not-pem", "hello world", fleetcert.ECertificateValidation},
		{"fail/whitespace-only", "   \n", fleetcert.ECertificateValidation},
		{"fail/leading-garbage", "garbage\n" + leaf.PEM, fleetcert.ECertificateValidation},
		{"fail/trailing-garbage", leaf.PEM + "garbage", fleetcert.ECertificateValidation},
		{"fail/two-certificates", leaf.PEM + other.PEM, fleetcert.ECertificateValidation},
		{"fail/private-key", keyPEM, fleetcert.ECertificateValidation},
		{"fail/csr", csr, fleetcert.ECertificateValidation},
		{"fail/bad-der", badDER, fleetcert.ECertificateValidation},
		{"fail/truncated", leaf.PEM[:len(leaf.PEM)/2], fleetcert.ECertificateValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := fleetcert.ParseCertificatePEM("certificatePem", tt.in)
			if code := fleetcert.ErrorCode(err); code != tt.code {
				t.Fatalf("code = %q (%v), want %q", code, err, tt.code)
			}
			if err == nil && fleetcert.CertificateID(cert.Raw) != fleetcert.CertificateID(leaf.Cert.Raw) {
				t.Fatal("parsed a different certificate")
			}
		})
	}
}

func TestCertificateID(t *testing.T) {
	// The id is the SHA-256 of the DER, not of the PEM (getmoto/moto#7866).
	leaf := testpki.Leaf(t)
	id := fleetcert.CertificateID(leaf.Cert.Raw)
	if len(id) != 64 || strings.ToLower(id) != id {
		t.Fatalf("id %q is not 64 lowercase hex digits", id)
	}
	if id == fleetcert.CertificateID([]byte(leaf.PEM)) {
		t.Fatal("id computed over the PEM")
	}
}

func TestParseCertificateID(t *testing.T) {
	valid := strings.Repeat("ab", 32)
	tests := []struct{ name, in, want, code string }{
		{"ok/lower", valid, valid, ""},
		{"ok/upper", strings.ToUpper(valid), valid, ""},
		{"fail/short", valid[:63], "", fleetcert.EInvalidRequest},
		{"fail/long", valid + "a", "", fleetcert.EInvalidRequest},
		{"fail/non-hex", strings.Repeat("zz", 32), "", fleetcert.EInvalidRequest},
		{"fail/empty", "", "", fleetcert.EInvalidRequest},
		{"fail/0x-prefix", "0x" + valid[:62], "", fleetcert.EInvalidRequest},
		{"fail/path-traversal", "../" + valid[:61], "", fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fleetcert.ParseCertificateID("certificateId", tt.in)
			if code := fleetcert.ErrorCode(err); code != tt.code || got != tt.want {
				t.Fatalf("got %q, %q; want %q, %q", got, code, tt.want, tt.code)
			}
		})
	}
}

func TestCheckValidity(t *testing.T) {
	now := time.Now()
	expired := testpki.New(t, testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if code := fleetcert.ErrorCode(fleetcert.CheckValidity(expired.Cert, now)); code != fleetcert.ECertificateValidation {
		t.Fatalf("expired: code %q", code)
	}
	if err := fleetcert.CheckValidity(testpki.Leaf(t).Cert, now); err != nil {
		t.Fatalf("valid: %v", err)
	}
}

func TestParseCSR(t *testing.T) {
	csr, _ := testpki.CSR(t, "thing-1")
	// Flip a byte inside the signature (the end of the DER) to break it.
	block, _ := pem.Decode([]byte(csr))
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff
	badSig := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}))
	tests := []struct{ name, in, code string }{
		{"ok/csr", csr, ""},
		{"fail/empty", "", fleetcert.EInvalidRequest},
		{"fail/garbage", "not a csr", fleetcert.EInvalidRequest},
		{"fail/certificate", testpki.Leaf(t).PEM, fleetcert.EInvalidRequest},
		{"fail/bad-signature", badSig, fleetcert.EInvalidRequest},
		{"fail/trailing", csr + "x", fleetcert.EInvalidRequest},
		{"fail/too-long", csr + strings.Repeat(" ", 5000), fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fleetcert.ParseCSR(tt.in)
			if code := fleetcert.ErrorCode(err); code != tt.code {
				t.Fatalf("code = %q (%v), want %q", code, err, tt.code)
			}
		})
	}
}

func TestMarker(t *testing.T) {
	c := fleetcert.Cursor{CreationDate: time.UnixMilli(1764000000123).UTC(), Seq: 42}
	m := fleetcert.EncodeMarker(c)
	got, err := fleetcert.DecodeMarker(m)
	if err != nil || !got.CreationDate.Equal(c.CreationDate) || got.Seq != c.Seq {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"!!!", "AAAA", strings.Repeat("A", 2000), m[:len(m)-4]} {
		if _, err := fleetcert.DecodeMarker(bad); fleetcert.ErrorCode(err) != fleetcert.EInvalidRequest {
			t.Errorf("DecodeMarker(%q): %v", bad, err)
		}
	}
}
