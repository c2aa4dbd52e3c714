package fleetcert

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
)

// MaxImportBatch is the most certificates ImportCertificates takes at once:
// one transaction holds the store's writer (SQLite) for the whole batch,
// about 0.1 ms a certificate, and the API's writes wait for it meanwhile.
const MaxImportBatch = 2000

// ImportCertificatesInput is a batch of client certificates for
// ImportCertificates.
type ImportCertificatesInput struct {
	Certificates []*x509.Certificate
	// CACertificateID names the registered CA of the scope that signed
	// every certificate of the batch (as RegisterCertificate with its
	// caCertificatePem); "" registers them without a CA, in SNI_ONLY mode
	// (as RegisterCertificateWithoutCA).
	CACertificateID string
	Status          Status // "" means INACTIVE
}

// ImportCertificates registers a batch of client certificates in one
// transaction, each with its own change in the feed: the bulk form of
// RegisterCertificate and RegisterCertificateWithoutCA, with their rules
// (a registration status, validity now, the CA registered, ACTIVE and its
// key's signature on each certificate), for loading a fleet (the seeding of
// `fleetcert-bench seed`). The batch is all or nothing: one certificate
// already registered in scope refuses it.
//
// Errors: InvalidRequestException, CertificateValidationException,
// CertificateStateException, ResourceNotFoundException (the CA),
// ResourceAlreadyExistsException.
func (r *Registry) ImportCertificates(ctx context.Context, scope Scope, in ImportCertificatesInput) ([]*Certificate, error) {
	if len(in.Certificates) > MaxImportBatch {
		return nil, Errorf(EInvalidRequest, "A batch holds at most %d certificates; this one holds %d.", MaxImportBatch, len(in.Certificates))
	}
	status, err := CheckRegistrationStatus(in.Status)
	if err != nil {
		return nil, err
	}
	now := r.now()
	mode := ModeSNIOnly
	var caID string
	if in.CACertificateID != "" {
		if caID, err = ParseCertificateID("caCertificateId", in.CACertificateID); err != nil {
			return nil, err
		}
		ca, err := r.DescribeCACertificate(ctx, scope, caID)
		if err != nil {
			return nil, err
		}
		caCert, err := ParseCertificatePEM("caCertificatePem", ca.PEM)
		if err != nil {
			return nil, err
		}
		// Verified before the transaction, so that concurrent importers
		// verify on every core while the store takes one writer at a time.
		for _, cert := range in.Certificates {
			if !bytes.Equal(caCert.RawSubject, cert.RawIssuer) || cert.CheckSignatureFrom(caCert) != nil {
				return nil, Errorf(ECertificateValidation, "The certificate %s is not signed by the CA certificate %s.", CertificateID(cert.Raw), caID)
			}
		}
		mode = ca.Mode
	}
	out := make([]*Certificate, 0, len(in.Certificates))
	for _, cert := range in.Certificates {
		if err := CheckValidity(cert, now); err != nil {
			return nil, err
		}
		c := r.newCertificate(scope, cert, status, mode, now)
		c.CACertificateID = caID
		out = append(out, c)
	}
	err = r.updateBulk(ctx, "ImportCertificates", func(tx Tx) error {
		if caID != "" {
			ca, err := tx.CACertificate(ctx, scope, caID)
			if err != nil {
				return caNotFound(err, caID)
			}
			if ca.Status != CAStatusActive {
				// As RegisterCertificate: an INACTIVE CA takes no registrations.
				return Errorf(ECertificateState, "The CA certificate %s is INACTIVE; activate it to register certificates under it.", ca.ID)
			}
		}
		for _, c := range out {
			if err := r.insert(ctx, tx, c); err != nil {
				return duplicate(err, scope, c.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import certificates: %w", err)
	}
	return out, nil
}
