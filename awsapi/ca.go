package awsapi

import (
	"net/http"

	"github.com/fleetcert/fleetcert"
)

// JSON shapes of the CA certificate and registration code operations,
// member names as in the model. Optional members are omitted when empty, as
// AWS does.

type getRegistrationCodeOutput struct {
	RegistrationCode string `json:"registrationCode"`
}

// emptyOutput is the body of operations whose model output is a structure
// without members: "{}", where operations without an output shape send an
// empty body.
type emptyOutput struct{}

type registerCACertificateInput struct {
	CACertificate           *string            `json:"caCertificate"`
	VerificationCertificate string             `json:"verificationCertificate"`
	RegistrationConfig      registrationConfig `json:"registrationConfig"`
	Tags                    []tag              `json:"tags"`
	CertificateMode         string             `json:"certificateMode"`
}

type registerCACertificateOutput struct {
	CertificateARN string `json:"certificateArn"`
	CertificateID  string `json:"certificateId"`
}

type registrationConfig struct {
	TemplateBody string `json:"templateBody,omitempty"`
	RoleARN      string `json:"roleArn,omitempty"`
	TemplateName string `json:"templateName,omitempty"`
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type updateCACertificateInput struct {
	RegistrationConfig     *registrationConfig `json:"registrationConfig"`
	RemoveAutoRegistration bool                `json:"removeAutoRegistration"`
}

type describeCACertificateOutput struct {
	CertificateDescription caCertificateDescription `json:"certificateDescription"`
	RegistrationConfig     registrationConfig       `json:"registrationConfig,omitzero"`
}

type caCertificateDescription struct {
	CertificateARN         string                           `json:"certificateArn"`
	CertificateID          string                           `json:"certificateId"`
	Status                 fleetcert.CAStatus               `json:"status"`
	CertificatePEM         string                           `json:"certificatePem"`
	OwnedBy                string                           `json:"ownedBy,omitempty"`
	CreationDate           epochTime                        `json:"creationDate,omitzero"`
	AutoRegistrationStatus fleetcert.AutoRegistrationStatus `json:"autoRegistrationStatus,omitempty"`
	LastModifiedDate       epochTime                        `json:"lastModifiedDate,omitzero"`
	CustomerVersion        int                              `json:"customerVersion,omitempty"`
	GenerationID           string                           `json:"generationId,omitempty"`
	Validity               certificateValidity              `json:"validity,omitzero"`
	CertificateMode        fleetcert.CertificateMode        `json:"certificateMode,omitempty"`
}

type listCACertificatesOutput struct {
	Certificates []caCertificateSummary `json:"certificates"`
	NextMarker   string                 `json:"nextMarker,omitempty"`
}

type caCertificateSummary struct {
	CertificateARN string             `json:"certificateArn"`
	CertificateID  string             `json:"certificateId"`
	Status         fleetcert.CAStatus `json:"status"`
	CreationDate   epochTime          `json:"creationDate,omitzero"`
}

// getRegistrationCode serves GET /registrationcode.
func (h *Handler) getRegistrationCode(c *call, r *http.Request) (any, error) {
	code, err := h.Registry.GetRegistrationCode(c.ctx, c.scope)
	if err != nil {
		return nil, err
	}
	return &getRegistrationCodeOutput{RegistrationCode: code}, nil
}

// deleteRegistrationCode serves DELETE /registrationcode.
func (h *Handler) deleteRegistrationCode(c *call, r *http.Request) (any, error) {
	if err := h.Registry.DeleteRegistrationCode(c.ctx, c.scope); err != nil {
		return nil, err
	}
	return emptyOutput{}, nil
}

// registerCACertificate serves
// POST /cacertificate?setAsActive=&allowAutoRegistration=.
func (h *Handler) registerCACertificate(c *call, r *http.Request) (any, error) {
	setAsActive, err := queryBool(c.query, "setAsActive")
	if err != nil {
		return nil, err
	}
	allowAuto, err := queryBool(c.query, "allowAutoRegistration")
	if err != nil {
		return nil, err
	}
	var in registerCACertificateInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.CACertificate == nil {
		return nil, missingMember("caCertificate")
	}
	var tags []fleetcert.Tag
	if len(in.Tags) > 0 {
		tags = make([]fleetcert.Tag, len(in.Tags))
		for i, t := range in.Tags {
			tags[i] = fleetcert.Tag{Key: t.Key, Value: t.Value}
		}
	}
	ca, err := h.Registry.RegisterCACertificate(c.ctx, c.scope, fleetcert.RegisterCAInput{
		CACertificatePEM:           *in.CACertificate,
		VerificationCertificatePEM: in.VerificationCertificate,
		Mode:                       fleetcert.CertificateMode(in.CertificateMode),
		SetAsActive:                setAsActive,
		AllowAutoRegistration:      allowAuto,
		RegistrationConfig:         in.RegistrationConfig.domain(),
		Tags:                       tags,
	})
	if err != nil {
		return nil, err
	}
	return &registerCACertificateOutput{CertificateARN: ca.ARN(), CertificateID: ca.ID}, nil
}

// updateCACertificate serves
// PUT /cacertificate/{caCertificateId}?newStatus=&newAutoRegistrationStatus=.
func (h *Handler) updateCACertificate(c *call, r *http.Request) (any, error) {
	var in updateCACertificateInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	upd := fleetcert.UpdateCAInput{RemoveAutoRegistration: in.RemoveAutoRegistration}
	upd.NewStatus, _ = queryString(c.query, "newStatus")
	upd.NewAutoRegistrationStatus, _ = queryString(c.query, "newAutoRegistrationStatus")
	if in.RegistrationConfig != nil {
		rc := in.RegistrationConfig.domain()
		upd.RegistrationConfig = &rc
	}
	return nil, h.Registry.UpdateCACertificate(c.ctx, c.scope, r.PathValue("caCertificateId"), upd)
}

// describeCACertificate serves GET /cacertificate/{caCertificateId}.
func (h *Handler) describeCACertificate(c *call, r *http.Request) (any, error) {
	ca, err := h.Registry.DescribeCACertificate(c.ctx, c.scope, r.PathValue("caCertificateId"))
	if err != nil {
		return nil, err
	}
	return &describeCACertificateOutput{
		CertificateDescription: caCertificateDescription{
			CertificateARN:         ca.ARN(),
			CertificateID:          ca.ID,
			Status:                 ca.Status,
			CertificatePEM:         ca.PEM,
			OwnedBy:                ca.OwnedBy,
			CreationDate:           epochTime(ca.CreationDate),
			AutoRegistrationStatus: ca.AutoRegistrationStatus,
			LastModifiedDate:       epochTime(ca.LastModifiedDate),
			CustomerVersion:        ca.CustomerVersion,
			GenerationID:           ca.GenerationID,
			Validity:               certificateValidity{NotBefore: epochTime(ca.NotBefore), NotAfter: epochTime(ca.NotAfter)},
			CertificateMode:        ca.Mode,
		},
		RegistrationConfig: registrationConfig{
			TemplateBody: ca.RegistrationConfig.TemplateBody,
			RoleARN:      ca.RegistrationConfig.RoleARN,
			TemplateName: ca.RegistrationConfig.TemplateName,
		},
	}, nil
}

// listCACertificates serves
// GET /cacertificates?pageSize=&marker=&isAscendingOrder=&templateName=.
func (h *Handler) listCACertificates(c *call, r *http.Request) (any, error) {
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	templateName, _ := queryString(c.query, "templateName")
	page, err := h.Registry.ListCACertificates(c.ctx, c.scope, opts, templateName)
	if err != nil {
		return nil, err
	}
	out := &listCACertificatesOutput{
		Certificates: make([]caCertificateSummary, len(page.CACertificates)),
		NextMarker:   page.NextMarker,
	}
	for i, ca := range page.CACertificates {
		out.Certificates[i] = caCertificateSummary{
			CertificateARN: ca.ARN(),
			CertificateID:  ca.ID,
			Status:         ca.Status,
			CreationDate:   epochTime(ca.CreationDate),
		}
	}
	return out, nil
}

// deleteCACertificate serves DELETE /cacertificate/{caCertificateId}.
func (h *Handler) deleteCACertificate(c *call, r *http.Request) (any, error) {
	if err := h.Registry.DeleteCACertificate(c.ctx, c.scope, r.PathValue("caCertificateId")); err != nil {
		return nil, err
	}
	return emptyOutput{}, nil
}

// domain returns the registration config as the Registry takes it.
func (rc registrationConfig) domain() fleetcert.RegistrationConfig {
	return fleetcert.RegistrationConfig{TemplateBody: rc.TemplateBody, RoleARN: rc.RoleARN, TemplateName: rc.TemplateName}
}
