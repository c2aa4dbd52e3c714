package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// A certificate's things and policies (its page's cards), and the policy
// simulator, which asks Registry.TestAuthorization what the device
// gateway would decide.

// certAttachments is what the certificate page shows of its attachments.
type certAttachments struct {
	Things     []string
	MoreThings bool
	Policies   []string
	// Choices are the account's policies not attached yet, for the attach
	// form's list; ChoicesCut says the account has more than one listing
	// page of policies, so the form asks for a name instead.
	Choices    []string
	ChoicesCut bool
}

// attachments reads the things and policies of certificate c: a page of
// things (a certificate is rarely on more than a few), its policies (at
// most MaxPoliciesPerTarget) and one page of the account's policies for
// the attach form.
func (h *Handler) attachments(r *http.Request, c *fleetcert.Certificate) (*certAttachments, error) {
	ctx, scope, arn := r.Context(), loginFrom(r).Scope, c.ARN()
	size := pageSizes[0]
	things, err := h.Registry.ListPrincipalThings(ctx, scope, arn, "", fleetcert.RegistryListOptions{MaxResults: &size})
	if err != nil {
		return nil, err
	}
	a := &certAttachments{MoreThings: things.NextToken != ""}
	for _, t := range things.Principals {
		a.Things = append(a.Things, t.ThingName)
	}
	max := fleetcert.MaxPoliciesPerTarget
	attached, err := h.Registry.ListAttachedPolicies(ctx, scope, arn, false, fleetcert.ListOptions{PageSize: &max})
	if err != nil {
		return nil, err
	}
	for _, p := range attached.Policies {
		a.Policies = append(a.Policies, p.Name)
	}
	if len(a.Policies) >= fleetcert.MaxPoliciesPerTarget {
		return a, nil // no room for another: no list to read
	}
	all := fleetcert.MaxPageSize
	page, err := h.Registry.ListPolicies(ctx, scope, fleetcert.ListOptions{PageSize: &all})
	if err != nil {
		return nil, err
	}
	a.ChoicesCut = page.NextMarker != ""
	for _, p := range page.Policies {
		if !slices.Contains(a.Policies, p.Name) {
			a.Choices = append(a.Choices, p.Name)
		}
	}
	return a, nil
}

func (h *Handler) attachCertificateThing(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	l := loginFrom(r)
	back := Prefix + "certificates/" + id
	name := strings.TrimSpace(r.PostFormValue("thing"))
	if err := fleetcert.CheckName("thingName", name); err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Type the name of a thing of this account: letters, digits, colons, underscores and hyphens."})
		return
	}
	arn := (&fleetcert.Certificate{Scope: l.Scope, ID: id}).ARN()
	h.attachCertificateToThing(w, r, name, arn, fleetcert.NonExclusiveThing, back)
}

func (h *Handler) attachCertificatePolicy(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	l := loginFrom(r)
	back := returnTo(r, Prefix+"certificates/"+id)
	name := strings.TrimSpace(r.PostFormValue("policy"))
	if name == "" {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Choose the policy to attach."})
		return
	}
	arn := (&fleetcert.Certificate{Scope: l.Scope, ID: id}).ARN()
	if err := h.Registry.AttachPolicy(r.Context(), l.Scope, name, arn); err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Policy " + name + " was not attached to certificate " + shortID(id) + ": " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Policy " + name + " is attached to certificate " + shortID(id) + ": it applies to devices using it from their next packet."})
}

// detachPolicyPath is the confirmation page that detaches policy name from
// certificate id.
func detachPolicyPath(id, name string) string {
	return Prefix + "certificates/" + id + "/policies/" + url.PathEscape(name) + "/detach"
}

func (h *Handler) confirmDetachCertificatePolicy(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	if _, err := h.Registry.DescribeCertificate(r.Context(), loginFrom(r).Scope, id); err != nil {
		h.fail(w, r, err)
		return
	}
	back := returnTo(r, Prefix+"certificates/"+id)
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Detach policy", Nav: "certificates", Data: confirmData{
		Heading: "Detach policy " + name + " from certificate " + shortID(id) + "?",
		Lead:    "Devices using this certificate lose what the policy allowed from their next packet; a device no longer allowed to connect is disconnected.",
		Details: []string{"Policy: " + name, "Certificate ID: " + id},
		Action:  detachPolicyPath(id, name),
		Button:  "Detach policy",
		Danger:  true,
		Return:  back,
		Cancel:  back,
	}})
}

func (h *Handler) detachCertificatePolicy(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	name := h.policyName(w, r)
	if name == "" {
		return
	}
	l := loginFrom(r)
	back := returnTo(r, Prefix+"certificates/"+id)
	arn := (&fleetcert.Certificate{Scope: l.Scope, ID: id}).ARN()
	if err := h.Registry.DetachPolicy(r.Context(), l.Scope, name, arn); err != nil {
		h.redirectFlash(w, r, back, &Flash{Error: true, Message: "Policy " + name + " was not detached from certificate " + shortID(id) + ": " + h.errorText(r, err)})
		return
	}
	h.redirectFlash(w, r, back, &Flash{Message: "Policy " + name + " was detached from certificate " + shortID(id) + "."})
}

// simActions are the simulator's actions: TestAuthorization's action
// types, with what their resource is.
var simActions = []struct{ Type, Label, Resource, Noun string }{
	{"CONNECT", "Connect (iot:Connect)", "client", "Client ID"},
	{"PUBLISH", "Publish (iot:Publish)", "topic", "Topic"},
	{"SUBSCRIBE", "Subscribe (iot:Subscribe)", "topicfilter", "Topic filter"},
	{"RECEIVE", "Receive (iot:Receive)", "topic", "Topic"},
}

type simulateData struct {
	Certificate, ClientID, Action, Resource string
	Actions                                 []option
	Error                                   string
	Result                                  *simResult
}

// simResult is TestAuthorization's answer in words.
type simResult struct {
	Decision    string // "allowed", "explicit" or "implicit"
	Action      string
	ResourceARN string
	Policies    []string
	Missing     []string
}

// policySimulator answers "may this certificate do this?" with
// TestAuthorization. It only reads, so it is a GET form: its answer has
// an address that can be reloaded and shared.
func (h *Handler) policySimulator(w http.ResponseWriter, r *http.Request) {
	l := loginFrom(r)
	q := r.URL.Query()
	d := simulateData{
		Certificate: strings.ToLower(strings.TrimSpace(q.Get("certificate"))),
		ClientID:    strings.TrimSpace(q.Get("client")),
		Action:      q.Get("action"),
		Resource:    strings.TrimSpace(q.Get("resource")),
	}
	if d.Action == "" {
		d.Action = "CONNECT"
	}
	i := slices.IndexFunc(simActions, func(a struct{ Type, Label, Resource, Noun string }) bool { return a.Type == d.Action })
	for _, a := range simActions {
		d.Actions = append(d.Actions, option{Value: a.Type, Label: a.Label, Selected: a.Type == d.Action})
	}
	status := http.StatusOK
	if q.Has("run") {
		arn, msg := certificatePrincipal(l.Scope, d.Certificate)
		switch {
		case msg != "":
			d.Error = msg
		case i < 0:
			d.Error = "Choose an action from the list."
		case d.Resource == "" && d.Action == "CONNECT":
			d.Resource = d.ClientID
		}
		if d.Error == "" && d.Resource == "" {
			d.Error = "Give the " + strings.ToLower(simActions[i].Noun) + " to test."
		}
		if d.Error == "" {
			res := "arn:aws:iot:" + l.Scope.Region + ":" + l.Scope.AccountID + ":" + simActions[i].Resource + "/" + d.Resource
			out, err := h.Registry.TestAuthorization(r.Context(), l.Scope, fleetcert.TestAuthorizationInput{
				Principal: arn, ClientID: d.ClientID,
				AuthInfos: []fleetcert.AuthInfo{{ActionType: d.Action, Resources: []string{res}}},
			})
			switch code := fleetcert.ErrorCode(err); code {
			case "":
				a := out[0]
				sr := &simResult{Action: simActions[i].Label, ResourceARN: res, Missing: a.MissingContextValues}
				refs := a.Allowed
				switch a.Decision {
				case fleetcert.AuthAllowed:
					sr.Decision = "allowed"
				case fleetcert.AuthExplicitDeny:
					sr.Decision, refs = "explicit", a.ExplicitDeny
				default:
					sr.Decision, refs = "implicit", a.ImplicitDeny
				}
				for _, p := range refs {
					sr.Policies = append(sr.Policies, p.Name)
				}
				d.Result = sr
			case fleetcert.EInternalFailure, fleetcert.EServiceUnavailable:
				h.fail(w, r, err)
				return
			default:
				d.Error = h.errorText(r, err)
				if code == fleetcert.EResourceNotFound {
					d.Error = "Certificate " + shortID(d.Certificate) + " does not exist in this account and Region."
				}
			}
		}
		if d.Error != "" {
			status = http.StatusBadRequest
		}
	}
	h.render(w, r, status, "simulate", &page{Title: "Policy simulator", Nav: "simulate", Data: d})
}
