package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// Policies: the AWS console's Security → Policies. A policy's pages live
// under /console/policies/{name}; the create form is at
// /console/create/policy, since "create" is a valid policy name.

// policyPath is the console page of policy name, its name path-escaped.
func policyPath(name string) string { return Prefix + "policies/" + url.PathEscape(name) }

type policyListData struct {
	Names  []string
	Pager  pager
	Return string
}

func (h *Handler) policies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := pageSizes[0]
	list, err := h.Registry.ListPolicies(r.Context(), loginFrom(r).Scope, fleetcert.ListOptions{PageSize: &size, Marker: q.Get("after")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := policyListData{Pager: tokenPager(q, list.NextMarker), Return: r.URL.RequestURI()}
	for _, p := range list.Policies {
		d.Names = append(d.Names, p.Name)
	}
	h.render(w, r, http.StatusOK, "policies", &page{Title: "Policies", Nav: "policies", Data: d})
}

// examplePolicy is the document the create form starts with: AWS's
// example of a device that connects as its thing and uses its own topics
// (https://docs.aws.amazon.com/iot/latest/developerguide/example-iot-policies.html).
const examplePolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "iot:Connect",
      "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"
    },
    {
      "Effect": "Allow",
      "Action": ["iot:Publish", "iot:Receive"],
      "Resource": "arn:aws:iot:*:*:topic/things/${iot:Connection.Thing.ThingName}/*"
    },
    {
      "Effect": "Allow",
      "Action": "iot:Subscribe",
      "Resource": "arn:aws:iot:*:*:topicfilter/things/${iot:Connection.Thing.ThingName}/*"
    }
  ]
}`

// policyForm is the create form, kept to show again when refused.
type policyForm struct {
	Name, Document, Error string
}

func (h *Handler) createPolicyPage(w http.ResponseWriter, r *http.Request) {
	d := policyForm{Document: examplePolicy}
	status := http.StatusOK
	if h.formDraft(r, "policy", &d) && d.Error != "" {
		status = http.StatusBadRequest
	}
	h.render(w, r, status, "create-policy", &page{Title: "Create policy", Nav: "policies", Data: d})
}

func (h *Handler) createPolicy(w http.ResponseWriter, r *http.Request) {
	d := policyForm{Name: strings.TrimSpace(r.PostFormValue("name")), Document: r.PostFormValue("document")}
	if d.Name == "" {
		d.Error = "Give the policy a name: letters, digits and _ + = , . @ -, up to 128 characters."
	} else {
		p, err := h.Registry.CreatePolicy(r.Context(), loginFrom(r).Scope, d.Name, d.Document, nil)
		if err == nil {
			h.redirectFlash(w, r, policyPath(p.Name), &Flash{Message: "Policy " + p.Name + " was created."})
			return
		}
		if code := fleetcert.ErrorCode(err); code == fleetcert.EInternalFailure || code == fleetcert.EServiceUnavailable {
			h.fail(w, r, err)
			return
		}
		d.Error = h.policyErrorText(r, err)
	}
	h.redirectResult(w, r, "policy", d, Prefix+"create/policy")
}

// policyErrorText is err in words, with AWS's message for a malformed
// document kept as AWS words it.
func (h *Handler) policyErrorText(r *http.Request, err error) string {
	if fleetcert.ErrorCode(err) == fleetcert.EMalformedPolicy {
		return "The policy document was refused: " + h.errorText(r, err)
	}
	return h.errorText(r, err)
}

// policyName is the {name} of the URL, or "" (and a 404 page) when it
// cannot be a policy name.
func (h *Handler) policyName(w http.ResponseWriter, r *http.Request) string {
	name := r.PathValue("name")
	if fleetcert.CheckPolicyName("policyName", name) != nil {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "The address does not name a policy: a policy name is 1 to 128 letters, digits and _ + = , . @ -.")
		return ""
	}
	return name
}

// policyTarget is what a policy is attached to, for its page.
type policyTarget struct {
	ARN, CertificateID, Group string
}

type policyDetailData struct {
	P        *fleetcert.Policy
	ARN      string
	Versions []fleetcert.PolicyVersion // newest first
	Shown    *fleetcert.PolicyVersion
	JSON     []jsonPart
	Draft    string // the new version form's document
	Full     bool   // MaxPolicyVersions versions: no new one until one is deleted
	Max      int
	Targets  []policyTarget
	Pager    pager
	Return   string
}

func (h *Handler) policy(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	p, err := h.Registry.GetPolicy(r.Context(), l.Scope, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	d := policyDetailData{P: p, ARN: p.ARN(), Shown: p.DefaultVersion(), Full: len(p.Versions) >= fleetcert.MaxPolicyVersions,
		Max: fleetcert.MaxPolicyVersions, Return: r.URL.RequestURI()}
	for i := len(p.Versions) - 1; i >= 0; i-- {
		d.Versions = append(d.Versions, p.Versions[i])
		if v := q.Get("version"); v != "" && p.Versions[i].ID == v {
			d.Shown = &p.Versions[i]
		}
	}
	if v := q.Get("version"); v != "" && d.Shown.ID != v {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "Policy "+name+" has no version "+v+"; it may have been deleted.")
		return
	}
	d.JSON = highlightJSON(d.Shown.Document)
	d.Draft = d.Shown.Document
	size := pageSizes[0]
	tp, err := h.Registry.ListTargetsForPolicy(r.Context(), l.Scope, name, fleetcert.ListOptions{PageSize: &size, Marker: q.Get("after")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Pager = tokenPager(q, tp.NextMarker)
	groupPrefix := "arn:aws:iot:" + l.Scope.Region + ":" + l.Scope.AccountID + ":thinggroup/"
	for _, t := range tp.Targets {
		pt := policyTarget{ARN: t, CertificateID: certificateIDOf(l.Scope, t)}
		if g, ok := strings.CutPrefix(t, groupPrefix); ok {
			pt.Group = g
		}
		d.Targets = append(d.Targets, pt)
	}
	h.render(w, r, http.StatusOK, "policy", &page{Title: "Policy " + name, Nav: "policies", Data: d})
}

func (h *Handler) createPolicyVersion(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	back := policyPath(name)
	_, v, err := h.Registry.CreatePolicyVersion(r.Context(), loginFrom(r).Scope, name, r.PostFormValue("document"), r.PostFormValue("default") != "")
	if err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "No new version of policy " + name + " was created. " + h.policyErrorText(r, err)})
		return
	}
	msg := "Version " + v.ID + " of policy " + name + " was created."
	if v.IsDefaultVersion {
		msg = "Version " + v.ID + " of policy " + name + " was created and is now the default: it applies to devices from their next packet."
	}
	h.redirectFlash(w, r, back+"?version="+url.QueryEscape(v.ID), &Flash{Message: msg})
}

func (h *Handler) setDefaultPolicyVersion(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	id := r.PathValue("version")
	back := policyPath(name) + "?version=" + url.QueryEscape(id)
	if err := h.Registry.SetDefaultPolicyVersion(r.Context(), loginFrom(r).Scope, name, id); err != nil {
		h.redirectFlash(w, r, policyPath(name), &Flash{Error: true, Message: "Policy " + name + ": " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Version " + id + " is now the default version of policy " + name + ": it applies to devices from their next packet."})
}

func (h *Handler) confirmDeletePolicyVersion(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	id := r.PathValue("version")
	_, v, err := h.Registry.GetPolicyVersion(r.Context(), loginFrom(r).Scope, name, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if v.IsDefaultVersion {
		h.redirectFlash(w, r, policyPath(name), &Flash{Error: true, Message: "Version " + id + " is the default version of policy " + name + " and cannot be deleted: make another version the default first, or delete the policy."})
		return
	}
	back := policyPath(name) + "?version=" + url.QueryEscape(id)
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Delete policy version", Nav: "policies", Data: confirmData{
		Heading: "Delete version " + id + " of policy " + name + "?",
		Lead:    "The version is not the default one, so no device is affected.",
		Details: []string{"Policy: " + name, "Version: " + id},
		Warning: "A deleted version cannot be restored, and its number is never given again.",
		Action:  policyPath(name) + "/versions/" + url.PathEscape(id) + "/delete",
		Button:  "Delete version",
		Danger:  true,
		Return:  policyPath(name),
		Cancel:  back,
	}})
}

func (h *Handler) deletePolicyVersion(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	id := r.PathValue("version")
	if err := h.Registry.DeletePolicyVersion(r.Context(), loginFrom(r).Scope, name, id); err != nil {
		h.redirectFlash(w, r, policyPath(name), &Flash{Error: true, Message: "Version " + id + " of policy " + name + " was not deleted: " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, policyPath(name), &Flash{Message: "Version " + id + " of policy " + name + " was deleted."})
}

func (h *Handler) confirmDeletePolicy(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	p, err := h.Registry.GetPolicy(r.Context(), l.Scope, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	one := 1
	tp, err := h.Registry.ListTargetsForPolicy(r.Context(), l.Scope, name, fleetcert.ListOptions{PageSize: &one})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, policyPath(name))
	switch {
	case len(tp.Targets) > 0:
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Policy " + name + " is attached to certificates or thing groups and cannot be deleted: detach it from each (Targets) first."})
		return
	case len(p.Versions) > 1:
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Policy " + name + " has versions besides the default one and cannot be deleted: delete the other versions first."})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Delete policy", Nav: "policies", Data: confirmData{
		Heading: "Delete policy " + name + "?",
		Lead:    "The policy and its default version are removed from this account and Region. It is attached to nothing, so no device is affected.",
		Details: []string{"Policy: " + name, "Policy ARN: " + p.ARN()},
		Warning: "A deleted policy cannot be restored; a policy of the same name can be created again.",
		Action:  policyPath(name) + "/delete",
		Button:  "Delete policy",
		Danger:  true,
		Return:  Prefix + "policies",
		Cancel:  back,
	}})
}

func (h *Handler) deletePolicy(w http.ResponseWriter, r *http.Request) {
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	if err := h.Registry.DeletePolicy(r.Context(), loginFrom(r).Scope, name); err != nil {
		h.redirectFlash(w, r, policyPath(name), &Flash{Error: true, Message: "Policy " + name + " was not deleted: " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, returnTo(r, Prefix+"policies"), &Flash{Message: "Policy " + name + " was deleted."})
}
