// Package testpki makes the certificates tests need: self-signed device
// certificates, CAs and the certificates they sign, and CSRs. Every key is
// ECDSA P-256 so that generating thousands stays cheap.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// Cert is a generated certificate with its key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  string
}

var serial atomic.Int64

// Options change what New makes; the zero value is a self-signed leaf
// valid from an hour ago for a year.
type Options struct {
	CommonName string
	// Subject, when set, is the subject (its CommonName, when empty,
	// is CommonName's).
	Subject   *pkix.Name
	NotBefore time.Time
	NotAfter  time.Time
	IsCA      bool
	Parent    *Cert         // signer; nil means self-signed
	Key       crypto.Signer // reuse a key; nil means a new one
	// Hosts makes a TLS server certificate for these DNS names and IP
	// addresses.
	Hosts []string
}

// New generates a certificate as opts describes.
func New(tb testing.TB, opts Options) *Cert {
	tb.Helper()
	key := opts.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		key = k
	}
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	n := serial.Add(1)
	if opts.CommonName == "" {
		opts.CommonName = "device-" + big.NewInt(n).String()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).Add(big.NewInt(now.UnixNano()), big.NewInt(n)),
		Subject:               subject(opts),
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
	}
	if opts.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent, signer := tmpl, key
	if opts.Parent != nil {
		parent, signer = opts.Parent.Cert, opts.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &Cert{Cert: cert, Key: key, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func subject(opts Options) pkix.Name {
	if opts.Subject == nil {
		return pkix.Name{CommonName: opts.CommonName}
	}
	n := *opts.Subject
	if n.CommonName == "" {
		n.CommonName = opts.CommonName
	}
	return n
}

// Leaf is a fresh self-signed device certificate.
func Leaf(tb testing.TB) *Cert {
	tb.Helper()
	return New(tb, Options{})
}

// CSR returns a PEM certificate signing request for a new key.
func CSR(tb testing.TB, commonName string) (csrPEM string, key crypto.Signer) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName}}, k)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), k
}
