package fleetcert

import (
	"bytes"
	"context"
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
	"strings"
	"time"
)

// Issuer is fleetcert's own issuing CA: it signs the certificates of
// CreateKeysAndCertificate and CreateCertificateFromCsr, as Amazon's CA does
// on AWS.
type Issuer struct {
	Certificate *x509.Certificate
	Signer      crypto.Signer

	// CRLURL and OCSPURL, when set, are written into the certificates Issue
	// signs from then on (CRL distribution point, authority information
	// access): where relying parties other than fleetcert's own gateway
	// learn of revocations (fleetcert serve --public-url). Certificates
	// issued before keep what they were issued with.
	CRLURL  string
	OCSPURL string
}

// ID returns the issuing CA's id: the hex SHA-256 of its certificate, as
// AWS names CA certificates. Its CRL is served as /crl/{id}.crl.
func (iss *Issuer) ID() string { return CertificateID(iss.Certificate.Raw) }

// SetPublicURL sets CRLURL and OCSPURL under base, the URL relying parties
// reach fleetcert's API by: {base}/crl/{id}.crl and {base}/ocsp.
func (iss *Issuer) SetPublicURL(base string) {
	base = strings.TrimSuffix(base, "/")
	iss.CRLURL = base + "/crl/" + iss.ID() + ".crl"
	iss.OCSPURL = base + "/ocsp"
}

// Issued reports whether c is the registration of a certificate this CA
// issued: made by CreateKeysAndCertificate or CreateCertificateFromCsr
// (DEFAULT mode, no registered CA; nothing else registers that way) and
// naming this CA as issuer by name and key id.
func (iss *Issuer) Issued(c *Certificate) bool {
	return c.Mode == ModeDefault && c.CACertificateID == "" &&
		bytes.Equal(c.Issuer, iss.Certificate.RawSubject) &&
		(c.AuthorityKeyID == nil || bytes.Equal(c.AuthorityKeyID, iss.Certificate.SubjectKeyId))
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

// IssuerSetting is the Store setting that holds the issuing CA (its
// certificate and PKCS #8 key, PEM), shared by every process on the store.
const IssuerSetting = "issuer-ca"

// LoadOrCreateIssuer returns the issuing CA kept in the store, creating it
// when the store has none. A data dir from before the CA moved into the
// store may still hold it as files (certPath and keyPath, PEM); when both
// are there they seed the store, so certificates issued earlier keep their issuer. When
// several processes start at once on an empty store, all get the CA of the
// first to commit.
func LoadOrCreateIssuer(ctx context.Context, s Store, certPath, keyPath string, now time.Time) (*Issuer, error) {
	v, err := LoadOrCreateSetting(ctx, s, IssuerSetting, func() ([]byte, error) {
		keyPEM, err := os.ReadFile(keyPath)
		if errors.Is(err, os.ErrNotExist) {
			// No key: nothing to keep (certPath may be the public copy
			// a node writes for its operator).
			iss, err := NewIssuer(now)
			if err != nil {
				return nil, fmt.Errorf("create issuer: %w", err)
			}
			return iss.MarshalPEM()
		} else if err != nil {
			return nil, err
		}
		certPEM, err := os.ReadFile(certPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("issuer key %s exists without its certificate %s", keyPath, certPath)
		} else if err != nil {
			return nil, err
		}
		v := append(append(certPEM, '\n'), keyPEM...)
		if _, err := ParseIssuer(v); err != nil {
			return nil, fmt.Errorf("issuer files %s, %s: %w", certPath, keyPath, err)
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	return ParseIssuer(v)
}

// MarshalPEM returns the issuer's certificate and PKCS #8 key as PEM, the
// form ParseIssuer reads.
func (iss *Issuer) MarshalPEM() ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(iss.Signer)
	if err != nil {
		return nil, err
	}
	out := []byte(EncodeCertificatePEM(iss.Certificate.Raw))
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
}

// ParseIssuer reads an issuing CA from PEM: a CERTIFICATE block and a
// PRIVATE KEY (PKCS #8) block, in any order.
func ParseIssuer(b []byte) (*Issuer, error) {
	var iss Issuer
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse issuer certificate: %w", err)
			}
			iss.Certificate = cert
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse issuer key: %w", err)
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("issuer key is a %T, not a signer", key)
			}
			iss.Signer = signer
		}
	}
	if iss.Certificate == nil || iss.Signer == nil {
		return nil, errors.New("issuer: want a PEM CERTIFICATE and a PEM PRIVATE KEY (PKCS #8)")
	}
	return &iss, nil
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
	if iss.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{iss.CRLURL}
	}
	if iss.OCSPURL != "" {
		tmpl.OCSPServer = []string{iss.OCSPURL}
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
