package awsapi

import (
	"net/http"

	"github.com/fleetcert/fleetcert"
)

// JSON shapes of the client certificate operations, member names as in the
// model. Optional members are omitted when empty, as AWS does.

type registerCertificateWithoutCAInput struct {
	CertificatePEM *string `json:"certificatePem"`
	Status         string  `json:"status"`
}

type registerCertificateWithoutCAOutput struct {
	CertificateARN string `json:"certificateArn"`
	CertificateID  string `json:"certificateId"`
}

type registerCertificateInput struct {
	CertificatePEM   *string `json:"certificatePem"`
	CACertificatePEM string  `json:"caCertificatePem"`
	Status           string  `json:"status"`
}

type registerCertificateOutput struct {
	CertificateARN string `json:"certificateArn"`
	CertificateID  string `json:"certificateId"`
}

type createCertificateFromCSRInput struct {
	CertificateSigningRequest *string `json:"certificateSigningRequest"`
}

type createCertificateFromCSROutput struct {
	CertificateARN string `json:"certificateArn"`
	CertificateID  string `json:"certificateId"`
	CertificatePEM string `json:"certificatePem"`
}

type createKeysAndCertificateOutput struct {
	CertificateARN string  `json:"certificateArn"`
	CertificateID  string  `json:"certificateId"`
	CertificatePEM string  `json:"certificatePem"`
	KeyPair        keyPair `json:"keyPair"`
}

type keyPair struct {
	PublicKey  string `json:"PublicKey"`
	PrivateKey string `json:"PrivateKey"`
}

type describeCertificateOutput struct {
	CertificateDescription certificateDescription `json:"certificateDescription"`
}

type certificateDescription struct {
	CertificateARN   string                    `json:"certificateArn"`
	CertificateID    string                    `json:"certificateId"`
	CACertificateID  string                    `json:"caCertificateId,omitempty"`
	Status           fleetcert.Status          `json:"status"`
	CertificatePEM   string                    `json:"certificatePem"`
	OwnedBy          string                    `json:"ownedBy,omitempty"`
	PreviousOwnedBy  string                    `json:"previousOwnedBy,omitempty"`
	CreationDate     epochTime                 `json:"creationDate,omitzero"`
	LastModifiedDate epochTime                 `json:"lastModifiedDate,omitzero"`
	CustomerVersion  int                       `json:"customerVersion,omitempty"`
	TransferData     *transferData             `json:"transferData,omitempty"`
	GenerationID     string                    `json:"generationId,omitempty"`
	Validity         certificateValidity       `json:"validity,omitzero"`
	CertificateMode  fleetcert.CertificateMode `json:"certificateMode,omitempty"`
}

type transferData struct {
	TransferMessage string    `json:"transferMessage,omitempty"`
	RejectReason    string    `json:"rejectReason,omitempty"`
	TransferDate    epochTime `json:"transferDate,omitzero"`
	AcceptDate      epochTime `json:"acceptDate,omitzero"`
	RejectDate      epochTime `json:"rejectDate,omitzero"`
}

type certificateValidity struct {
	NotBefore epochTime `json:"notBefore,omitzero"`
	NotAfter  epochTime `json:"notAfter,omitzero"`
}

type listCertificatesOutput struct {
	Certificates []certificateSummary `json:"certificates"`
	NextMarker   string               `json:"nextMarker,omitempty"`
}

type certificateSummary struct {
	CertificateARN  string                    `json:"certificateArn"`
	CertificateID   string                    `json:"certificateId"`
	Status          fleetcert.Status          `json:"status"`
	CertificateMode fleetcert.CertificateMode `json:"certificateMode,omitempty"`
	CreationDate    epochTime                 `json:"creationDate,omitzero"`
}

// registerCertificateWithoutCA serves POST /certificate/register-no-ca.
func (h *Handler) registerCertificateWithoutCA(c *call, r *http.Request) (any, error) {
	var in registerCertificateWithoutCAInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.CertificatePEM == nil {
		return nil, missingMember("certificatePem")
	}
	cert, err := h.Registry.RegisterCertificateWithoutCA(c.ctx, c.scope, *in.CertificatePEM, fleetcert.Status(in.Status))
	if err != nil {
		return nil, err
	}
	return &registerCertificateWithoutCAOutput{CertificateARN: cert.ARN(), CertificateID: cert.ID}, nil
}

// registerCertificate serves POST /certificate/register?setAsActive=.
func (h *Handler) registerCertificate(c *call, r *http.Request) (any, error) {
	setAsActive, err := queryBool(c.query, "setAsActive")
	if err != nil {
		return nil, err
	}
	var in registerCertificateInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.CertificatePEM == nil {
		return nil, missingMember("certificatePem")
	}
	cert, err := h.Registry.RegisterCertificate(c.ctx, c.scope, fleetcert.RegisterCertificateInput{
		CertificatePEM:   *in.CertificatePEM,
		CACertificatePEM: in.CACertificatePEM,
		Status:           fleetcert.Status(in.Status),
		SetAsActive:      setAsActive,
	})
	if err != nil {
		return nil, err
	}
	return &registerCertificateOutput{CertificateARN: cert.ARN(), CertificateID: cert.ID}, nil
}

// createKeysAndCertificate serves POST /keys-and-certificate?setAsActive=.
func (h *Handler) createKeysAndCertificate(c *call, r *http.Request) (any, error) {
	setAsActive, err := queryBool(c.query, "setAsActive")
	if err != nil {
		return nil, err
	}
	cert, kp, err := h.Registry.CreateKeysAndCertificate(c.ctx, c.scope, setAsActive)
	if err != nil {
		return nil, err
	}
	return &createKeysAndCertificateOutput{
		CertificateARN: cert.ARN(),
		CertificateID:  cert.ID,
		CertificatePEM: cert.PEM,
		KeyPair:        keyPair{PublicKey: kp.PublicKey, PrivateKey: kp.PrivateKey},
	}, nil
}

// createCertificateFromCSR serves POST /certificates?setAsActive=.
func (h *Handler) createCertificateFromCSR(c *call, r *http.Request) (any, error) {
	setAsActive, err := queryBool(c.query, "setAsActive")
	if err != nil {
		return nil, err
	}
	var in createCertificateFromCSRInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.CertificateSigningRequest == nil {
		return nil, missingMember("certificateSigningRequest")
	}
	cert, err := h.Registry.CreateCertificateFromCSR(c.ctx, c.scope, *in.CertificateSigningRequest, setAsActive)
	if err != nil {
		return nil, err
	}
	return &createCertificateFromCSROutput{CertificateARN: cert.ARN(), CertificateID: cert.ID, CertificatePEM: cert.PEM}, nil
}

// describeCertificate serves GET /certificates/{certificateId}.
func (h *Handler) describeCertificate(c *call, r *http.Request) (any, error) {
	cert, err := h.Registry.DescribeCertificate(c.ctx, c.scope, r.PathValue("certificateId"))
	if err != nil {
		return nil, err
	}
	d := certificateDescription{
		CertificateARN:   cert.ARN(),
		CertificateID:    cert.ID,
		CACertificateID:  cert.CACertificateID,
		Status:           cert.Status,
		CertificatePEM:   cert.PEM,
		OwnedBy:          cert.OwnedBy,
		PreviousOwnedBy:  cert.PreviousOwnedBy,
		CreationDate:     epochTime(cert.CreationDate),
		LastModifiedDate: epochTime(cert.LastModifiedDate),
		CustomerVersion:  cert.CustomerVersion,
		GenerationID:     cert.GenerationID,
		Validity:         certificateValidity{NotBefore: epochTime(cert.NotBefore), NotAfter: epochTime(cert.NotAfter)},
		CertificateMode:  cert.Mode,
	}
	if t := cert.Transfer; t != nil {
		d.TransferData = &transferData{
			TransferMessage: t.TransferMessage,
			RejectReason:    t.RejectReason,
			TransferDate:    epochTime(t.TransferDate),
			AcceptDate:      epochTime(t.AcceptDate),
			RejectDate:      epochTime(t.RejectDate),
		}
	}
	return &describeCertificateOutput{CertificateDescription: d}, nil
}

// updateCertificate serves PUT /certificates/{certificateId}?newStatus=.
func (h *Handler) updateCertificate(c *call, r *http.Request) (any, error) {
	newStatus, ok := queryString(c.query, "newStatus")
	if !ok {
		return nil, missingMember("newStatus")
	}
	return nil, h.Registry.UpdateCertificate(c.ctx, c.scope, r.PathValue("certificateId"), fleetcert.Status(newStatus))
}

// deleteCertificate serves DELETE /certificates/{certificateId}?forceDelete=.
func (h *Handler) deleteCertificate(c *call, r *http.Request) (any, error) {
	force, err := queryBool(c.query, "forceDelete")
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.DeleteCertificate(c.ctx, c.scope, r.PathValue("certificateId"), force)
}

// listCertificates serves GET /certificates?pageSize=&marker=&isAscendingOrder=.
func (h *Handler) listCertificates(c *call, r *http.Request) (any, error) {
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListCertificates(c.ctx, c.scope, opts)
	if err != nil {
		return nil, err
	}
	return certificateList(page), nil
}

// listCertificatesByCA serves
// GET /certificates-by-ca/{caCertificateId}?pageSize=&marker=&isAscendingOrder=.
func (h *Handler) listCertificatesByCA(c *call, r *http.Request) (any, error) {
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListCertificatesByCA(c.ctx, c.scope, r.PathValue("caCertificateId"), opts)
	if err != nil {
		return nil, err
	}
	return certificateList(page), nil
}

// certificateList is the output of ListCertificates and
// ListCertificatesByCA, whose response shapes have the same members.
func certificateList(page *fleetcert.CertificatePage) *listCertificatesOutput {
	out := &listCertificatesOutput{
		Certificates: make([]certificateSummary, len(page.Certificates)),
		NextMarker:   page.NextMarker,
	}
	for i, cert := range page.Certificates {
		out.Certificates[i] = certificateSummary{
			CertificateARN:  cert.ARN(),
			CertificateID:   cert.ID,
			Status:          cert.Status,
			CertificateMode: cert.Mode,
			CreationDate:    epochTime(cert.CreationDate),
		}
	}
	return out
}
