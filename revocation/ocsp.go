package revocation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
	"golang.org/x/crypto/ocsp"
)

// golang.org/x/crypto/ocsp parses the request's CertID and holds the
// pre-encoded error responses, but it can neither read request extensions
// nor write response extensions (its ExtraExtensions go into the
// singleExtensions of the one SingleResponse, where no client looks for a
// nonce). RFC 6960 §4.4.1 puts the nonce in requestExtensions and
// responseExtensions, so this file reads and writes those structures
// itself, after RFC 6960 §4.1.1 and §4.2.1.

// oidNonce is id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
var oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// oidBasicResponse is id-pkix-ocsp-basic.
var oidBasicResponse = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

// maxNonce is RFC 8954 §2.1's bound: a responder rejects a longer nonce
// with malformedRequest. The RFC also sets the minimum at 1.
const maxNonce = 32

type ocspRequest struct {
	TBSRequest struct {
		Version       int           `asn1:"explicit,tag:0,default:0,optional"`
		RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
		RequestList   []struct {
			CertID     asn1.RawValue
			Extensions []pkix.Extension `asn1:"explicit,tag:0,optional"`
		}
		Extensions []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	Signature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

// request is what the responder reads from an OCSP request.
type request struct {
	*ocsp.Request
	rawCertID []byte
	nonce     *pkix.Extension // as sent, echoed in the response
}

var errMalformed = errors.New("malformed OCSP request")

// parseRequest reads a DER OCSPRequest with one Request (RFC 5019 §2.1.1:
// one per OCSPRequest), and its nonce if any.
func parseRequest(der []byte) (*request, error) {
	var raw ocspRequest
	if rest, err := asn1.Unmarshal(der, &raw); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if len(raw.TBSRequest.RequestList) != 1 {
		return nil, fmt.Errorf("%w: %d requests in one, want 1", errMalformed, len(raw.TBSRequest.RequestList))
	}
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if req.SerialNumber == nil {
		return nil, fmt.Errorf("%w: no serial number", errMalformed)
	}
	r := &request{Request: req, rawCertID: raw.TBSRequest.RequestList[0].CertID.FullBytes}
	for i, ext := range raw.TBSRequest.Extensions {
		if !ext.Id.Equal(oidNonce) {
			continue
		}
		// The nonce is an OCTET STRING inside extnValue (RFC 6960
		// §4.4.1); RFC 8954 bounds its value to 1–32 octets.
		var nonce []byte
		if rest, err := asn1.Unmarshal(ext.Value, &nonce); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: nonce is not an OCTET STRING", errMalformed)
		}
		if len(nonce) < 1 || len(nonce) > maxNonce {
			return nil, fmt.Errorf("%w: nonce of %d octets, want 1 to %d (RFC 8954)", errMalformed, len(nonce), maxNonce)
		}
		r.nonce = &raw.TBSRequest.Extensions[i]
	}
	return r, nil
}

// issuerHashes are a CA's name and key hashes under one hash function, as
// a CertID carries them.
func issuerHashes(h crypto.Hash, ca *x509.Certificate) (name, key []byte, err error) {
	if !h.Available() {
		return nil, nil, fmt.Errorf("hash %v not available", h)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ca.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, nil, err
	}
	hn := h.New()
	hn.Write(ca.RawSubject)
	hk := h.New()
	hk.Write(spki.PublicKey.RightAlign())
	return hn.Sum(nil), hk.Sum(nil), nil
}

// names reports whether req's CertID names ca as the issuer.
func (req *request) names(ca *x509.Certificate) bool {
	name, key, err := issuerHashes(req.HashAlgorithm, ca)
	return err == nil && bytes.Equal(name, req.IssuerNameHash) && bytes.Equal(key, req.IssuerKeyHash)
}

type responseASN1 struct {
	Status   asn1.Enumerated
	Response responseBytes `asn1:"explicit,tag:0,optional"`
}

type responseBytes struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type basicResponse struct {
	TBSResponseData    asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type responseData struct {
	Version     int `asn1:"optional,default:0,explicit,tag:0"`
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   []singleResponse
	Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type singleResponse struct {
	CertID     asn1.RawValue
	Good       asn1.Flag   `asn1:"tag:0,optional"`
	Revoked    revokedInfo `asn1:"tag:1,optional"`
	Unknown    asn1.Flag   `asn1:"tag:2,optional"`
	ThisUpdate time.Time   `asn1:"generalized"`
	NextUpdate time.Time   `asn1:"generalized,explicit,tag:0,optional"`
}

type revokedInfo struct {
	RevocationTime time.Time       `asn1:"generalized"`
	Reason         asn1.Enumerated `asn1:"explicit,tag:0,optional"` // left out when 0 (unspecified)
}

// signer signs OCSP responses: the issuing CA's key, named by key hash
// (RFC 5019 §2.2.3 prefers byKey).
type signer struct {
	key         crypto.Signer
	responderID asn1.RawValue
	hash        crypto.Hash
	algorithm   pkix.AlgorithmIdentifier
}

func newSigner(cert *x509.Certificate, key crypto.Signer) (*signer, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, err
	}
	keyHash := sha1.Sum(spki.PublicKey.RightAlign()) // RFC 6960 §4.2.1: SHA-1 of the key
	inner, err := asn1.Marshal(keyHash[:])
	if err != nil {
		return nil, err
	}
	s := &signer{key: key, responderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: inner}}
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P384():
			s.hash, s.algorithm.Algorithm = crypto.SHA384, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
		case elliptic.P521():
			s.hash, s.algorithm.Algorithm = crypto.SHA512, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
		default:
			s.hash, s.algorithm.Algorithm = crypto.SHA256, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
		}
	case *rsa.PublicKey:
		s.hash = crypto.SHA256
		s.algorithm = pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, Parameters: asn1.NullRawValue}
	case ed25519.PublicKey:
		s.algorithm.Algorithm = asn1.ObjectIdentifier{1, 3, 101, 112}
	default:
		return nil, fmt.Errorf("OCSP signing key %T not supported", pub)
	}
	return s, nil
}

// response builds and signs a successful OCSP response for req saying rev.
func (s *signer) response(req *request, rev fleetcert.Revocation, now time.Time) ([]byte, error) {
	now = now.UTC().Truncate(time.Second)
	single := singleResponse{
		CertID:     asn1.RawValue{FullBytes: req.rawCertID},
		ThisUpdate: now,
		NextUpdate: now.Add(ResponseValidity),
	}
	switch rev.State {
	case fleetcert.RevocationGood:
		single.Good = true
	case fleetcert.RevocationRevoked:
		single.Revoked = revokedInfo{RevocationTime: rev.RevokedAt.UTC().Truncate(time.Second), Reason: asn1.Enumerated(rev.Reason)}
	default:
		single.Unknown = true
	}
	data := responseData{ResponderID: s.responderID, ProducedAt: now, Responses: []singleResponse{single}}
	if req.nonce != nil {
		data.Extensions = []pkix.Extension{{Id: oidNonce, Value: req.nonce.Value}}
	}
	tbs, err := asn1.Marshal(data)
	if err != nil {
		return nil, err
	}
	digest, opts := tbs, crypto.SignerOpts(crypto.Hash(0))
	if s.hash != 0 {
		h := s.hash.New()
		h.Write(tbs)
		digest, opts = h.Sum(nil), s.hash
	}
	sig, err := s.key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP response: %w", err)
	}
	basic, err := asn1.Marshal(basicResponse{
		TBSResponseData:    asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: s.algorithm,
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(responseASN1{
		Status:   asn1.Enumerated(ocsp.Success),
		Response: responseBytes{ResponseType: oidBasicResponse, Response: basic},
	})
}
