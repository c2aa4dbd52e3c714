//go:build ignore

// A CSR with a 512-bit RSA key is one of the seeds.
//
//go:debug rsa1024min=0

// fuzzgen writes the seed corpora of the root package's fuzz targets
// (fuzz_test.go) into testdata/fuzz/FuzzXxx, and the fixed CA certificates
// they are registered under into testdata/fuzzpki. Keys are random, so a
// run writes other bytes each time: run it only to change the seeds, from
// the module root:
//
//	go run testdata/fuzzgen.go
//
// Every certificate it makes that should be valid is valid until
// 9999-12-31 (RFC 5280's "no expiration" date), so that the seeds do not
// age.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"log"
	"math"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

var (
	forever = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	longAgo = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	serial  int64
)

func main() {
	log.SetFlags(0)
	caActive, caActiveKey := newCA("fleetcert fuzz CA")
	caInactive, caInactiveKey := newCA("fleetcert fuzz CA") // same subject, other key
	caUnregistered, caUnregisteredKey := newCA("fleetcert fuzz unregistered CA")
	write("testdata/fuzzpki/ca-active.pem", []byte(pemOf("CERTIFICATE", caActive.Raw)))
	write("testdata/fuzzpki/ca-inactive.pem", []byte(pemOf("CERTIFICATE", caInactive.Raw)))

	selfSigned := leaf(p256(), nil, nil, longAgo, forever)
	other := leaf(p256(), nil, nil, longAgo, forever)
	csrPEM := csr(p256(), pkix.Name{CommonName: "thing-1"}, nil)

	// RegisterCertificateWithoutCA: (certificatePem, status).
	without := "FuzzRegisterCertificateWithoutCA"
	corpus(without, "self-signed", []byte(selfSigned), "ACTIVE")
	corpus(without, "register-inactive", []byte(leaf(p256(), nil, nil, longAgo, forever)), "REGISTER_INACTIVE")
	corpus(without, "revoked", []byte(leaf(p256(), nil, nil, longAgo, forever)), "REVOKED")
	corpus(without, "status-pending-transfer", []byte(leaf(p256(), nil, nil, longAgo, forever)), "PENDING_TRANSFER")
	corpus(without, "status-lowercase", []byte(leaf(p256(), nil, nil, longAgo, forever)), "active")
	corpus(without, "crlf", []byte(strings.ReplaceAll(leaf(p256(), nil, nil, longAgo, forever), "\n", "\r\n")), "")
	corpus(without, "surrounding-whitespace", []byte("\n\n  "+leaf(p256(), nil, nil, longAgo, forever)+"\n\t "), "INACTIVE")
	corpus(without, "trailing-data", []byte(other+"junk"), "")
	corpus(without, "two-certificates", []byte(other+selfSigned), "")
	corpus(without, "leading-text", []byte("subject=CN=device\n"+other), "")
	corpus(without, "headers", []byte(strings.Replace(other, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1)), "")
	corpus(without, "no-end-line", []byte(strings.Split(other, "-----END")[0]), "")
	corpus(without, "truncated", []byte(other[:len(other)/2]), "")
	corpus(without, "private-key-block", []byte(pemOf("EC PRIVATE KEY", []byte("not a key"))), "")
	corpus(without, "csr-block", []byte(csrPEM), "")
	corpus(without, "garbage-der", []byte(pemOf("CERTIFICATE", []byte("\x30\x82\x01\x00garbage"))), "")
	corpus(without, "empty-block", []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), "")
	corpus(without, "expired", []byte(leaf(p256(), nil, nil, longAgo, longAgo.AddDate(1, 0, 0))), "")
	corpus(without, "not-yet-valid", []byte(leaf(p256(), nil, nil, forever.AddDate(-1, 0, 0), forever)), "")
	corpus(without, "year-zero", []byte(leaf(p256(), nil, nil, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), forever)), "")
	corpus(without, "year-one", []byte(leaf(p256(), nil, nil, time.Time{}, forever)), "")
	corpus(without, "rsa-1024", []byte(leaf(rsaKey(1024), nil, nil, longAgo, forever)), "")
	corpus(without, "ed25519", []byte(leaf(ed25519Key(), nil, nil, longAgo, forever)), "ACTIVE")
	corpus(without, "ca-certificate", []byte(pemOf("CERTIFICATE", caUnregistered.Raw)), "")
	corpus(without, "empty", []byte(""), "")
	corpus(without, "whitespace", []byte(" \n\t\r\n"), "")
	corpus(without, "too-long", []byte(selfSigned+strings.Repeat(" ", fleetcert.MaxCertificatePEM)), "")

	// RegisterCertificate: (certificatePem, caCertificatePem, status,
	// setAsActive), with ca-active.pem registered ACTIVE and
	// ca-inactive.pem INACTIVE, both SNI_ONLY.
	under := "FuzzRegisterCertificate"
	activePEM, inactivePEM := pemOf("CERTIFICATE", caActive.Raw), pemOf("CERTIFICATE", caInactive.Raw)
	underActive := leaf(p256(), caActive, caActiveKey, longAgo, forever)
	corpus(under, "under-active-ca", []byte(underActive), []byte(""), "", false)
	corpus(under, "under-active-ca-named", []byte(leaf(p256(), caActive, caActiveKey, longAgo, forever)), []byte(activePEM), "ACTIVE", false)
	corpus(under, "set-as-active", []byte(leaf(p256(), caActive, caActiveKey, longAgo, forever)), []byte(""), "", true)
	corpus(under, "set-as-active-and-revoked", []byte(leaf(p256(), caActive, caActiveKey, longAgo, forever)), []byte(""), "REVOKED", true)
	corpus(under, "rsa-under-active-ca", []byte(leaf(rsaKey(2048), caActive, caActiveKey, longAgo, forever)), []byte(""), "INACTIVE", false)
	corpus(under, "under-inactive-ca", []byte(leaf(p256(), caInactive, caInactiveKey, longAgo, forever)), []byte(""), "", false)
	corpus(under, "other-ca-named", []byte(underActive), []byte(inactivePEM), "", false)
	corpus(under, "unregistered-ca", []byte(leaf(p256(), caUnregistered, caUnregisteredKey, longAgo, forever)), []byte(""), "", false)
	corpus(under, "unregistered-ca-named", []byte(leaf(p256(), caUnregistered, caUnregisteredKey, longAgo, forever)),
		[]byte(pemOf("CERTIFICATE", caUnregistered.Raw)), "", false)
	corpus(under, "self-signed", []byte(selfSigned), []byte(""), "", false)
	corpus(under, "expired-under-active-ca", []byte(leaf(p256(), caActive, caActiveKey, longAgo, longAgo.AddDate(1, 0, 0))), []byte(""), "", false)
	corpus(under, "ca-pem-garbage", []byte(underActive), []byte("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"), "", false)
	corpus(under, "ca-pem-two-blocks", []byte(underActive), []byte(activePEM+activePEM), "", false)
	corpus(under, "ca-itself", []byte(activePEM), []byte(""), "", false)
	corpus(under, "status-pending-activation", []byte(underActive), []byte(""), "PENDING_ACTIVATION", false)
	corpus(under, "empty", []byte(""), []byte(""), "", false)

	// CreateCertificateFromCSR: (certificateSigningRequest, setAsActive).
	fromCSR := "FuzzCreateCertificateFromCSR"
	corpus(fromCSR, "p256", []byte(csrPEM), true)
	corpus(fromCSR, "p384", []byte(csr(ecKey(elliptic.P384()), pkix.Name{CommonName: "thing-2"}, nil)), false)
	corpus(fromCSR, "p521", []byte(csr(ecKey(elliptic.P521()), pkix.Name{CommonName: "thing-3"}, nil)), true)
	corpus(fromCSR, "rsa-2048", []byte(csr(rsaKey(2048), pkix.Name{CommonName: "thing-4"}, nil)), true)
	corpus(fromCSR, "rsa-512", []byte(csr(rsaKey(512), pkix.Name{CommonName: "weak"}, nil)), true)
	corpus(fromCSR, "ed25519", []byte(csr(ed25519Key(), pkix.Name{CommonName: "thing-5"}, nil)), false)
	corpus(fromCSR, "empty-subject", []byte(csr(p256(), pkix.Name{}, nil)), true)
	corpus(fromCSR, "many-names", []byte(csr(p256(), pkix.Name{
		CommonName: "thing-6", Organization: []string{"fleetcert", "ünïcödé"}, Country: []string{"NL"},
		SerialNumber: "42", ExtraNames: []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 65}, Value: "pseudonym"}},
	}, &x509.CertificateRequest{
		DNSNames:        []string{"thing-6.example"},
		EmailAddresses:  []string{"thing@example.com"},
		IPAddresses:     []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		URIs:            []*url.URL{{Scheme: "spiffe", Host: "fleet", Path: "/thing-6"}},
		ExtraExtensions: []pkix.Extension{{Id: []int{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}},
	})), true)
	corpus(fromCSR, "long-subject", []byte(csr(p256(), pkix.Name{CommonName: strings.Repeat("x", 64), Organization: []string{strings.Repeat("o", 2500)}}, nil)), false)
	corpus(fromCSR, "new-certificate-request", []byte(strings.ReplaceAll(csrPEM, "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")), false)
	corpus(fromCSR, "bad-signature", []byte(badSignature(csrPEM)), true)
	corpus(fromCSR, "crlf", []byte(strings.ReplaceAll(csrPEM, "\n", "\r\n")), false)
	corpus(fromCSR, "trailing-data", []byte(csrPEM+"junk"), false)
	corpus(fromCSR, "certificate-block", []byte(selfSigned), false)
	corpus(fromCSR, "too-long", []byte(csrPEM+strings.Repeat("\n", 4096)), false)
	corpus(fromCSR, "empty", []byte(""), false)

	// DecodeMarker: (marker).
	markers := "FuzzDecodeMarker"
	now := fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: time.Now().UTC().Truncate(time.Millisecond), Seq: 42})
	corpus(markers, "canonical", now)
	corpus(markers, "zero", fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: time.Unix(0, 0).UTC()}))
	corpus(markers, "min", fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: time.Unix(0, math.MinInt64).UTC(), Seq: math.MinInt64}))
	corpus(markers, "max", fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: time.Unix(0, math.MaxInt64).UTC(), Seq: math.MaxInt64}))
	// DecodeMarker accepts these two other spellings of a canonical
	// marker: base64 skips line breaks and, unless strict, ignores the
	// padding's bits.
	corpus(markers, "line-break", now[:10]+"\r\n"+now[10:])
	corpus(markers, "padding-bits", now[:22]+string(now[22]+1)+"=")
	corpus(markers, "version-2", marker(2, 17))
	corpus(markers, "short", marker(1, 16))
	corpus(markers, "long", marker(1, 18))
	corpus(markers, "url-alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(marker(1, 17)+"+/"))
	corpus(markers, "unpadded", strings.TrimRight(now, "="))
	corpus(markers, "not-base64", "not a marker!")
	corpus(markers, "too-long", strings.Repeat("A", 2048))
	corpus(markers, "empty", "")

	// EncodeMarker: (creationDate in Unix nanoseconds, seq).
	cursors := "FuzzEncodeMarker"
	corpus(cursors, "zero", int64(0), int64(0))
	corpus(cursors, "now", time.Now().UnixNano(), int64(42))
	corpus(cursors, "min", int64(math.MinInt64), int64(math.MinInt64))
	corpus(cursors, "max", int64(math.MaxInt64), int64(math.MaxInt64))
	corpus(cursors, "negative", int64(-1), int64(-1))

	// ParseCertificateID: (id).
	ids := "FuzzParseCertificateID"
	id := fleetcert.CertificateID([]byte("fleetcert"))
	corpus(ids, "canonical", id)
	corpus(ids, "uppercase", strings.ToUpper(id))
	corpus(ids, "mixed-case", strings.ToUpper(id[:32])+id[32:])
	corpus(ids, "0x-prefix", "0x"+id[:62])
	corpus(ids, "63-digits", id[:63])
	corpus(ids, "65-digits", id+"0")
	corpus(ids, "not-hex", "g"+id[1:])
	corpus(ids, "multibyte", "é"+id[2:])
	corpus(ids, "empty", "")
}

// corpus writes one seed of target in the encoding of go test's corpus
// files.
func corpus(target, name string, values ...any) {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case bool, int64:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		default:
			log.Fatalf("corpus %s/%s: unsupported %T", target, name, v)
		}
	}
	write(filepath.Join("testdata/fuzz", target, name), []byte(b.String()))
}

func write(name string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		log.Fatal(err)
	}
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func p256() crypto.Signer { return ecKey(elliptic.P256()) }

func ecKey(c elliptic.Curve) crypto.Signer {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

func rsaKey(bits int) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

func ed25519Key() crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

func newCA(name string) (*x509.Certificate, crypto.Signer) {
	key := p256()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: longAgo, NotAfter: forever,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	return cert, key
}

// leaf returns a PEM device certificate for key, signed by parent (self-signed
// when nil).
func leaf(key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, notBefore, notAfter time.Time) string {
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprintf("device-%d", serial)},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		log.Fatal(err)
	}
	return pemOf("CERTIFICATE", der)
}

func csr(key crypto.Signer, subject pkix.Name, tmpl *x509.CertificateRequest) string {
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	tmpl.Subject = subject
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		log.Fatal(err)
	}
	return pemOf("CERTIFICATE REQUEST", der)
}

// badSignature returns csrPEM with the last byte of its signature changed.
func badSignature(csrPEM string) string {
	b, _ := pem.Decode([]byte(csrPEM))
	der := append([]byte(nil), b.Bytes...)
	der[len(der)-1] ^= 0xff
	return pemOf("CERTIFICATE REQUEST", der)
}

// marker returns a marker of n bytes with version v.
func marker(v byte, n int) string {
	b := make([]byte, max(n, 17))
	b[0] = v
	binary.BigEndian.PutUint64(b[1:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(b[9:], 7)
	return base64.StdEncoding.EncodeToString(b[:n])
}
