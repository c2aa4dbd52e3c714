package console

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"html/template"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/fleetcert/fleetcert"
)

func (h *Handler) createChoice(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "create", &page{Title: "Create a certificate", Nav: "certificates"})
}

// registrationStatuses are the choices for a registered certificate.
var registrationStatuses = []option{
	{Value: string(fleetcert.StatusActive), Label: "Activate"},
	{Value: string(fleetcert.StatusInactive), Label: "Leave inactive"},
	{Value: string(fleetcert.StatusRevoked), Label: "Revoke"},
}

type registerData struct {
	CAs      []option
	Statuses []option
	Max      int
	Error    string
}

type registerOutcome struct {
	File   string
	ID     string
	Name   string // subject common name
	Status fleetcert.Status
	CA     string // the CA it was registered under, by name
	Error  string
	// Warning says the certificate's issuer is a registered CA it was not
	// registered under (inactive, or not chosen); OfferCA is that CA's id.
	Warning   string
	OfferCA   string
	OfferName string
}

type registerResultData struct {
	Outcomes   []registerOutcome
	Registered int
	Failed     int
	Warned     int
	CA         string
}

// registerForm is the register page's state after a refused POST.
type registerForm struct {
	CA, All, Error string
}

func (h *Handler) registerPage(w http.ResponseWriter, r *http.Request) {
	f := registerForm{CA: r.URL.Query().Get("ca"), All: string(fleetcert.StatusActive)}
	h.formDraft(r, "register", &f)
	status := http.StatusOK
	if f.Error != "" {
		status = http.StatusBadRequest
	}
	h.showRegister(w, r, status, f.CA, f.All, f.Error)
}

func (h *Handler) showRegister(w http.ResponseWriter, r *http.Request, status int, ca, all, msg string) {
	l := loginFrom(r)
	page1, err := h.Registry.ListCACertificates(r.Context(), l.Scope, fleetcert.ListOptions{PageSize: ptr(fleetcert.MaxPageSize)}, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := registerData{Max: MaxRegisterFiles, Error: msg}
	d.CAs = []option{{Value: "", Label: "No CA, or the CA in each file's chain: otherwise each certificate is registered on its own", Selected: ca == ""}}
	for _, c := range page1.CACertificates {
		label := caLabel(c)
		if c.Status != fleetcert.CAStatusActive {
			// Registering under an inactive CA is refused (deactivate-ca-cert.md):
			// say so before the operator tries.
			label += " — inactive: activate it to register under it"
		}
		d.CAs = append(d.CAs, option{Value: c.ID, Label: label, Selected: c.ID == ca})
	}
	for _, o := range registrationStatuses {
		o.Selected = o.Value == all
		d.Statuses = append(d.Statuses, o)
	}
	h.render(w, r, status, "register", &page{Title: "Register existing certificates", Nav: "certificates", Data: d})
}

func validRegistrationStatus(s string) bool {
	for _, o := range registrationStatuses {
		if o.Value == s {
			return true
		}
	}
	return false
}

// register registers each uploaded file on its own: one bad file does not
// stop the others. The results are kept for the session and shown at their
// own URL (post/redirect/get), so a reload does not register again.
func (h *Handler) register(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	ca := strings.ToLower(r.PostFormValue("ca"))
	all := r.PostFormValue("status_all")
	if !validRegistrationStatus(all) {
		all = string(fleetcert.StatusInactive)
	}
	var files []*multipart.FileHeader
	if r.MultipartForm != nil {
		files = r.MultipartForm.File["certificates"]
	}
	refuse := func(ca, msg string) {
		h.redirectResult(w, r, "register", registerForm{CA: ca, All: all, Error: msg}, Prefix+"certificates/register")
	}
	switch {
	case len(files) == 0:
		refuse(ca, "Choose at least one certificate file (.pem, .crt, .cer or .der).")
		return
	case len(files) > MaxRegisterFiles:
		refuse(ca, fmt.Sprintf(
			"You chose %d files, but at most %d certificates can be registered at a time. Nothing was registered; choose %d files or fewer and register the rest afterwards.",
			len(files), MaxRegisterFiles, MaxRegisterFiles))
		return
	}
	var chosen *fleetcert.CACertificate
	if ca != "" {
		c, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, ca)
		if !isCertificateID(ca) || err != nil {
			msg := "The selected CA is not registered in this account and region."
			if err != nil && fleetcert.ErrorCode(err) == fleetcert.EInternalFailure {
				msg = h.errorText(r, err)
			}
			refuse("", msg)
			return
		}
		chosen = c
	}
	d := registerResultData{CA: ca}
	for i, fh := range files {
		status := r.PostFormValue("status_" + strconv.Itoa(i))
		if !validRegistrationStatus(status) {
			status = all
		}
		o := h.registerFile(r, fh, chosen, fleetcert.Status(status))
		switch {
		case o.Error != "":
			d.Failed++
		default:
			d.Registered++
		}
		if o.Warning != "" {
			d.Warned++
		}
		d.Outcomes = append(d.Outcomes, o)
	}
	h.Logger.Info("console: registered certificates", "accountId", l.Scope.AccountID, "region", l.Scope.Region,
		"registered", d.Registered, "failed", d.Failed)
	id, err := h.keepResult(r, "registered", d, resultTTL)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"certificates/register/results/"+id, http.StatusSeeOther)
}

// registerFile registers one uploaded file: its first certificate, under
// the chosen CA, else under the registered CA found in the file's chain,
// else without a CA — warning when the certificate's issuer is a
// registered CA it is not registered under.
func (h *Handler) registerFile(r *http.Request, fh *multipart.FileHeader, chosen *fleetcert.CACertificate, status fleetcert.Status) registerOutcome {
	l := loginFrom(r)
	o := registerOutcome{File: fh.Filename, Status: status}
	leaf, chain, msg := readCertificateFile(fh)
	if msg != "" {
		o.Error = msg
		return o
	}
	under := chosen
	if under == nil {
		// A device certificate followed by its chain: the first chain
		// certificate registered here as an active CA is the one to use.
		for _, c := range chain {
			ca, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, fleetcert.CertificateID(c.Raw))
			if err == nil && ca.Status == fleetcert.CAStatusActive {
				under = ca
				break
			}
		}
	}
	var c *fleetcert.Certificate
	var err error
	if under != nil {
		c, err = h.Registry.RegisterCertificate(r.Context(), l.Scope, fleetcert.RegisterCertificateInput{
			CertificatePEM: leaf, CACertificatePEM: under.PEM, Status: status,
		})
		o.CA = caDisplayName(under)
	} else {
		c, err = h.Registry.RegisterCertificateWithoutCA(r.Context(), l.Scope, leaf, status)
	}
	if err != nil {
		o.Error = h.errorText(r, err)
		o.CA = ""
		return o
	}
	o.ID, o.Status, o.Name = c.ID, c.Status, c.CommonName
	if c.CACertificateID == "" {
		issuer, err := h.Registry.FindRegisteredIssuer(r.Context(), l.Scope, leaf)
		if err != nil {
			h.Logger.Error("console: find issuer", "err", err)
		} else if issuer != nil {
			o.OfferCA, o.OfferName = issuer.ID, caDisplayName(issuer)
			o.Warning = "Its issuer is the registered CA " + o.OfferName + " (" + strings.ToLower(statusLabel(fleetcert.Status(issuer.Status))) +
				"), but it was registered without a CA. It still appears on the CA's page and its bulk actions include it."
		}
	}
	return o
}

func (h *Handler) registerResults(w http.ResponseWriter, r *http.Request) {
	var d registerResultData
	ok, err := h.loadResult(r, "registered", r.PathValue("rid"), &d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "Results expired",
			"These registration results are no longer kept (results are kept for 30 minutes, for the session that registered). The certificates registered are in the certificate list.")
		return
	}
	h.render(w, r, http.StatusOK, "register-result", &page{Title: "Registration results", Nav: "certificates", Data: d})
}

// readCertificateFile returns an uploaded file's first certificate as PEM
// and the certificates after it (its chain), or a message saying why it
// cannot be read. It takes PEM (one or more CERTIFICATE blocks, a UTF-8
// byte order mark ignored) and DER (.der, .cer, .crt as Windows writes
// them).
func readCertificateFile(fh *multipart.FileHeader) (leaf string, chain []*x509.Certificate, msg string) {
	if fh.Size == 0 {
		return "", nil, "The file is empty."
	}
	if fh.Size > fleetcert.MaxCertificatePEM {
		return "", nil, "The file is larger than 64 KB, which no certificate with its chain is; choose the certificate file itself."
	}
	f, err := fh.Open()
	if err != nil {
		return "", nil, "The file could not be read."
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, fleetcert.MaxCertificatePEM+1))
	if err != nil {
		return "", nil, "The file could not be read."
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var certs [][]byte
	if t := bytes.TrimSpace(b); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		for rest := t; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			switch block.Type {
			case "CERTIFICATE":
				certs = append(certs, block.Bytes)
			case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
				return "", nil, "The file holds a private key. Register only the certificate; keep the private key on the device."
			}
		}
		if len(certs) == 0 {
			return "", nil, "The file holds no PEM certificate (-----BEGIN CERTIFICATE-----)."
		}
	} else {
		parsed, err := x509.ParseCertificates(b)
		if err != nil || len(parsed) == 0 {
			return "", nil, "The file is neither a PEM certificate nor a DER one."
		}
		for _, c := range parsed {
			certs = append(certs, c.Raw)
		}
	}
	for _, der := range certs[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", nil, "A certificate of the chain after the device certificate could not be parsed."
		}
		chain = append(chain, c)
	}
	return fleetcert.EncodeCertificatePEM(certs[0]), chain, ""
}

type keysData struct {
	C             *fleetcert.Certificate
	Keys          *fleetcert.KeyPair
	CertURL       template.URL
	PublicKeyURL  template.URL
	PrivateKeyURL template.URL
}

func (h *Handler) createKeysPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "create-keys", &page{Title: "Create certificate", Nav: "certificates"})
}

// keysResult is what the keys page shows once.
type keysResult struct {
	ID         string
	PublicKey  string
	PrivateKey string
}

// createKeys creates a key pair and certificate and redirects to the page
// that shows the private key once: kept for that one GET (at most
// keyResultTTL), then deleted, never logged.
func (h *Handler) createKeys(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	c, kp, err := h.Registry.CreateKeysAndCertificate(r.Context(), l.Scope, r.PostFormValue("activate") != "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := h.keepResult(r, "keys", keysResult{ID: c.ID, PublicKey: kp.PublicKey, PrivateKey: kp.PrivateKey}, keyResultTTL)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"certificates/create-keys/result/"+id, http.StatusSeeOther)
}

func (h *Handler) createdKeys(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	var k keysResult
	ok, err := h.loadResult(r, "keys", r.PathValue("rid"), &k)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "Private key no longer shown",
			"A private key is shown once, on the page right after it was created, and not kept: it cannot be shown again. If it was not saved, deactivate that certificate and create a new one.")
		return
	}
	if err := h.Results.DeleteResult(r.Context(), l.Token, "keys/"+r.PathValue("rid")); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.Registry.DescribeCertificate(r.Context(), l.Scope, k.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	kp := &fleetcert.KeyPair{PublicKey: k.PublicKey, PrivateKey: k.PrivateKey}
	d := keysData{
		C: c, Keys: kp,
		CertURL:       template.URL(dataURL("application/x-pem-file", c.PEM)),
		PublicKeyURL:  template.URL(dataURL("application/x-pem-file", kp.PublicKey)),
		PrivateKeyURL: template.URL(dataURL("application/x-pem-file", kp.PrivateKey)),
	}
	h.render(w, r, http.StatusOK, "keys", &page{Title: "Certificate created", Nav: "certificates", Data: d})
}

type csrData struct {
	CSR      string
	Activate bool
	Error    string
}

func (h *Handler) fromCSRPage(w http.ResponseWriter, r *http.Request) {
	d := csrData{Activate: true}
	status := http.StatusOK
	if h.formDraft(r, "csr", &d) && d.Error != "" {
		status = http.StatusBadRequest
	}
	h.render(w, r, status, "from-csr", &page{Title: "Create certificate from CSR", Nav: "certificates", Data: d})
}

func (h *Handler) fromCSR(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	d := csrData{CSR: r.PostFormValue("csr"), Activate: r.PostFormValue("activate") != ""}
	if text, ok, msg := uploadedText(r, "csr_file", 4096); msg != "" {
		d.Error = msg
	} else if ok {
		d.CSR = text
	}
	if d.Error == "" && strings.TrimSpace(d.CSR) == "" {
		d.Error = "Paste a certificate signing request (-----BEGIN CERTIFICATE REQUEST-----) or choose a .csr file."
	}
	if d.Error == "" {
		c, err := h.Registry.CreateCertificateFromCSR(r.Context(), l.Scope, d.CSR, d.Activate)
		if err == nil {
			h.redirectFlash(w, r, Prefix+"certificates/"+c.ID, &Flash{Message: "Certificate " + certName(c) + " was created from your CSR. Download it below and install it on the device with its private key."})
			return
		}
		if fleetcert.ErrorCode(err) == fleetcert.EInternalFailure {
			h.fail(w, r, err)
			return
		}
		d.Error = h.errorText(r, err)
	}
	h.redirectResult(w, r, "csr", d, Prefix+"certificates/from-csr")
}

// uploadedText returns the text of the optional file field name of a
// multipart form: ok is false when no file was chosen; msg says why a
// chosen file is refused.
func uploadedText(r *http.Request, name string, max int64) (text string, ok bool, msg string) {
	if r.MultipartForm == nil || len(r.MultipartForm.File[name]) == 0 {
		return "", false, ""
	}
	fh := r.MultipartForm.File[name][0]
	if fh.Size == 0 {
		return "", false, ""
	}
	if fh.Size > max {
		return "", true, fmt.Sprintf("The file %s is larger than %d KB, too large for what this field takes.", fh.Filename, max/1024)
	}
	f, err := fh.Open()
	if err != nil {
		return "", true, "The file " + fh.Filename + " could not be read."
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return "", true, "The file " + fh.Filename + " could not be read."
	}
	return string(b), true, ""
}
