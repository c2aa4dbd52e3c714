package console

import (
	"encoding/base64"
	"encoding/pem"
	"html/template"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

var funcs = template.FuncMap{
	"short":       shortID,
	"statusLabel": func(s fleetcert.Status) string { return statusLabel(s) },
	"statusClass": func(s fleetcert.Status) string {
		return "status-" + strings.ReplaceAll(strings.ToLower(string(s)), "_", "-")
	},
	"caStatusLabel": func(s fleetcert.CAStatus) string { return statusLabel(fleetcert.Status(s)) },
	"caStatusClass": func(s fleetcert.CAStatus) string { return "status-" + strings.ToLower(string(s)) },
	"autoLabel": func(s fleetcert.AutoRegistrationStatus) string {
		if s == fleetcert.AutoRegistrationEnable {
			return "Enabled"
		}
		return "Disabled"
	},
	"modeLabel": func(m fleetcert.CertificateMode) string {
		if m == fleetcert.ModeSNIOnly {
			return "SNI only"
		}
		return "Default"
	},
	"date":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"datetime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 UTC") },
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"zero":     func(t time.Time) bool { return t.IsZero() },
	// expiry classifies a certificate's end of validity for the table.
	"expiry": func(notAfter time.Time) string {
		switch d := time.Until(notAfter); {
		case d < 0:
			return "expired"
		case d < 30*24*time.Hour:
			return "soon"
		}
		return ""
	},
	"arn":           func(c *fleetcert.Certificate) string { return c.ARN() },
	"caArn":         func(c *fleetcert.CACertificate) string { return c.ARN() },
	"plus1":         func(i int) int { return i + 1 },
	"regions":       func() []region { return Regions },
	"regionOptions": regionOptions,
	"idPrefix":      func(id string) string { return id[:min(len(id), 10)] },
	"menuArgs":      func(c certRow, ret, csrf string) menuArgs[certRow] { return menuArgs[certRow]{c, ret, csrf} },
	"caMenuArgs": func(c *fleetcert.CACertificate, ret, csrf string) menuArgs[*fleetcert.CACertificate] {
		return menuArgs[*fleetcert.CACertificate]{c, ret, csrf}
	},
	"thingPath":        thingPath,
	"policyPath":       policyPath,
	"detachPolicyPath": detachPolicyPath,
	"certTableArgs":    func(rows []certRow, ret, csrf string) certTableArgs { return certTableArgs{rows, ret, csrf} },
}

// menuArgs is what an option menu's template needs: the record, the page
// to come back to, and the session's CSRF token.
type menuArgs[T any] struct {
	C      T
	Return string
	CSRF   string
}

// certTableArgs is what the certificate table's template needs.
type certTableArgs struct {
	Rows   []certRow
	Return string
	CSRF   string
}

// dataURL is text as a base64 data: URL, for download links that need no
// second request (and, for private keys, nothing kept on the server).
func dataURL(mediaType, text string) string {
	return "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString([]byte(text))
}

// pemDER returns the bytes of the first PEM block of s, or nil.
func pemDER(s string) []byte {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil
	}
	return b.Bytes
}

// parsePages parses every template into one set: the layout's "top" and
// "bottom", the shared partials, and each page, defined under its file's
// name (see _layout.html). One set holds the layout once, where a copy of
// it per page held a copy of its parse tree per page.
func parsePages() *template.Template {
	t := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if !strings.HasPrefix(name, "_") && t.Lookup(name) == nil {
			panic("console: " + n + " does not define the template " + name)
		}
	}
	return t
}
