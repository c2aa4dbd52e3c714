package console

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"strings"

	"github.com/fleetcert/fleetcert"
)

type caRow struct {
	*fleetcert.CACertificate
	Name string
}

type caListData struct {
	Rows  []caRow
	Pager pager
}

func (h *Handler) cas(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	q := r.URL.Query()
	size := pageSize(q)
	before, after := q.Get("before"), q.Get("after")
	opts := fleetcert.ListOptions{PageSize: &size, Marker: after}
	if before != "" {
		opts = fleetcert.ListOptions{PageSize: &size, Marker: before, Ascending: true}
	}
	page1, err := h.Registry.ListCACertificates(r.Context(), l.Scope, opts, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cas := page1.CACertificates
	hasPrev, hasNext := after != "", page1.NextMarker != ""
	if before != "" {
		for i, j := 0, len(cas)-1; i < j; i, j = i+1, j-1 {
			cas[i], cas[j] = cas[j], cas[i]
		}
		hasPrev, hasNext = page1.NextMarker != "", true
	}
	d := caListData{}
	for _, ca := range cas {
		d.Rows = append(d.Rows, caRow{CACertificate: ca, Name: caName(ca)})
	}
	if len(cas) > 0 {
		if before != "" || after != "" {
			d.Pager.First = "?"
		}
		if hasPrev {
			d.Pager.Prev = "?before=" + url.QueryEscape(fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: cas[0].CreationDate, Seq: cas[0].Seq}))
		}
		if hasNext {
			last := cas[len(cas)-1]
			d.Pager.Next = "?after=" + url.QueryEscape(fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: last.CreationDate, Seq: last.Seq}))
		}
	}
	h.render(w, r, http.StatusOK, "cas", &page{Title: "CA certificates", Nav: "cas", Data: d})
}

// caName is the CA's subject common name, or "".
func caName(ca *fleetcert.CACertificate) string {
	return commonName(ca.PEM)
}

type caDetailData struct {
	CA          *fleetcert.CACertificate
	Name        string
	X509        *x509Info
	Certs       []certRow
	Pager       pager
	Count       string
	Signed      []certRow // signed by the CA, registered without it
	SignedPager pager
	Job         *Job // the latest bulk action, running or finished
	Return      string
}

func (h *Handler) ca(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	l := loginFrom(r)
	ca, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	certs, p, err := listPage(q, pageSize(q), false, func(opts fleetcert.ListOptions) (*fleetcert.CertificatePage, error) {
		return h.Registry.ListCertificatesByCA(r.Context(), l.Scope, id, opts)
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.Registry.CountCertificates(r.Context(), l.Scope, fleetcert.CertificateFilter{CACertificateID: id}, countLimit+1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// The second table pages on its own query parameter.
	sq := url.Values{"after": {q.Get("signed_after")}}
	signed, err := h.Registry.ListCertificatesSignedBy(r.Context(), l.Scope, id, fleetcert.ListOptions{PageSize: ptr(pageSize(q)), Marker: sq.Get("after"), Ascending: true})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	names, _, err := h.caNames(r, l.Scope)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := caDetailData{CA: ca, Name: caDisplayName(ca), X509: parseX509(ca.PEM), Certs: rows(certs, names), Pager: p,
		Count: countText(n), Signed: rows(signed.Certificates, names), Return: r.URL.RequestURI()}
	for i := range d.Signed {
		d.Signed[i].Signed = true
	}
	if signed.NextMarker != "" {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("signed_after", signed.NextMarker)
		d.SignedPager.Next = "?" + v.Encode() + "#h-signed"
		v.Del("signed_after")
		d.SignedPager.First = "?" + v.Encode() + "#h-signed"
	} else if q.Get("signed_after") != "" {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Del("signed_after")
		d.SignedPager.First = "?" + v.Encode() + "#h-signed"
	}
	latest, err := h.Registry.LatestJob(r.Context(), l.Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Job = consoleJob(latest, d.Name)
	h.render(w, r, http.StatusOK, "ca", &page{Title: "CA " + d.Name, Nav: "cas", Data: d})
}

func (h *Handler) caPEM(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	ca, err := h.Registry.DescribeCACertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	servePEM(w, id+"-ca.pem", ca.PEM)
}

// caAnchor is the fragment of a CA's row on the CAs page.
func caAnchor(id string) string { return "ca-" + id }

// backToCA is the page to return to after an action on CA id: its row on
// the CAs page, or its own page.
func backToCA(back, id string) string {
	if back == Prefix+"cas" || strings.HasPrefix(back, Prefix+"cas?") {
		return back + "#" + caAnchor(id)
	}
	return back
}

// confirmCAStatus asks before activating or deactivating a CA.
func (h *Handler) confirmCAStatus(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	to := fleetcert.CAStatus(r.URL.Query().Get("to"))
	if to != fleetcert.CAStatusActive && to != fleetcert.CAStatusInactive {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Activate or Deactivate from the CA's menu.")
		return
	}
	ca, err := h.Registry.DescribeCACertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, Prefix+"cas/"+id)
	name := caDisplayName(ca)
	if ca.Status == to {
		h.redirectFlash(w, r, backToCA(back, id), &Flash{Error: true, Message: "CA " + name + " is " + strings.ToLower(statusLabel(fleetcert.Status(to))) + " already."})
		return
	}
	verb, lead := "Activate", "Certificates this CA issued can be registered under it again"+
		map[bool]string{true: ", and devices can register themselves on first connection (auto-registration is enabled).", false: "."}[ca.AutoRegistrationStatus == fleetcert.AutoRegistrationEnable]
	if to == fleetcert.CAStatusInactive {
		verb, lead = "Deactivate", "No new certificate this CA issued can be registered, by hand or by auto-registration. Certificates already registered keep working until you deactivate or revoke them (Deactivate all / Revoke all on the CA's page)."
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: verb + " CA", Nav: "cas", Data: confirmData{
		Heading: verb + " CA " + name + "?",
		Lead:    lead,
		Details: []string{"CA certificate ID: " + id, "Current status: " + statusLabel(fleetcert.Status(ca.Status))},
		Action:  Prefix + "cas/" + id + "/status",
		Button:  verb + " CA",
		Return:  back,
		Cancel:  backToCA(back, id),
		Fields:  map[string]string{"status": string(to)},
	}})
}

// caNameOf names CA id of the request's scope, or the start of its id.
func (h *Handler) caNameOf(r *http.Request, id string) string {
	if ca, err := h.Registry.DescribeCACertificate(r.Context(), loginFrom(r).Scope, id); err == nil {
		return caDisplayName(ca)
	}
	return shortID(id)
}

func (h *Handler) updateCA(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	to := fleetcert.CAStatus(r.PostFormValue("status"))
	if to != fleetcert.CAStatusActive && to != fleetcert.CAStatusInactive {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Activate or Deactivate from the CA's menu.")
		return
	}
	back := backToCA(returnTo(r, Prefix+"cas/"+id), id)
	err := h.Registry.UpdateCACertificate(r.Context(), loginFrom(r).Scope, id, fleetcert.UpdateCAInput{NewStatus: string(to)})
	if err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: h.caErrorText(r, id, err)})
		return
	}
	name := h.caNameOf(r, id)
	msg := "CA " + name + " is now active: certificates it issued can be registered."
	if to == fleetcert.CAStatusInactive {
		msg = "CA " + name + " is now inactive: no new certificates it issued can be registered. Certificates already registered keep working until you deactivate or revoke them."
	}
	h.redirectFlash(w, r, back, &Flash{Message: msg})
}

func (h *Handler) updateAutoRegistration(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	to := fleetcert.AutoRegistrationStatus(r.PostFormValue("auto"))
	if to != fleetcert.AutoRegistrationEnable && to != fleetcert.AutoRegistrationDisable {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose to enable or disable auto-registration from the CA's menu.")
		return
	}
	back := backToCA(returnTo(r, Prefix+"cas/"+id), id)
	err := h.Registry.UpdateCACertificate(r.Context(), loginFrom(r).Scope, id, fleetcert.UpdateCAInput{NewAutoRegistrationStatus: string(to)})
	if err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: h.caErrorText(r, id, err)})
		return
	}
	name := h.caNameOf(r, id)
	msg := "Auto-registration is now enabled for CA " + name + "."
	if to == fleetcert.AutoRegistrationDisable {
		msg = "Auto-registration is now disabled for CA " + name + "."
	}
	h.redirectFlash(w, r, back, &Flash{Message: msg})
}

func (h *Handler) caErrorText(r *http.Request, id string, err error) string {
	if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
		return "CA " + shortID(id) + " does not exist in this account and region; it may have been deleted."
	}
	return "CA " + h.caNameOf(r, id) + ": " + h.errorText(r, err)
}

func (h *Handler) confirmDeleteCA(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	ca, err := h.Registry.DescribeCACertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, Prefix+"cas/"+id)
	if ca.Status != fleetcert.CAStatusInactive {
		h.redirectFlash(w, r, backToCA(back, id), &Flash{Error: true, Message: "CA " + caDisplayName(ca) + " is active; deactivate it before deleting it."})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Delete CA certificate", Nav: "cas", Data: confirmData{
		Heading: "Delete CA certificate " + caDisplayName(ca) + "?",
		Lead:    "The CA is removed from this account and region. Certificates it issued stay registered, with their current status.",
		Details: []string{"CA certificate ID: " + id},
		Warning: "To use the CA again you must register it again, with a new verification certificate.",
		Action:  Prefix + "cas/" + id + "/delete",
		Button:  "Delete CA certificate",
		Danger:  true,
		Return:  Prefix + "cas",
		Cancel:  backToCA(back, id),
	}})
}

func (h *Handler) deleteCA(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	name := h.caNameOf(r, id)
	if err := h.Registry.DeleteCACertificate(r.Context(), loginFrom(r).Scope, id); err != nil {
		h.redirectFlash(w, r, Prefix+"cas/"+id, &Flash{Error: true, Message: h.caErrorText(r, id, err)})
		return
	}
	h.redirectFlash(w, r, Prefix+"cas", &Flash{Message: "CA certificate " + name + " (" + shortID(id) + ") was deleted."})
}

type registerCAData struct {
	Code         string
	CAPEM        string
	Verification string
	Mode         string
	Activate     bool
	AutoReg      bool
	Error        string
}

func (h *Handler) registerCAPage(w http.ResponseWriter, r *http.Request) {
	d := registerCAData{Mode: string(fleetcert.ModeDefault), Activate: true}
	status := http.StatusOK
	if h.formDraft(r, "register-ca", &d) && d.Error != "" {
		status = http.StatusBadRequest
	}
	h.showRegisterCA(w, r, status, d)
}

func (h *Handler) showRegisterCA(w http.ResponseWriter, r *http.Request, status int, d registerCAData) {
	code, err := h.Registry.GetRegistrationCode(r.Context(), loginFrom(r).Scope)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Code = code
	h.render(w, r, status, "register-ca", &page{Title: "Register a CA certificate", Nav: "cas", Data: d})
}

func (h *Handler) registerCA(w http.ResponseWriter, r *http.Request) {
	d := registerCAData{
		CAPEM:        r.PostFormValue("ca_pem"),
		Verification: r.PostFormValue("verification_pem"),
		Mode:         r.PostFormValue("mode"),
		Activate:     r.PostFormValue("activate") != "",
		AutoReg:      r.PostFormValue("auto_registration") != "",
	}
	if d.Mode != string(fleetcert.ModeSNIOnly) {
		d.Mode = string(fleetcert.ModeDefault)
	}
	if text, ok, msg := uploadedText(r, "ca_file", fleetcert.MaxCertificatePEM); msg != "" {
		d.Error = msg
	} else if ok {
		d.CAPEM = text
	}
	if text, ok, msg := uploadedText(r, "verification_file", fleetcert.MaxCertificatePEM); msg != "" {
		d.Error = msg
	} else if ok {
		d.Verification = text
	}
	switch {
	case d.Error != "":
	case strings.TrimSpace(d.CAPEM) == "":
		d.Error = "Choose the CA certificate's PEM file or paste it."
	case d.Mode == string(fleetcert.ModeDefault) && strings.TrimSpace(d.Verification) == "":
		d.Error = "Choose the verification certificate (its common name is the registration code below), or register the CA in SNI only mode."
	}
	if d.Error == "" {
		in := fleetcert.RegisterCAInput{
			CACertificatePEM:      d.CAPEM,
			Mode:                  fleetcert.CertificateMode(d.Mode),
			SetAsActive:           d.Activate,
			AllowAutoRegistration: d.AutoReg,
		}
		if d.Mode == string(fleetcert.ModeDefault) {
			in.VerificationCertificatePEM = d.Verification
		}
		ca, err := h.Registry.RegisterCACertificate(r.Context(), loginFrom(r).Scope, in)
		if err == nil {
			h.redirectFlash(w, r, Prefix+"cas/"+ca.ID, &Flash{Message: "CA certificate " + caDisplayName(ca) + " registered. Certificates it issued can now be registered under it" + map[bool]string{true: ".", false: " once you activate it."}[d.Activate]})
			return
		}
		if fleetcert.ErrorCode(err) == fleetcert.EInternalFailure {
			h.fail(w, r, err)
			return
		}
		d.Error = h.errorText(r, err)
	}
	h.redirectResult(w, r, "register-ca", d, Prefix+"cas/register")
}

// commonName is the subject common name of the PEM certificate, or "".
func commonName(pemText string) string {
	if cert, err := x509.ParseCertificate(pemDER(pemText)); err == nil {
		return cert.Subject.CommonName
	}
	return ""
}
