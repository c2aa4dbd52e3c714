package console

import (
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
	Status fleetcert.Status
	Error  string
}

type registerResultData struct {
	Outcomes   []registerOutcome
	Registered int
	Failed     int
	CA         string
}

func (h *Handler) registerPage(w http.ResponseWriter, r *http.Request) {
	h.showRegister(w, r, http.StatusOK, r.URL.Query().Get("ca"), string(fleetcert.StatusActive), "")
}

func (h *Handler) showRegister(w http.ResponseWriter, r *http.Request, status int, ca, all, msg string) {
	l := loginFrom(r)
	page1, err := h.Registry.ListCACertificates(r.Context(), l.Scope, fleetcert.ListOptions{PageSize: ptr(fleetcert.MaxPageSize)}, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := registerData{Max: MaxRegisterFiles, Error: msg}
	d.CAs = []option{{Value: "", Label: "No CA: the certificates are self-signed or signed by a CA not registered here", Selected: ca == ""}}
	for _, c := range page1.CACertificates {
		if c.Status != fleetcert.CAStatusActive {
			continue
		}
		d.CAs = append(d.CAs, option{Value: c.ID, Label: caLabel(c), Selected: c.ID == ca})
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
// stop the others, and the result page says what happened to each.
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
	switch {
	case len(files) == 0:
		h.showRegister(w, r, http.StatusBadRequest, ca, all, "Choose at least one certificate file (.pem or .crt).")
		return
	case len(files) > MaxRegisterFiles:
		h.showRegister(w, r, http.StatusBadRequest, ca, all, fmt.Sprintf(
			"You chose %d files, but at most %d certificates can be registered at a time. Nothing was registered; choose %d files or fewer and register the rest afterwards.",
			len(files), MaxRegisterFiles, MaxRegisterFiles))
		return
	}
	var caPEM string
	if ca != "" {
		c, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, ca)
		if !isCertificateID(ca) || err != nil {
			msg := "The selected CA is not registered in this account and region."
			if err != nil && fleetcert.ErrorCode(err) == fleetcert.EInternalFailure {
				msg = h.errorText(r, err)
			}
			h.showRegister(w, r, http.StatusBadRequest, "", all, msg)
			return
		}
		caPEM = c.PEM
	}
	d := registerResultData{CA: ca}
	for i, fh := range files {
		status := r.PostFormValue("status_" + strconv.Itoa(i))
		if !validRegistrationStatus(status) {
			status = all
		}
		o := registerOutcome{File: fh.Filename, Status: fleetcert.Status(status)}
		text, msg := readPEMFile(fh)
		if msg == "" {
			var c *fleetcert.Certificate
			var err error
			if caPEM != "" {
				c, err = h.Registry.RegisterCertificate(r.Context(), l.Scope, fleetcert.RegisterCertificateInput{
					CertificatePEM: text, CACertificatePEM: caPEM, Status: o.Status,
				})
			} else {
				c, err = h.Registry.RegisterCertificateWithoutCA(r.Context(), l.Scope, text, o.Status)
			}
			if err != nil {
				msg = h.errorText(r, err)
			} else {
				o.ID, o.Status = c.ID, c.Status
			}
		}
		if msg != "" {
			o.Error = msg
			d.Failed++
		} else {
			d.Registered++
		}
		d.Outcomes = append(d.Outcomes, o)
	}
	h.Logger.Info("console: registered certificates", "accountId", l.Scope.AccountID, "region", l.Scope.Region,
		"registered", d.Registered, "failed", d.Failed)
	h.render(w, r, http.StatusOK, "register-result", &page{Title: "Registration results", Nav: "certificates", Data: d})
}

// readPEMFile returns an uploaded file's text, or a message saying why it
// cannot be a certificate.
func readPEMFile(fh *multipart.FileHeader) (text, msg string) {
	if fh.Size == 0 {
		return "", "The file is empty."
	}
	if fh.Size > fleetcert.MaxCertificatePEM {
		return "", "The file is larger than 64 KB, which no single PEM certificate is; choose the certificate file itself."
	}
	f, err := fh.Open()
	if err != nil {
		return "", "The file could not be read."
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, fleetcert.MaxCertificatePEM+1))
	if err != nil {
		return "", "The file could not be read."
	}
	return string(b), ""
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

// createKeys creates a key pair and certificate and shows the private key
// this once: it is in this response only, never stored or logged.
func (h *Handler) createKeys(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	c, kp, err := h.Registry.CreateKeysAndCertificate(r.Context(), l.Scope, r.PostFormValue("activate") != "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
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
	h.render(w, r, http.StatusOK, "from-csr", &page{Title: "Create certificate from CSR", Nav: "certificates", Data: csrData{Activate: true}})
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
			h.redirectFlash(w, r, Prefix+"certificates/"+c.ID, &flash{Message: "The certificate was created from your CSR. Download it below and install it on the device with its private key."})
			return
		}
		if fleetcert.ErrorCode(err) == fleetcert.EInternalFailure {
			h.fail(w, r, err)
			return
		}
		d.Error = h.errorText(r, err)
	}
	h.render(w, r, http.StatusBadRequest, "from-csr", &page{Title: "Create certificate from CSR", Nav: "certificates", Data: d})
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
