package awsapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/fleetcert/fleetcert"
)

// maxExpiringDays bounds days: about 100 years, past which every
// certificate but the "no expiration" ones (RFC 5280's 9999) matches anyway.
const maxExpiringDays = 36500

// listCertificatesExpiring serves fleetcert's
// GET /fleetcert/certificates-expiring?days=N&pageSize=&marker=: the
// caller's certificates whose validity ends within N days from now (30 when
// days is absent), expired ones included, soonest (or longest expired)
// first. The output is ListCertificates' with each certificate's validity.
func (h *Handler) listCertificatesExpiring(c *call, r *http.Request) (any, error) {
	days := 30
	if v := c.query.Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxExpiringDays {
			return nil, fleetcert.Errorf(fleetcert.EInvalidRequest,
				"days must be a whole number of days from 0 to %d.", maxExpiringDays)
		}
		days = n
	}
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	opts.Ascending = true // soonest first, whatever isAscendingOrder says
	before := h.now().Add(time.Duration(days) * 24 * time.Hour)
	page, err := h.Registry.FindCertificates(c.ctx, c.scope,
		fleetcert.CertificateFilter{SortByExpiry: true, ExpiresBefore: before}, opts)
	if err != nil {
		return nil, err
	}
	out := &listExpiringOutput{Certificates: make([]expiringCertificate, len(page.Certificates)), NextMarker: page.NextMarker}
	for i, cert := range page.Certificates {
		out.Certificates[i] = expiringCertificate{
			CertificateARN:  cert.ARN(),
			CertificateID:   cert.ID,
			Status:          cert.Status,
			CertificateMode: cert.Mode,
			CreationDate:    epochTime(cert.CreationDate),
			Validity:        certificateValidity{NotBefore: epochTime(cert.NotBefore), NotAfter: epochTime(cert.NotAfter)},
		}
	}
	return out, nil
}

type listExpiringOutput struct {
	Certificates []expiringCertificate `json:"certificates"`
	NextMarker   string                `json:"nextMarker,omitempty"`
}

type expiringCertificate struct {
	CertificateARN  string                    `json:"certificateArn"`
	CertificateID   string                    `json:"certificateId"`
	Status          fleetcert.Status          `json:"status"`
	CertificateMode fleetcert.CertificateMode `json:"certificateMode"`
	CreationDate    epochTime                 `json:"creationDate"`
	Validity        certificateValidity       `json:"validity"`
}
