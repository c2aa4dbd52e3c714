package console

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// certRow is a certificate with the actions its status allows.
type certRow struct {
	*fleetcert.Certificate
	Actions actions
}

// actions are the status changes the state machine allows from a status,
// and whether the certificate may be deleted.
type actions struct {
	Activate, Deactivate, Revoke, Delete bool
}

func (a actions) Any() bool { return a.Activate || a.Deactivate || a.Revoke || a.Delete }

// allowedActions asks the root package's state machine which menu entries
// to offer for a certificate in status s.
func allowedActions(s fleetcert.Status) actions {
	ok := func(to fleetcert.Status) bool {
		changed, err := fleetcert.CheckTransition(s, to)
		return err == nil && changed
	}
	return actions{
		Activate:   ok(fleetcert.StatusActive),
		Deactivate: ok(fleetcert.StatusInactive),
		Revoke:     ok(fleetcert.StatusRevoked),
		Delete:     fleetcert.CanDelete("", s) == nil,
	}
}

func rows(certs []*fleetcert.Certificate) []certRow {
	out := make([]certRow, len(certs))
	for i, c := range certs {
		out[i] = certRow{Certificate: c, Actions: allowedActions(c.Status)}
	}
	return out
}

// option is an entry of a <select>.
type option struct {
	Value, Label string
	Selected     bool
}

// filterStatuses are the statuses the list can be filtered by.
var filterStatuses = []fleetcert.Status{
	fleetcert.StatusActive, fleetcert.StatusInactive, fleetcert.StatusRevoked,
	fleetcert.StatusPendingTransfer, fleetcert.StatusPendingActivation,
}

var pageSizes = []int{25, 50, 100}

type certListData struct {
	Rows     []certRow
	Status   string
	CA       string
	Prefix   string
	Size     int
	Statuses []option
	CAs      []option
	Sizes    []option
	Filtered bool
	Error    string
	Pager    pager
	Return   string // this page, for the forms of the option menus
}

// pager holds the links of a keyset-paginated table.
type pager struct {
	First, Prev, Next string
}

func (p pager) Any() bool { return p.Prev != "" || p.Next != "" }

// listPage reads one page of a listing positioned by the "after" or
// "before" query parameter. list is called with the marker and direction.
func listPage(q url.Values, size int, list func(fleetcert.ListOptions) (*fleetcert.CertificatePage, error)) ([]*fleetcert.Certificate, pager, error) {
	before, after := q.Get("before"), q.Get("after")
	opts := fleetcert.ListOptions{PageSize: &size, Marker: after}
	if before != "" {
		// A page back is read forward from the first row of the page one was
		// on, oldest first, then turned around.
		opts = fleetcert.ListOptions{PageSize: &size, Marker: before, Ascending: true}
	}
	page, err := list(opts)
	if err != nil {
		return nil, pager{}, err
	}
	certs := page.Certificates
	hasPrev, hasNext := after != "", page.NextMarker != ""
	if before != "" {
		slices.Reverse(certs)
		hasPrev, hasNext = page.NextMarker != "", true
	}
	link := func(key string, c *fleetcert.Certificate) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "after" && k != "before" {
				v[k] = vs
			}
		}
		first := "?" + v.Encode()
		if c == nil {
			return first
		}
		v.Set(key, fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: c.CreationDate, Seq: c.Seq}))
		return "?" + v.Encode()
	}
	var p pager
	if hasPrev || before != "" || after != "" {
		p.First = link("", nil)
	}
	if len(certs) > 0 {
		if hasPrev {
			p.Prev = link("before", certs[0])
		}
		if hasNext {
			p.Next = link("after", certs[len(certs)-1])
		}
	}
	return certs, p, nil
}

func pageSize(q url.Values) int {
	n, err := strconv.Atoi(q.Get("size"))
	if err != nil || !slices.Contains(pageSizes, n) {
		return pageSizes[0]
	}
	return n
}

func sizeOptions(size int) []option {
	out := make([]option, len(pageSizes))
	for i, n := range pageSizes {
		out[i] = option{Value: strconv.Itoa(n), Label: strconv.Itoa(n) + " per page", Selected: n == size}
	}
	return out
}

func (h *Handler) certificates(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	q := r.URL.Query()
	d := certListData{
		Status: q.Get("status"),
		CA:     strings.ToLower(strings.TrimSpace(q.Get("ca"))),
		Prefix: strings.ToLower(strings.TrimSpace(q.Get("q"))),
		Size:   pageSize(q),
		Return: r.URL.RequestURI(),
	}
	d.Filtered = d.Status != "" || d.CA != "" || d.Prefix != ""
	d.Sizes = sizeOptions(d.Size)
	d.Statuses = []option{{Value: "", Label: "All statuses", Selected: d.Status == ""}}
	for _, s := range filterStatuses {
		d.Statuses = append(d.Statuses, option{Value: string(s), Label: statusLabel(s), Selected: string(s) == d.Status})
	}
	if d.Status != "" && !slices.Contains(filterStatuses, fleetcert.Status(d.Status)) {
		d.Error = "Choose a status from the list."
	}
	if d.CA != "" && !isCertificateID(d.CA) {
		d.Error = "The CA filter must be a CA certificate id: 64 hex digits."
	}
	if d.Prefix != "" && (len(d.Prefix) > 64 || strings.Trim(d.Prefix, "0123456789abcdef") != "") {
		d.Error = "Search by the start of a certificate id: up to 64 hex digits (0-9, a-f)."
	}

	cas, err := h.Registry.ListCACertificates(r.Context(), l.Scope, fleetcert.ListOptions{PageSize: ptr(fleetcert.MaxPageSize)}, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.CAs = []option{{Value: "", Label: "Any CA or none", Selected: d.CA == ""}}
	for _, ca := range cas.CACertificates {
		d.CAs = append(d.CAs, option{Value: ca.ID, Label: caLabel(ca), Selected: ca.ID == d.CA})
	}
	if d.CA != "" && !slices.ContainsFunc(d.CAs, func(o option) bool { return o.Value == d.CA }) {
		d.CAs = append(d.CAs, option{Value: d.CA, Label: shortID(d.CA), Selected: true})
	}

	if d.Error == "" {
		f := fleetcert.CertificateFilter{Status: fleetcert.Status(d.Status), CACertificateID: d.CA, IDPrefix: d.Prefix}
		certs, p, err := listPage(q, d.Size, func(opts fleetcert.ListOptions) (*fleetcert.CertificatePage, error) {
			return h.Registry.FindCertificates(r.Context(), l.Scope, f, opts)
		})
		switch code := fleetcert.ErrorCode(err); code {
		case "":
			d.Rows, d.Pager = rows(certs), p
		case fleetcert.EInvalidRequest:
			d.Error = h.errorText(r, err)
		default:
			h.fail(w, r, err)
			return
		}
	}
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	}
	h.render(w, r, status, "certificates", &page{Title: "Certificates", Nav: "certificates", Data: d})
}

func caLabel(ca *fleetcert.CACertificate) string {
	if cn := commonName(ca.PEM); cn != "" {
		return cn + " (" + shortID(ca.ID) + ")"
	}
	return shortID(ca.ID)
}

func ptr[T any](v T) *T { return &v }

// isCertificateID reports whether s is a canonical certificate id.
func isCertificateID(s string) bool {
	if len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// pathID is the {id} of the URL, or "" (and a 404 page) when it cannot be a
// certificate id.
func (h *Handler) pathID(w http.ResponseWriter, r *http.Request) string {
	id := strings.ToLower(r.PathValue("id"))
	if !isCertificateID(id) {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "The address does not name a certificate: a certificate id is 64 hex digits.")
		return ""
	}
	return id
}

type certDetailData struct {
	C        *fleetcert.Certificate
	X509     *x509Info
	Actions  actions
	Gateway  bool
	Sessions []Session
	Return   string
}

// x509Info is what the console shows of a certificate's contents.
type x509Info struct {
	Subject, Issuer, Serial, KeyAlgorithm, SignatureAlgorithm string
}

func parseX509(pemText string) *x509Info {
	cert, err := x509.ParseCertificate(pemDER(pemText))
	if err != nil {
		return nil
	}
	return &x509Info{
		Subject:            cert.Subject.String(),
		Issuer:             cert.Issuer.String(),
		Serial:             cert.SerialNumber.Text(16),
		KeyAlgorithm:       cert.PublicKeyAlgorithm.String(),
		SignatureAlgorithm: cert.SignatureAlgorithm.String(),
	}
}

func (h *Handler) certificate(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	l := loginFrom(r)
	c, err := h.Registry.DescribeCertificate(r.Context(), l.Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := certDetailData{C: c, X509: parseX509(c.PEM), Actions: allowedActions(c.Status), Return: r.URL.Path}
	if h.Sessions != nil {
		d.Gateway = true
		d.Sessions = h.Sessions.ClientsOf(l.Scope, c.ID)
	}
	h.render(w, r, http.StatusOK, "certificate", &page{Title: "Certificate " + shortID(c.ID), Nav: "certificates", Data: d})
}

func (h *Handler) certificatePEM(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	c, err := h.Registry.DescribeCertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	servePEM(w, id+"-certificate.pem.crt", c.PEM)
}

func servePEM(w http.ResponseWriter, filename, pemText string) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(pemText))
}

// updateCertificate activates or deactivates a certificate (revoking has
// its own confirmation page).
func (h *Handler) updateCertificate(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	to := fleetcert.Status(r.PostFormValue("status"))
	if to != fleetcert.StatusActive && to != fleetcert.StatusInactive {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Activate or Deactivate from the certificate's menu.")
		return
	}
	h.setStatus(w, r, id, to)
}

func (h *Handler) setStatus(w http.ResponseWriter, r *http.Request, id string, to fleetcert.Status) {
	l := loginFrom(r)
	back := returnTo(r, Prefix+"certificates/"+id)
	err := h.Registry.UpdateCertificate(r.Context(), l.Scope, id, to)
	if err != nil {
		h.redirectFlash(w, r, back, &flash{Error: true, Message: h.statusErrorText(r, l.Scope, id, to, err)})
		return
	}
	h.redirectFlash(w, r, back, &flash{Message: "Certificate " + shortID(id) + " is now " + strings.ToLower(statusLabel(to)) + "."})
}

// statusErrorText explains why a certificate's status could not change,
// from its current status where the state machine refused.
func (h *Handler) statusErrorText(r *http.Request, scope fleetcert.Scope, id string, to fleetcert.Status, err error) string {
	if fleetcert.ErrorCode(err) == fleetcert.ECertificateState {
		if c, derr := h.Registry.DescribeCertificate(r.Context(), scope, id); derr == nil {
			switch c.Status {
			case fleetcert.StatusRevoked:
				if to == fleetcert.StatusActive {
					return "This certificate is revoked; a revoked certificate can never be activated again."
				}
				return "This certificate is revoked; a revoked certificate's status can never change again."
			case fleetcert.StatusPendingTransfer:
				return "This certificate is being transferred to another account; its status cannot change until the transfer is accepted, rejected or cancelled."
			}
		}
	}
	if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
		return "Certificate " + shortID(id) + " does not exist in this account and region; it may have been deleted."
	}
	return h.errorText(r, err)
}

type confirmData struct {
	Heading string
	Lead    string
	Details []string
	Warning string
	Action  string
	Button  string
	Danger  bool
	Return  string
	Cancel  string
	Fields  map[string]string
}

func (h *Handler) confirmRevoke(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	c, err := h.Registry.DescribeCertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, Prefix+"certificates/"+id)
	if !allowedActions(c.Status).Revoke {
		h.redirectFlash(w, r, back, &flash{Error: true, Message: "Certificate " + shortID(id) + " is " + strings.ToLower(statusLabel(c.Status)) + " and cannot be revoked now."})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Revoke certificate", Nav: "certificates", Data: confirmData{
		Heading: "Revoke certificate " + shortID(id) + "?",
		Lead:    "Devices using this certificate are refused from now on, and connected ones are disconnected.",
		Details: []string{"Certificate ID: " + id, "Current status: " + statusLabel(c.Status)},
		Warning: "A revoked certificate can never be activated again. To stop a device only for a while, deactivate its certificate instead.",
		Action:  Prefix + "certificates/" + id + "/revoke",
		Button:  "Revoke certificate",
		Danger:  true,
		Return:  back,
		Cancel:  back,
	}})
}

func (h *Handler) revokeCertificate(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	h.setStatus(w, r, id, fleetcert.StatusRevoked)
}

func (h *Handler) confirmDelete(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	c, err := h.Registry.DescribeCertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, Prefix+"certificates/"+id)
	if err := fleetcert.CanDelete(c.ID, c.Status); err != nil {
		h.redirectFlash(w, r, back, &flash{Error: true, Message: h.errorText(r, err)})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Delete certificate", Nav: "certificates", Data: confirmData{
		Heading: "Delete certificate " + shortID(id) + "?",
		Lead:    "The certificate is removed from this account and region. Devices using it can no longer connect.",
		Details: []string{"Certificate ID: " + id, "Current status: " + statusLabel(c.Status)},
		Warning: "The record and its history are gone; the same certificate file can be registered again later.",
		Action:  Prefix + "certificates/" + id + "/delete",
		Button:  "Delete certificate",
		Danger:  true,
		Return:  returnTo(r, Prefix+"certificates"),
		Cancel:  back,
	}})
}

func (h *Handler) deleteCertificate(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	back := returnTo(r, Prefix+"certificates")
	if strings.HasPrefix(back, Prefix+"certificates/"+id) {
		back = Prefix + "certificates"
	}
	if err := h.Registry.DeleteCertificate(r.Context(), loginFrom(r).Scope, id, false); err != nil {
		h.redirectFlash(w, r, back, &flash{Error: true, Message: h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, back, &flash{Message: "Certificate " + shortID(id) + " was deleted."})
}

type devicesData struct {
	Gateway  bool
	Sessions []Session
}

func (h *Handler) devices(w http.ResponseWriter, r *http.Request) {
	d := devicesData{}
	if h.Sessions != nil {
		d.Gateway = true
		d.Sessions = h.Sessions.Connected(loginFrom(r).Scope)
		slices.SortFunc(d.Sessions, func(a, b Session) int { return b.ConnectedAt.Compare(a.ConnectedAt) })
	}
	h.render(w, r, http.StatusOK, "devices", &page{Title: "Devices", Nav: "devices", Data: d})
}

// statusLabel is a status as the console shows it.
func statusLabel(s fleetcert.Status) string {
	switch s {
	case fleetcert.StatusActive:
		return "Active"
	case fleetcert.StatusInactive, fleetcert.StatusRegisterInactive:
		return "Inactive"
	case fleetcert.StatusRevoked:
		return "Revoked"
	case fleetcert.StatusPendingTransfer:
		return "Pending transfer"
	case fleetcert.StatusPendingActivation:
		return "Pending activation"
	}
	return string(s)
}

func shortID(id string) string {
	if len(id) <= 10 {
		return id
	}
	return id[:10] + "…"
}
