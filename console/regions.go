package console

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
)

// region is an AWS Region as the sign-in list and the header's switcher
// show it.
type region struct{ Code, Name string }

// Regions are AWS's Regions (the AWS General Reference, "Regions and
// endpoints"), in its order. Records are kept per account and Region as on
// AWS IoT, so choosing from this list rather than typing a name keeps a
// typo from signing into an empty Region.
var Regions = []region{
	{"us-east-1", "US East (N. Virginia)"}, {"us-east-2", "US East (Ohio)"},
	{"us-west-1", "US West (N. California)"}, {"us-west-2", "US West (Oregon)"},
	{"af-south-1", "Africa (Cape Town)"},
	{"ap-east-1", "Asia Pacific (Hong Kong)"}, {"ap-south-2", "Asia Pacific (Hyderabad)"},
	{"ap-southeast-3", "Asia Pacific (Jakarta)"}, {"ap-southeast-5", "Asia Pacific (Malaysia)"},
	{"ap-southeast-4", "Asia Pacific (Melbourne)"}, {"ap-south-1", "Asia Pacific (Mumbai)"},
	{"ap-northeast-3", "Asia Pacific (Osaka)"}, {"ap-northeast-2", "Asia Pacific (Seoul)"},
	{"ap-southeast-1", "Asia Pacific (Singapore)"}, {"ap-southeast-2", "Asia Pacific (Sydney)"},
	{"ap-southeast-7", "Asia Pacific (Thailand)"}, {"ap-northeast-1", "Asia Pacific (Tokyo)"},
	{"ca-central-1", "Canada (Central)"}, {"ca-west-1", "Canada West (Calgary)"},
	{"eu-central-1", "Europe (Frankfurt)"}, {"eu-west-1", "Europe (Ireland)"},
	{"eu-west-2", "Europe (London)"}, {"eu-south-1", "Europe (Milan)"},
	{"eu-west-3", "Europe (Paris)"}, {"eu-south-2", "Europe (Spain)"},
	{"eu-north-1", "Europe (Stockholm)"}, {"eu-central-2", "Europe (Zurich)"},
	{"il-central-1", "Israel (Tel Aviv)"}, {"mx-central-1", "Mexico (Central)"},
	{"me-south-1", "Middle East (Bahrain)"}, {"me-central-1", "Middle East (UAE)"},
	{"sa-east-1", "South America (São Paulo)"},
	{"us-gov-east-1", "AWS GovCloud (US-East)"}, {"us-gov-west-1", "AWS GovCloud (US-West)"},
	{"cn-north-1", "China (Beijing)"}, {"cn-northwest-1", "China (Ningxia)"},
}

// knownRegion reports whether code is in Regions.
func knownRegion(code string) bool {
	return slices.ContainsFunc(Regions, func(r region) bool { return r.Code == code })
}

// switchRegion moves the session to another Region (the header's list).
func (h *Handler) switchRegion(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	to := r.PostFormValue("region")
	if !knownRegion(to) {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose a Region from the list in the header.")
		return
	}
	if err := h.Logins.SetRegion(r.Context(), l.Token, to); err != nil {
		h.fail(w, r, err)
		return
	}
	h.Logger.Info("console: switched region", "accountId", l.Scope.AccountID, "from", l.Scope.Region, "to", to)
	// The records of the old Region do not exist in the new one: go to a
	// list rather than back to a record.
	h.redirectFlash(w, r, Prefix+"certificates", &Flash{Message: "You are now in Region " + to + "; the records shown are those of this Region."})
}

// regionOptionsTemplate is the header's list of Regions, current one
// selected.
var regionOptionsTemplate = template.Must(template.New("").Parse(
	`{{$cur := .Cur}}{{range .Regions}}<option value="{{.Code}}"{{if eq .Code $cur}} selected{{end}}>{{.Code}}</option>{{end}}`))

// regionOptionsHTML holds the header's Region options for each current
// Region, rendered once: ranging over every Region on each page was most
// of a small page's rendering time.
var regionOptionsHTML = func() map[string]template.HTML {
	m := make(map[string]template.HTML, len(Regions))
	for _, r := range Regions {
		m[r.Code] = renderRegionOptions(r.Code)
	}
	return m
}()

// regionOptions returns the header's Region options with cur selected.
func regionOptions(cur string) template.HTML {
	if h, ok := regionOptionsHTML[cur]; ok {
		return h
	}
	return renderRegionOptions(cur)
}

func renderRegionOptions(cur string) template.HTML {
	var b bytes.Buffer
	if err := regionOptionsTemplate.Execute(&b, struct {
		Cur     string
		Regions []region
	}{cur, Regions}); err != nil {
		panic(err) // the template and its data are fixed
	}
	return template.HTML(b.String()) // html/template escaped it
}
