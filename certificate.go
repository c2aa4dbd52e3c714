package fleetcert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CertificateMode is how a certificate is presented by devices
// (CertificateMode in the AWS model).
type CertificateMode string

// Certificate modes.
const (
	ModeDefault CertificateMode = "DEFAULT"
	ModeSNIOnly CertificateMode = "SNI_ONLY"
)

// Scope is the (account, region) pair every record belongs to. A caller sees
// only the records of its own scope.
type Scope struct {
	AccountID string
	Region    string
}

// Certificate is a client certificate registered in one account and region
// (CertificateDescription in the AWS model).
type Certificate struct {
	Scope
	ID              string // hex SHA-256 of the DER bytes
	CACertificateID string // registered CA that issued it, if any
	Status          Status
	PEM             string
	Mode            CertificateMode

	OwnedBy          string
	PreviousOwnedBy  string
	CreationDate     time.Time
	LastModifiedDate time.Time
	CustomerVersion  int
	GenerationID     string
	NotBefore        time.Time
	NotAfter         time.Time

	Transfer *TransferData

	// Issuer is the certificate's raw DER issuer name, AuthorityKeyID its
	// authority key identifier (nil without the extension) and CommonName
	// its subject common name. The Registry sets them from the certificate;
	// the store keeps and indexes them, to find the certificates a CA
	// signed whatever CA they were registered under (a CA page, a CA's bulk
	// actions) and to search by name. Nil or "" when unknown.
	Issuer         []byte
	AuthorityKeyID []byte
	CommonName     string

	// Serial is the certificate's serial number, big-endian without
	// leading zeros (big.Int.Bytes; X.509 serials are positive). The
	// Registry sets it; the store keeps and indexes it for the OCSP
	// responder (Tx.CertificatesBySerial). Nil when unknown.
	Serial []byte

	// Seq is the store's insertion sequence, the tie-breaker of list order.
	// Set by the store.
	Seq int64
}

// TransferData describes a certificate transfer between accounts.
type TransferData struct {
	TargetAccountID string
	TransferMessage string
	RejectReason    string
	TransferDate    time.Time
	AcceptDate      time.Time
	RejectDate      time.Time
}

// ARN returns the certificate's ARN, arn:aws:iot:{region}:{account}:cert/{id}.
func (c *Certificate) ARN() string {
	return CertificateARN(c.Scope, c.ID)
}

// CertificateARN returns the ARN of client certificate id in scope.
func CertificateARN(s Scope, id string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:cert/%s", s.Region, s.AccountID, id)
}

// CertificateID returns the AWS id of a certificate: the lowercase hex
// SHA-256 of its DER bytes.
func CertificateID(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseCertificateID validates a certificate id given by a caller and
// returns it in canonical (lowercase) form.
//
// Errors: InvalidRequestException unless id is exactly 64 hex digits.
func ParseCertificateID(member, id string) (string, error) {
	// AWS model: CertificateId is 64 characters matching (0x)?[a-fA-F0-9]+.
	// An id with the 0x prefix is 62 digits and can never name a SHA-256, so
	// only the 64-digit form is accepted.
	if len(id) != 64 {
		return "", Errorf(EInvalidRequest,
			"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length of 64", id, member)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", Errorf(EInvalidRequest,
				"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: (0x)?[a-fA-F0-9]+", id, member)
		}
	}
	return strings.ToLower(id), nil
}

// SetX509Fields sets the fields a store indexes from the certificate's
// contents (Issuer, AuthorityKeyID, CommonName, Serial) from cert.
func (c *Certificate) SetX509Fields(cert *x509.Certificate) {
	c.Issuer = nonEmpty(cert.RawIssuer)
	c.AuthorityKeyID = nonEmpty(cert.AuthorityKeyId)
	c.CommonName = cert.Subject.CommonName
	c.Serial = nil
	if cert.SerialNumber != nil && cert.SerialNumber.Sign() > 0 {
		c.Serial = cert.SerialNumber.Bytes()
	}
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
