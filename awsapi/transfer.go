package awsapi

import (
	"net/http"

	"github.com/fleetcert/fleetcert"
)

// JSON shapes of the certificate transfer operations, member names as in
// the model.

type transferCertificateInput struct {
	TransferMessage string `json:"transferMessage"`
}

type transferCertificateOutput struct {
	TransferredCertificateARN string `json:"transferredCertificateArn"`
}

type rejectCertificateTransferInput struct {
	RejectReason string `json:"rejectReason"`
}

type listOutgoingCertificatesOutput struct {
	OutgoingCertificates []outgoingCertificate `json:"outgoingCertificates"`
	NextMarker           string                `json:"nextMarker,omitempty"`
}

type outgoingCertificate struct {
	CertificateARN  string    `json:"certificateArn"`
	CertificateID   string    `json:"certificateId"`
	TransferredTo   string    `json:"transferredTo,omitempty"`
	TransferDate    epochTime `json:"transferDate,omitzero"`
	TransferMessage string    `json:"transferMessage,omitempty"`
	CreationDate    epochTime `json:"creationDate,omitzero"`
}

// transferCertificate serves
// PATCH /transfer-certificate/{certificateId}?targetAwsAccount=.
func (h *Handler) transferCertificate(c *call, r *http.Request) (any, error) {
	target, ok := queryString(c.query, "targetAwsAccount")
	if !ok {
		return nil, missingMember("targetAwsAccount")
	}
	var in transferCertificateInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	cert, err := h.Registry.TransferCertificate(c.ctx, c.scope, r.PathValue("certificateId"), target, in.TransferMessage)
	if err != nil {
		return nil, err
	}
	// AWS IoT (aws-cli example transfer-certificate.rst): the ARN names the
	// certificate in the target account.
	arn := fleetcert.CertificateARN(fleetcert.Scope{AccountID: target, Region: cert.Region}, cert.ID)
	return &transferCertificateOutput{TransferredCertificateARN: arn}, nil
}

// acceptCertificateTransfer serves
// PATCH /accept-certificate-transfer/{certificateId}?setAsActive=.
func (h *Handler) acceptCertificateTransfer(c *call, r *http.Request) (any, error) {
	setAsActive, err := queryBool(c.query, "setAsActive")
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.AcceptCertificateTransfer(c.ctx, c.scope, r.PathValue("certificateId"), setAsActive)
}

// rejectCertificateTransfer serves
// PATCH /reject-certificate-transfer/{certificateId}.
func (h *Handler) rejectCertificateTransfer(c *call, r *http.Request) (any, error) {
	var in rejectCertificateTransferInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	return nil, h.Registry.RejectCertificateTransfer(c.ctx, c.scope, r.PathValue("certificateId"), in.RejectReason)
}

// cancelCertificateTransfer serves
// PATCH /cancel-certificate-transfer/{certificateId}.
func (h *Handler) cancelCertificateTransfer(c *call, r *http.Request) (any, error) {
	return nil, h.Registry.CancelCertificateTransfer(c.ctx, c.scope, r.PathValue("certificateId"))
}

// listOutgoingCertificates serves
// GET /certificates-out-going?pageSize=&marker=&isAscendingOrder=.
func (h *Handler) listOutgoingCertificates(c *call, r *http.Request) (any, error) {
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListOutgoingCertificates(c.ctx, c.scope, opts)
	if err != nil {
		return nil, err
	}
	out := &listOutgoingCertificatesOutput{
		OutgoingCertificates: make([]outgoingCertificate, len(page.Certificates)),
		NextMarker:           page.NextMarker,
	}
	for i, cert := range page.Certificates {
		o := outgoingCertificate{
			CertificateARN: cert.ARN(),
			CertificateID:  cert.ID,
			CreationDate:   epochTime(cert.CreationDate),
		}
		if t := cert.Transfer; t != nil {
			o.TransferredTo = t.TargetAccountID
			o.TransferDate = epochTime(t.TransferDate)
			o.TransferMessage = t.TransferMessage
		}
		out.OutgoingCertificates[i] = o
	}
	return out, nil
}
