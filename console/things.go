package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// Things: the AWS console's Manage → All devices → Things. A thing's
// pages live under /console/things/{name}; the create form is at
// /console/create/thing, since "create" is a valid thing name.

// thingPath is the console page of thing name, its name path-escaped.
func thingPath(name string) string { return Prefix + "things/" + url.PathEscape(name) }

// tokenPager builds the links of a listing paged by opaque forward
// tokens (the registry's nextToken, a policy marker): "after" is the
// token of the page shown and "back" the tokens of the pages before it
// (the first page's, empty, left out), so that Previous needs no read.
func tokenPager(q url.Values, next string) pager {
	after := q.Get("after")
	var back []string
	if b := q.Get("back"); b != "" {
		back = strings.Split(b, ".")
	}
	link := func(after string, back []string) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "after" && k != "back" {
				v[k] = vs
			}
		}
		if after != "" {
			v.Set("after", after)
		}
		if len(back) > 0 {
			v.Set("back", strings.Join(back, "."))
		}
		return "?" + v.Encode()
	}
	var p pager
	if after != "" {
		p.First = link("", nil)
		if len(back) == 0 {
			p.Prev = p.First
		} else {
			p.Prev = link(back[len(back)-1], back[:len(back)-1])
		}
	}
	if next != "" {
		nb := back
		if after != "" {
			nb = append(slices.Clip(back), after)
		}
		p.Next = link(next, nb)
	}
	return p
}

// attrRow is one key/value row of an attributes form.
type attrRow struct{ Key, Value string }

// attrRows are the rows of an attributes form: attrs sorted by key, then
// blank rows to add more.
func attrRows(attrs map[string]string, blank int) []attrRow {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]attrRow, 0, len(keys)+blank)
	for _, k := range keys {
		out = append(out, attrRow{k, attrs[k]})
	}
	for range blank {
		out = append(out, attrRow{})
	}
	return out
}

// formAttributes reads the attribute rows of a form (attr_key, attr_value
// in order). A row without a key is ignored; a value without a key is an
// error, and so is a key given twice.
func formAttributes(r *http.Request) (map[string]string, []attrRow, string) {
	keys, values := r.PostForm["attr_key"], r.PostForm["attr_value"]
	attrs := map[string]string{}
	seen := map[string]bool{}
	var rows []attrRow
	msg := ""
	for i, k := range keys {
		k = strings.TrimSpace(k)
		v := ""
		if i < len(values) {
			v = strings.TrimSpace(values[i])
		}
		rows = append(rows, attrRow{k, v})
		switch {
		case k == "" && v != "":
			msg = "The value " + strconv.Quote(v) + " has no attribute name: give it one, or clear the value."
		case k == "":
		case seen[k]:
			msg = "The attribute " + k + " is given twice; keep one row for it."
		case v == "":
			msg = "The attribute " + k + " has no value: give it one, or clear its name to remove it."
		default:
			attrs[k] = v
		}
		seen[k] = true
	}
	return attrs, rows, msg
}

type thingRow struct {
	Name, TypeName string
	Attributes     []attrRow
	Version        int64
}

type thingListData struct {
	Rows   []thingRow
	Search string
	Error  string
	Pager  pager
	Return string
}

func (h *Handler) things(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	q := r.URL.Query()
	d := thingListData{Search: strings.TrimSpace(q.Get("q")), Return: r.URL.RequestURI()}
	if len(d.Search) > 128 {
		d.Error = "Search by the start of a thing name: up to 128 characters."
	}
	if d.Error == "" {
		size := pageSizes[0]
		page, err := h.Registry.ListThings(r.Context(), l.Scope, fleetcert.ThingFilter{NamePrefix: d.Search},
			fleetcert.RegistryListOptions{NextToken: q.Get("after"), MaxResults: &size})
		switch fleetcert.ErrorCode(err) {
		case "":
			for _, t := range page.Things {
				d.Rows = append(d.Rows, thingRow{Name: t.Name, TypeName: t.TypeName, Attributes: attrRows(t.Attributes, 0), Version: t.Version})
			}
			d.Pager = tokenPager(q, page.NextToken)
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
	h.render(w, r, status, "things", &page{Title: "Things", Nav: "things", Data: d})
}

// thingForm is the create form, kept to show again when refused.
type thingForm struct {
	Name, TypeName string
	Attributes     []attrRow
	Error          string
}

func (h *Handler) createThingPage(w http.ResponseWriter, r *http.Request) {
	d := thingForm{Attributes: attrRows(nil, fleetcert.MaxThingAttributes)}
	status := http.StatusOK
	if h.formDraft(r, "thing", &d) && d.Error != "" {
		status = http.StatusBadRequest
		for len(d.Attributes) < fleetcert.MaxThingAttributes {
			d.Attributes = append(d.Attributes, attrRow{})
		}
	}
	h.render(w, r, status, "create-thing", &page{Title: "Create thing", Nav: "things", Data: d})
}

func (h *Handler) createThing(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	attrs, rows, msg := formAttributes(r)
	d := thingForm{Name: strings.TrimSpace(r.PostFormValue("name")), TypeName: strings.TrimSpace(r.PostFormValue("type")), Attributes: rows, Error: msg}
	if d.Error == "" && d.Name == "" {
		d.Error = "Give the thing a name: letters, digits, colons, underscores and hyphens, up to 128 characters."
	}
	if d.Error == "" {
		in := fleetcert.CreateThingInput{Name: d.Name, TypeName: d.TypeName}
		if len(attrs) > 0 {
			in.AttributePayload = &fleetcert.AttributePayload{Attributes: attrs}
		}
		t, err := h.Registry.CreateThing(r.Context(), l.Scope, in)
		if err == nil {
			h.redirectFlash(w, r, thingPath(t.Name), &Flash{Message: "Thing " + t.Name + " was created."})
			return
		}
		if code := fleetcert.ErrorCode(err); code == fleetcert.EInternalFailure || code == fleetcert.EServiceUnavailable {
			h.fail(w, r, err)
			return
		}
		d.Error = h.errorText(r, err)
		if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound && d.TypeName != "" {
			d.Error = "There is no thing type " + d.TypeName + " in this account and Region: leave the type empty, or create the type first."
		}
	}
	h.redirectResult(w, r, "thing", d, Prefix+"create/thing")
}

// thingName is the {name} of the URL, or "" (and a 404 page) when it
// cannot be a thing name.
func (h *Handler) thingName(w http.ResponseWriter, r *http.Request) string {
	name := r.PathValue("name")
	if fleetcert.CheckName("thingName", name) != nil {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "The address does not name a thing: a thing name is 1 to 128 letters, digits, colons, underscores and hyphens.")
		return ""
	}
	return name
}

// principalRow is a certificate attached to a thing.
type principalRow struct {
	ARN, CertificateID string
	Exclusive          bool
}

type thingDetailData struct {
	T          *fleetcert.Thing
	ARN        string
	Attributes []attrRow
	MaxAttrs   int
	Principals []principalRow
	Pager      pager
	Return     string
}

// certificateIDOf is the id of certificate ARN arn of scope, or "".
func certificateIDOf(scope fleetcert.Scope, arn string) string {
	id, ok := strings.CutPrefix(arn, "arn:aws:iot:"+scope.Region+":"+scope.AccountID+":cert/")
	if !ok {
		return ""
	}
	return id
}

func (h *Handler) thing(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	t, err := h.Registry.DescribeThing(r.Context(), l.Scope, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	size := pageSizes[0]
	pp, err := h.Registry.ListThingPrincipals(r.Context(), l.Scope, name, "", fleetcert.RegistryListOptions{NextToken: q.Get("after"), MaxResults: &size})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	max := fleetcert.MaxThingAttributes
	if t.TypeName != "" {
		max = fleetcert.MaxThingAttributesWithType
	}
	d := thingDetailData{T: t, ARN: t.ARN(), MaxAttrs: max, Pager: tokenPager(q, pp.NextToken), Return: r.URL.RequestURI()}
	d.Attributes = attrRows(t.Attributes, min(3, max-len(t.Attributes)))
	for _, p := range pp.Principals {
		d.Principals = append(d.Principals, principalRow{ARN: p.Principal, CertificateID: certificateIDOf(l.Scope, p.Principal), Exclusive: p.Type == fleetcert.ExclusiveThing})
	}
	h.render(w, r, http.StatusOK, "thing", &page{Title: "Thing " + t.Name, Nav: "things", Data: d})
}

func (h *Handler) updateThingAttributes(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	back := thingPath(name)
	attrs, _, msg := formAttributes(r)
	if msg != "" {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Thing " + name + ": " + msg + " Nothing was saved."})
		return
	}
	in := fleetcert.UpdateThingInput{Name: name, AttributePayload: &fleetcert.AttributePayload{Attributes: attrs}}
	if v, err := strconv.ParseInt(r.PostFormValue("expected_version"), 10, 64); err == nil {
		in.ExpectedVersion = &v
	}
	err := h.Registry.UpdateThing(r.Context(), loginFrom(r).Scope, in)
	switch fleetcert.ErrorCode(err) {
	case "":
		h.redirectFlash(w, r, back, &Flash{Message: "The attributes of thing " + name + " were saved."})
	case fleetcert.EVersionConflict:
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Thing " + name + " was changed by someone else after you opened this page, so your edit was not saved. " +
			"Its attributes as they are now are shown below: make your change again."})
	case fleetcert.EResourceNotFound:
		h.redirectFlash(w, r, Prefix+"things", &Flash{Error: true, Message: "Thing " + name + " does not exist in this account and Region; it may have been deleted."})
	default:
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Thing " + name + ": " + h.errorText(r, err) + " Nothing was saved."})
	}
}

// certificatePrincipal reads a certificate id (or its ARN) from a form
// field and returns the certificate's ARN in scope, or a message.
func certificatePrincipal(scope fleetcert.Scope, v string) (string, string) {
	v = strings.ToLower(strings.TrimSpace(v))
	if id := certificateIDOf(scope, v); id != "" {
		v = id
	}
	if !isCertificateID(v) {
		return "", "Give the certificate's id: 64 hex digits, as on its page."
	}
	return (&fleetcert.Certificate{Scope: scope, ID: v}).ARN(), ""
}

func (h *Handler) attachThingPrincipal(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	back := returnTo(r, thingPath(name))
	arn, msg := certificatePrincipal(l.Scope, r.PostFormValue("certificate"))
	if msg != "" {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: msg})
		return
	}
	typ := fleetcert.NonExclusiveThing
	if r.PostFormValue("exclusive") != "" {
		typ = fleetcert.ExclusiveThing
	}
	h.attachCertificateToThing(w, r, name, arn, typ, back)
}

// attachCertificateToThing attaches certificate arn to thing name and
// redirects to back saying what happened.
func (h *Handler) attachCertificateToThing(w http.ResponseWriter, r *http.Request, name, arn string, typ fleetcert.ThingPrincipalType, back string) {
	l := loginFrom(r)
	id := certificateIDOf(l.Scope, arn)
	err := h.Registry.AttachThingPrincipal(r.Context(), l.Scope, name, arn, typ)
	if err != nil {
		msg := h.errorText(r, err)
		if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
			msg = "Certificate " + shortID(id) + " or thing " + name + " does not exist in this account and Region: " + msg
		}
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Certificate " + shortID(id) + " was not attached to thing " + name + ". " + msg})
		return
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Certificate " + shortID(id) + " is attached to thing " + name + "."})
}

// principalOf is the certificate {id} of the URL as an ARN of scope, or ""
// (and a 404 page).
func (h *Handler) principalOf(w http.ResponseWriter, r *http.Request, scope fleetcert.Scope) (string, string) {
	id := h.pathID(w, r)
	if id == "" {
		return "", ""
	}
	return id, (&fleetcert.Certificate{Scope: scope, ID: id}).ARN()
}

func (h *Handler) confirmDetachThingPrincipal(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	id, _ := h.principalOf(w, r, l.Scope)
	if id == "" {
		return
	}
	if _, err := h.Registry.DescribeThing(r.Context(), l.Scope, name); err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, thingPath(name))
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Detach certificate", Nav: "things", Data: confirmData{
		Heading: "Detach certificate " + shortID(id) + " from thing " + name + "?",
		Lead:    "Policies that name the thing (such as ${iot:Connection.Thing.ThingName}) stop matching for devices using this certificate, from their next packet.",
		Details: []string{"Thing: " + name, "Certificate ID: " + id},
		Action:  thingPath(name) + "/principals/" + id + "/detach",
		Button:  "Detach certificate",
		Danger:  true,
		Return:  back,
		Cancel:  back,
	}})
}

func (h *Handler) detachThingPrincipal(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	id, arn := h.principalOf(w, r, l.Scope)
	if id == "" {
		return
	}
	back := returnTo(r, thingPath(name))
	if err := h.Registry.DetachThingPrincipal(r.Context(), l.Scope, name, arn); err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Certificate " + shortID(id) + " was not detached from thing " + name + ": " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Certificate " + shortID(id) + " was detached from thing " + name + "."})
}

// thingBusyText says why thing name cannot be deleted now.
func thingBusyText(name string) string {
	return "Thing " + name + " cannot be deleted while certificates are attached to it, as on AWS IoT: detach them first (Certificates, below)."
}

func (h *Handler) confirmDeleteThing(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	t, err := h.Registry.DescribeThing(r.Context(), l.Scope, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	one := 1
	pp, err := h.Registry.ListThingPrincipals(r.Context(), l.Scope, name, "", fleetcert.RegistryListOptions{MaxResults: &one})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(pp.Principals) > 0 {
		h.redirectFlash(w, r, thingPath(name), &Flash{Error: true, Message: thingBusyText(name)})
		return
	}
	back := returnTo(r, thingPath(name))
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Delete thing", Nav: "things", Data: confirmData{
		Heading: "Delete thing " + name + "?",
		Lead:    "The thing, its attributes and its thing group memberships are removed from this account and Region.",
		Details: []string{"Thing: " + name, "Thing ARN: " + t.ARN()},
		Warning: "A thing of the same name can be created again, but with a new id.",
		Action:  thingPath(name) + "/delete",
		Button:  "Delete thing",
		Danger:  true,
		Return:  Prefix + "things",
		Cancel:  back,
		Fields:  map[string]string{"expected_version": strconv.FormatInt(t.Version, 10)},
	}})
}

func (h *Handler) deleteThing(w http.ResponseWriter, r *http.Request) {
	name := h.thingName(w, r)
	if name == "" {
		return
	}
	var expected *int64
	if v, err := strconv.ParseInt(r.PostFormValue("expected_version"), 10, 64); err == nil {
		expected = &v
	}
	err := h.Registry.DeleteThing(r.Context(), loginFrom(r).Scope, name, expected)
	switch fleetcert.ErrorCode(err) {
	case "":
		h.redirectFlash(w, r, Prefix+"things", &Flash{Message: "Thing " + name + " was deleted."})
	case fleetcert.EInvalidRequest:
		// The one refusal of a valid name: principals attached.
		h.redirectFlash(w, r, thingPath(name), &Flash{Error: true, Message: thingBusyText(name)})
	case fleetcert.EVersionConflict:
		h.redirectFlash(w, r, thingPath(name), &Flash{Error: true, Message: "Thing " + name + " was changed by someone else after you asked to delete it, so it was not deleted. Review it below and delete it again if you still mean to."})
	default:
		h.redirectFlash(w, r, thingPath(name), &Flash{Error: true, Message: "Thing " + name + " was not deleted: " + h.errorText(r, err)})
	}
}
