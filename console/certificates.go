package console

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// certRow is a certificate with the actions its status allows.
//
// Its fields are copied rather than embedded: html/template finds a
// promoted field through reflect's breadth-first FieldByNameFunc, which
// made a 25-row table cost 1.4 ms to render.
type certRow struct {
	ID, CommonName, CACertificateID string
	Status                          fleetcert.Status
	CreationDate, NotAfter          time.Time
	Actions                         actions
	CAName                          string // the name of the CA it is registered under
	Signed                          bool   // signed by the CA of the page, registered without it
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

// rows makes the table rows of certs; caNames names the CAs by id.
func rows(certs []*fleetcert.Certificate, caNames map[string]string) []certRow {
	out := make([]certRow, len(certs))
	for i, c := range certs {
		name := caNames[c.CACertificateID]
		if name == "" && c.CACertificateID != "" {
			name = shortID(c.CACertificateID)
		}
		out[i] = certRow{ID: c.ID, CommonName: c.CommonName, CACertificateID: c.CACertificateID, Status: c.Status,
			CreationDate: c.CreationDate, NotAfter: c.NotAfter, Actions: allowedActions(c.Status), CAName: name}
	}
	return out
}

// caNames returns the names of the CAs of scope (up to the first 250),
// by id, and their options for a filter.
func (h *Handler) caNames(r *http.Request, scope fleetcert.Scope) (map[string]string, []*fleetcert.CACertificate, error) {
	page, err := h.Registry.ListCACertificates(r.Context(), scope, fleetcert.ListOptions{PageSize: ptr(fleetcert.MaxPageSize)}, "")
	if err != nil {
		return nil, nil, err
	}
	names := make(map[string]string, len(page.CACertificates))
	for _, ca := range page.CACertificates {
		names[ca.ID] = caDisplayName(ca)
	}
	return names, page.CACertificates, nil
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
	Search   string
	Sort     string
	Expiring string // days: only certificates whose validity ends within them
	Size     int
	Expiries []option
	Statuses []option
	CAs      []option
	Sizes    []option
	Sorts    []option
	Filtered bool
	Error    string
	Pager    pager
	Count    string // "1,234 certificates" or "More than 5,000 certificates"
	Return   string // this page, for the forms of the option menus
}

// countLimit bounds the count of a listing: counting further would cost
// more than the page itself (about a millisecond per 10,000 index entries
// on SQLite); past it the page says "more than 5,000".
const countLimit = 5_000

// countText says how many certificates there are, given a count bounded
// at countLimit+1 (one more than it can name exactly).
func countText(n int) string {
	switch {
	case n > countLimit:
		return "More than " + thousands(countLimit) + " certificates"
	case n == 1:
		return "1 certificate"
	}
	return thousands(n) + " certificates"
}

// thousands writes n with comma separators.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// pager holds the links of a keyset-paginated table.
type pager struct {
	First, Prev, Next string
}

func (p pager) Any() bool { return p.Prev != "" || p.Next != "" }

// listPage reads one page of a listing positioned by the "after" or
// "before" query parameter. list is called with the marker and direction.
func listPage(q url.Values, size int, byExpiry bool, list func(fleetcert.ListOptions) (*fleetcert.CertificatePage, error)) ([]*fleetcert.Certificate, pager, error) {
	before, after := q.Get("before"), q.Get("after")
	// Newest first by creation; soonest first by expiry.
	opts := fleetcert.ListOptions{PageSize: &size, Marker: after, Ascending: byExpiry}
	if before != "" {
		// A page back is read the other way from the first row of the page
		// one was on, then turned around.
		opts = fleetcert.ListOptions{PageSize: &size, Marker: before, Ascending: !byExpiry}
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
		pos := c.CreationDate
		if byExpiry {
			pos = c.NotAfter
		}
		v.Set(key, fleetcert.EncodeMarker(fleetcert.Cursor{CreationDate: pos, Seq: c.Seq}))
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
		Search: strings.TrimSpace(q.Get("q")),
		Sort:   q.Get("sort"),
		Size:   pageSize(q),
		Return: r.URL.RequestURI(),
	}
	if d.Sort != "expiry" {
		d.Sort = ""
	}
	d.Expiring = strings.TrimSpace(q.Get("expiring"))
	expiringDays, err := strconv.Atoi(d.Expiring)
	if d.Expiring != "" && (err != nil || expiringDays < 0 || expiringDays > 36500) {
		d.Error = "Expiring within: a whole number of days from 0 to 36500."
	}
	d.Expiries = []option{{Value: "", Label: "Any time", Selected: d.Expiring == ""}}
	for _, n := range []string{"7", "30", "90"} {
		d.Expiries = append(d.Expiries, option{Value: n, Label: "Within " + n + " days", Selected: d.Expiring == n})
	}
	if d.Expiring != "" && !slices.ContainsFunc(d.Expiries, func(o option) bool { return o.Selected }) {
		d.Expiries = append(d.Expiries, option{Value: d.Expiring, Label: "Within " + d.Expiring + " days", Selected: true})
	}
	d.Filtered = d.Status != "" || d.CA != "" || d.Search != "" || d.Expiring != ""
	d.Sizes = sizeOptions(d.Size)
	d.Sorts = []option{{Value: "", Label: "Newest first", Selected: d.Sort == ""}, {Value: "expiry", Label: "Expiring first", Selected: d.Sort == "expiry"}}
	d.Statuses = []option{{Value: "", Label: "All statuses", Selected: d.Status == ""}}
	for _, s := range filterStatuses {
		d.Statuses = append(d.Statuses, option{Value: string(s), Label: statusLabel(s), Selected: string(s) == d.Status})
	}
	if d.Status != "" && !slices.Contains(filterStatuses, fleetcert.Status(d.Status)) {
		d.Error = "Choose a status from the list."
	}
	if d.CA != "" && d.CA != "none" && !isCertificateID(d.CA) {
		d.Error = "The CA filter must be a CA certificate id: 64 hex digits."
	}
	if len(d.Search) > 64 {
		d.Error = "Search by the start of a certificate id or of a common name: up to 64 characters."
	}

	names, cas, err := h.caNames(r, l.Scope)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.CAs = []option{{Value: "", Label: "Any CA or none", Selected: d.CA == ""}, {Value: "none", Label: "No CA", Selected: d.CA == "none"}}
	for _, ca := range cas {
		d.CAs = append(d.CAs, option{Value: ca.ID, Label: caLabel(ca), Selected: ca.ID == d.CA})
	}
	if d.CA != "" && !slices.ContainsFunc(d.CAs, func(o option) bool { return o.Value == d.CA }) {
		d.CAs = append(d.CAs, option{Value: d.CA, Label: shortID(d.CA), Selected: true})
	}

	if d.Error == "" {
		f := fleetcert.CertificateFilter{Status: fleetcert.Status(d.Status), SortByExpiry: d.Sort == "expiry"}
		if d.Expiring != "" {
			// Expired ones included: they need attention first.
			f.ExpiresBefore = h.now().Add(time.Duration(expiringDays) * 24 * time.Hour)
		}
		if d.CA == "none" {
			f.NoCA = true
		} else {
			f.CACertificateID = d.CA
		}
		// A search is the start of an id when it can be one (hex digits),
		// and of a common name otherwise or when no id starts with it.
		hexSearch := d.Search != "" && strings.Trim(strings.ToLower(d.Search), "0123456789abcdef") == ""
		if hexSearch {
			f.IDPrefix = d.Search
		} else {
			f.CommonNamePrefix = d.Search
		}
		list := func(f fleetcert.CertificateFilter) ([]*fleetcert.Certificate, pager, error) {
			return listPage(q, d.Size, f.SortByExpiry, func(opts fleetcert.ListOptions) (*fleetcert.CertificatePage, error) {
				return h.Registry.FindCertificates(r.Context(), l.Scope, f, opts)
			})
		}
		certs, p, err := list(f)
		if err == nil && hexSearch && len(certs) == 0 {
			f.IDPrefix, f.CommonNamePrefix = "", d.Search
			certs, p, err = list(f)
		}
		var n int
		if err == nil {
			n, err = h.Registry.CountCertificates(r.Context(), l.Scope, f, countLimit+1)
		}
		switch code := fleetcert.ErrorCode(err); code {
		case "":
			d.Rows, d.Pager, d.Count = rows(certs, names), p, countText(n)
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

// caDisplayName is the CA's subject common name, or the start of its id.
func caDisplayName(ca *fleetcert.CACertificate) string {
	if cn := commonName(ca.PEM); cn != "" {
		return cn
	}
	return shortID(ca.ID)
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
	A        *certAttachments
	// History is the certificate's audit log in this account and Region,
	// newest first, at most historyLimit entries; HistoryMore says there
	// are older ones.
	History     []fleetcert.AuditEntry
	HistoryMore bool
}

// historyLimit bounds the entries a certificate's History card shows.
const historyLimit = 50

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
	if d.A, err = h.attachments(r, c); err != nil {
		h.fail(w, r, err)
		return
	}
	if h.Sessions != nil {
		d.Gateway = true
		d.Sessions = h.Sessions.ClientsOf(l.Scope, c.ID)
	}
	// Only this account's and Region's entries: another account's
	// registration of the same certificate is not this one's history.
	var next *fleetcert.AuditCursor
	d.History, next, err = h.Registry.Audit(r.Context(), fleetcert.AuditQuery{
		AccountID: l.Scope.AccountID, Region: l.Scope.Region, CertificateID: c.ID, Newest: true, Limit: historyLimit})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.HistoryMore = next != nil
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

// certName names a certificate in a sentence: its id's start and, when it
// has one, its common name.
func certName(c *fleetcert.Certificate) string {
	if c.CommonName != "" {
		return shortID(c.ID) + " (" + c.CommonName + ")"
	}
	return shortID(c.ID)
}

// rowAnchor is the fragment of a certificate's row in a table.
func rowAnchor(id string) string { return "c-" + id }

// backToRow is the page to return to after an action on certificate id,
// scrolled to its row (and the row focused by console.js), unless the page
// is the certificate's own.
func backToRow(back, id string) string {
	if strings.HasPrefix(back, Prefix+"certificates/"+id) || strings.Contains(back, "#") {
		return back
	}
	return back + "#" + rowAnchor(id)
}

// confirmStatus asks before activating or deactivating a certificate: the
// menu's entries lead here, so a click alone never changes a certificate.
func (h *Handler) confirmStatus(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	to := fleetcert.Status(r.URL.Query().Get("to"))
	if to != fleetcert.StatusActive && to != fleetcert.StatusInactive {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Activate or Deactivate from the certificate's menu.")
		return
	}
	c, err := h.Registry.DescribeCertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, Prefix+"certificates/"+id)
	if changed, err := fleetcert.CheckTransition(c.Status, to); err != nil || !changed {
		h.redirectFlash(w, r, backToRow(back, id), &Flash{Error: true, Message: "Certificate " + certName(c) + " is " +
			strings.ToLower(statusLabel(c.Status)) + " and cannot be " + map[fleetcert.Status]string{fleetcert.StatusActive: "activated", fleetcert.StatusInactive: "deactivated"}[to] + " now."})
		return
	}
	verb, lead := "Activate", "Devices using this certificate can connect again."
	if to == fleetcert.StatusInactive {
		verb, lead = "Deactivate", "Devices using this certificate are refused until it is activated again, and connected ones are disconnected at once."
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: verb + " certificate", Nav: "certificates", Data: confirmData{
		Heading: verb + " certificate " + certName(c) + "?",
		Lead:    lead,
		Details: []string{"Certificate ID: " + id, "Current status: " + statusLabel(c.Status)},
		Action:  Prefix + "certificates/" + id + "/status",
		Button:  verb + " certificate",
		Return:  back,
		Cancel:  backToRow(back, id),
		Fields:  map[string]string{"status": string(to)},
	}})
}

// updateCertificate activates or deactivates a certificate.
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
	back := backToRow(returnTo(r, Prefix+"certificates/"+id), id)
	err := h.Registry.UpdateCertificate(r.Context(), l.Scope, id, to)
	if err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: h.statusErrorText(r, l.Scope, id, to, err)})
		return
	}
	name := shortID(id)
	if c, err := h.Registry.DescribeCertificate(r.Context(), l.Scope, id); err == nil {
		name = certName(c)
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Certificate " + name + " is now " + strings.ToLower(statusLabel(to)) + "."})
}

// statusErrorText explains why a certificate's status could not change,
// from its current status where the state machine refused, naming the
// certificate (the row may be stale: someone else changed it meanwhile).
func (h *Handler) statusErrorText(r *http.Request, scope fleetcert.Scope, id string, to fleetcert.Status, err error) string {
	if fleetcert.ErrorCode(err) == fleetcert.ECertificateState {
		if c, derr := h.Registry.DescribeCertificate(r.Context(), scope, id); derr == nil {
			switch c.Status {
			case fleetcert.StatusRevoked:
				if to == fleetcert.StatusActive {
					return "Certificate " + certName(c) + " is revoked; a revoked certificate can never be activated again."
				}
				return "Certificate " + certName(c) + " is revoked; a revoked certificate's status can never change again."
			case fleetcert.StatusPendingTransfer:
				return "Certificate " + certName(c) + " is being transferred to another account; its status cannot change until the transfer is accepted, rejected or cancelled."
			}
			return "Certificate " + certName(c) + " is " + strings.ToLower(statusLabel(c.Status)) + " now: " + h.errorText(r, err)
		}
	}
	if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
		return "Certificate " + shortID(id) + " does not exist in this account and region; it may have been deleted."
	}
	return "Certificate " + shortID(id) + ": " + h.errorText(r, err)
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
		h.redirectFlash(w, r, backToRow(back, id), &Flash{Error: true, Message: "Certificate " + certName(c) + " is " + strings.ToLower(statusLabel(c.Status)) + " and cannot be revoked now."})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Revoke certificate", Nav: "certificates", Data: confirmData{
		Heading: "Revoke certificate " + certName(c) + "?",
		Lead:    "Devices using this certificate are refused from now on, and connected ones are disconnected.",
		Details: []string{"Certificate ID: " + id, "Current status: " + statusLabel(c.Status)},
		Warning: "A revoked certificate can never be activated again. To stop a device only for a while, deactivate its certificate instead.",
		Action:  Prefix + "certificates/" + id + "/revoke",
		Button:  "Revoke certificate",
		Danger:  true,
		Return:  back,
		Cancel:  backToRow(back, id),
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
		h.redirectFlash(w, r, backToRow(back, id), &Flash{Error: true, Message: "Certificate " + certName(c) + ": " + h.errorText(r, err)})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Delete certificate", Nav: "certificates", Data: confirmData{
		Heading: "Delete certificate " + certName(c) + "?",
		Lead:    "The certificate is removed from this account and region. Devices using it can no longer connect.",
		Details: []string{"Certificate ID: " + id, "Current status: " + statusLabel(c.Status)},
		Warning: "The record and its history are gone; the same certificate file can be registered again later.",
		Action:  Prefix + "certificates/" + id + "/delete",
		Button:  "Delete certificate",
		Danger:  true,
		Return:  returnTo(r, Prefix+"certificates"),
		Cancel:  backToRow(back, id),
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
	name := shortID(id)
	if c, err := h.Registry.DescribeCertificate(r.Context(), loginFrom(r).Scope, id); err == nil {
		name = certName(c)
	}
	if err := h.Registry.DeleteCertificate(r.Context(), loginFrom(r).Scope, id, false); err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Certificate " + name + ": " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Certificate " + name + " was deleted."})
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
