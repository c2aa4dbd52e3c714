package fleetcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Issuer is fleetcert's own issuing CA: it signs the certificates of
// CreateKeysAndCertificate and CreateCertificateFromCsr, as Amazon's CA does
// on AWS.
type Issuer struct {
	Certificate *x509.Certificate
	Signer      crypto.Signer
}

// issuedNotAfter is the end of validity AWS gives the certificates it
// issues.
var issuedNotAfter = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)

// NewIssuer generates a self-signed ECDSA P-256 issuing CA.
func NewIssuer(now time.Time) (*Issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "fleetcert issuing CA", Organization: []string{"fleetcert"}},
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              issuedNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issuer{Certificate: cert, Signer: key}, nil
}

// LoadOrCreateIssuer reads the issuing CA from certPath and keyPath (PEM),
// or creates one and writes both files (the key with mode 0600) when
// neither exists.
func LoadOrCreateIssuer(certPath, keyPath string, now time.Time) (*Issuer, error) {
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(keyPath); err == nil {
			return nil, fmt.Errorf("issuer key %s exists without its certificate %s", keyPath, certPath)
		}
		iss, err := NewIssuer(now)
		if err != nil {
			return nil, fmt.Errorf("create issuer: %w", err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(iss.Signer)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(certPath, []byte(EncodeCertificatePEM(iss.Certificate.Raw)), 0o644); err != nil {
			return nil, err
		}
		return iss, nil
	} else if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("issuer files %s, %s are not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse issuer certificate: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse issuer key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("issuer key is a %T, not a signer", key)
	}
	return &Issuer{Certificate: cert, Signer: signer}, nil
}

// Issue signs a client certificate for pub with the given subject.
func (iss *Issuer) Issue(pub crypto.PublicKey, subject pkix.Name, now time.Time) ([]byte, error) {
	if subject.CommonName == "" && len(subject.Names) == 0 {
		// AWS IoT issues a default subject name (CreateKeysAndCertificate).
		subject = pkix.Name{CommonName: "AWS IoT Certificate"}
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      subject,
		NotBefore:    now.Add(-time.Minute).UTC(),
		NotAfter:     issuedNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	return x509.CreateCertificate(rand.Reader, tmpl, iss.Certificate, pub, iss.Signer)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}
