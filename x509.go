package fleetcert

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"time"
)

// MaxCertificatePEM is the longest certificatePem AWS accepts (model:
// CertificatePem max 65536).
const MaxCertificatePEM = 65536

// ParseCertificatePEM parses exactly one PEM-encoded X.509 certificate.
// Surrounding whitespace is allowed; anything else before or after the block
// is refused, so that what is stored is what was checked.
//
// Errors: InvalidRequestException for an empty or too long input;
// CertificateValidationException for anything that is not one certificate.
func ParseCertificatePEM(member, s string) (*x509.Certificate, error) {
	if len(s) == 0 {
		return nil, Errorf(EInvalidRequest,
			"1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", member)
	}
	if len(s) > MaxCertificatePEM {
		return nil, Errorf(EInvalidRequest,
			"1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", member, MaxCertificatePEM)
	}
	data := bytes.TrimSpace([]byte(s))
	block, rest := pem.Decode(data)
	if block == nil || !bytes.HasPrefix(data, []byte("-----BEGIN")) {
		return nil, Errorf(ECertificateValidation, "The certificate is not a valid PEM-encoded X.509 certificate.")
	}
	if block.Type != "CERTIFICATE" {
		return nil, Errorf(ECertificateValidation, "The PEM block is a %q, not a CERTIFICATE.", block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, Errorf(ECertificateValidation,
			"The PEM input has data after the certificate; register one certificate per request.")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, Errorf(ECertificateValidation, "The certificate could not be parsed: %v.", err)
	}
	return cert, nil
}

// EncodeCertificatePEM returns der as a PEM CERTIFICATE block.
func EncodeCertificatePEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// CheckValidity refuses a certificate that has expired at now.
//
// Errors: CertificateValidationException.
func CheckValidity(cert *x509.Certificate, now time.Time) error {
	// aws-behaviour-notes.md: an expired certificate is refused with
	// CertificateValidationException (unverified on AWS; the choice of the
	// emulators that follow AWS most closely).
	if now.After(cert.NotAfter) {
		return Errorf(ECertificateValidation,
			"The certificate expired on %s.", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// ParseCSR parses a PEM-encoded PKCS #10 certificate signing request and
// checks its signature.
//
// Errors: InvalidRequestException.
func ParseCSR(s string) (*x509.CertificateRequest, error) {
	if len(s) == 0 || len(s) > 4096 {
		// AWS model: CertificateSigningRequest is 1 to 4096 characters.
		return nil, Errorf(EInvalidRequest,
			"1 validation error detected: Value at 'certificateSigningRequest' failed to satisfy constraint: Member must have length between 1 and 4096")
	}
	data := bytes.TrimSpace([]byte(s))
	block, rest := pem.Decode(data)
	if block == nil || !bytes.HasPrefix(data, []byte("-----BEGIN")) ||
		(block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") ||
		len(bytes.TrimSpace(rest)) != 0 {
		return nil, Errorf(EInvalidRequest, "The certificate signing request is not one valid PEM-encoded CSR.")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, Errorf(EInvalidRequest, "The certificate signing request could not be parsed: %v.", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, Errorf(EInvalidRequest, "The certificate signing request's signature is not valid.")
	}
	return csr, nil
}
