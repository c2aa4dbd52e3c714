package fleetcert

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
)

// The certificates a CA signed. A CA's certificates are those registered
// under it (CACertificateID) and, for the day the CA is compromised, those
// it signed that were registered without a CA or under another
// registration: the store finds candidates by the certificate's issuer
// name and authority key id, and the Registry keeps only those whose
// signature verifies with the CA's key. That confirmation is a rule, so it
// lives here and not in the console.

// ListCertificatesSignedBy returns a page of the client certificates of
// scope whose signature verifies with the key of CA caID but which are not
// registered under it, ordered like ListCertificates. Candidates whose
// signature does not verify are left out, so a page may hold fewer
// certificates than its size and still have a NextMarker.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListCertificatesSignedBy(ctx context.Context, scope Scope, caID string, opts ListOptions) (*CertificatePage, error) {
	caID, err := ParseCertificateID("caCertificateId", caID)
	if err != nil {
		return nil, err
	}
	size, err := checkPageSize(opts.PageSize)
	if err != nil {
		return nil, err
	}
	after, err := DecodeMarker(opts.Marker)
	if err != nil {
		return nil, err
	}
	page := &CertificatePage{}
	err = r.Store.View(ctx, func(tx Tx) error {
		ca, caCert, err := caAndCertificate(ctx, tx, scope, caID)
		if err != nil {
			return err
		}
		q := CertificateQuery{Scope: scope, Issuer: caCert.RawSubject, AuthorityKeyID: caCert.SubjectKeyId, ExcludeCACertificateID: ca.ID,
			Ascending: opts.Ascending, After: after, Limit: size + 1}
		cands, err := tx.ListCertificates(ctx, q)
		if err != nil {
			return err
		}
		if len(cands) > size {
			last := cands[size-1]
			page.NextMarker = EncodeMarker(Cursor{CreationDate: last.CreationDate, Seq: last.Seq})
			cands = cands[:size]
		}
		for _, c := range cands {
			if c.CACertificateID == ca.ID {
				continue
			}
			ok, known := r.signed.get(c.ID, ca.ID)
			if !known {
				if ok, err = signedBy(ctx, tx, c, caCert); err != nil {
					return err
				}
				r.signed.put(c.ID, ca.ID, ok)
			}
			if ok {
				page.Certificates = append(page.Certificates, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list certificates signed by %s: %w", caID, err)
	}
	return page, nil
}

// caAndCertificate reads CA id of scope and parses its certificate.
func caAndCertificate(ctx context.Context, tx Tx, scope Scope, id string) (*CACertificate, *x509.Certificate, error) {
	ca, err := tx.CACertificate(ctx, scope, id)
	if err != nil {
		return nil, nil, err
	}
	caCert, err := ParseCertificatePEM("caCertificate", ca.PEM)
	if err != nil {
		return nil, nil, fmt.Errorf("stored CA %s: %w", ca.ID, err)
	}
	return ca, caCert, nil
}

// signedBy reports whether listed certificate c (whose PEM a listing
// leaves out) is signed by caCert's key.
func signedBy(ctx context.Context, tx Tx, c *Certificate, caCert *x509.Certificate) (bool, error) {
	full, err := tx.Certificate(ctx, c.Scope, c.ID)
	if ErrorCode(err) == EResourceNotFound {
		return false, nil // deleted since it was listed
	} else if err != nil {
		return false, err
	}
	cert, err := ParseCertificatePEM("certificate", full.PEM)
	if err != nil {
		return false, nil
	}
	return cert.CheckSignatureFrom(caCert) == nil, nil
}

// FindRegisteredIssuer returns the CA registered in scope, in any status,
// whose key verifies the signature of the PEM certificate, or nil when
// there is none (or the PEM is not a certificate). The console uses it to
// warn that a certificate registered without a CA was issued by one.
func (r *Registry) FindRegisteredIssuer(ctx context.Context, scope Scope, certificatePEM string) (*CACertificate, error) {
	cert, err := ParseCertificatePEM("certificatePem", certificatePEM)
	if err != nil {
		return nil, nil
	}
	var found *CACertificate
	err = r.Store.View(ctx, func(tx Tx) error {
		cands, err := tx.ListCACertificates(ctx, CAQuery{Scope: scope, Subject: cert.RawIssuer, Limit: MaxCAsPerSubject + 1})
		if err != nil {
			return err
		}
		for _, ca := range cands {
			caCert, err := ParseCertificatePEM("caCertificate", ca.PEM)
			if err == nil && cert.CheckSignatureFrom(caCert) == nil {
				found = ca
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find the issuer of a certificate: %w", err)
	}
	return found, nil
}

// signatureCache remembers whether a certificate's signature verifies
// against a CA certificate's key. Both are named by the SHA-256 of their
// DER bytes, so the answer never changes: a CA's page shown again reads
// and verifies none of its candidates a second time (a row read and an
// ECDSA verification each, most of the page's time). It holds at most
// maxSignatureCache answers (about 150 bytes each) and starts over when
// full.
type signatureCache struct {
	mu sync.Mutex
	m  map[[2]string]bool
}

const maxSignatureCache = 1 << 16

func (c *signatureCache) get(certID, caID string) (signed, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	signed, known = c.m[[2]string{certID, caID}]
	return signed, known
}

func (c *signatureCache) put(certID, caID string, signed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxSignatureCache {
		c.m = make(map[[2]string]bool)
	}
	c.m[[2]string{certID, caID}] = signed
}
