package awsapi

import (
	"net/http"

	"github.com/fleetcert/fleetcert"
)

// policyOperations are the operations of policies, their versions and
// attachments, GetEffectivePolicies and TestAuthorization (issue 15), with
// the method and requestUri of each in testdata/iot-authz-api.json.
var policyOperations = []operation{
	{"AttachPolicy", "PUT", "/target-policies/{policyName}", (*Handler).attachPolicy},
	{"AttachPrincipalPolicy", "PUT", "/principal-policies/{policyName}", (*Handler).attachPrincipalPolicy},
	{"CreatePolicy", "POST", "/policies/{policyName}", (*Handler).createPolicy},
	{"CreatePolicyVersion", "POST", "/policies/{policyName}/version", (*Handler).createPolicyVersion},
	{"DeletePolicy", "DELETE", "/policies/{policyName}", (*Handler).deletePolicy},
	{"DeletePolicyVersion", "DELETE", "/policies/{policyName}/version/{policyVersionId}", (*Handler).deletePolicyVersion},
	{"DetachPolicy", "POST", "/target-policies/{policyName}", (*Handler).detachPolicy},
	{"DetachPrincipalPolicy", "DELETE", "/principal-policies/{policyName}", (*Handler).detachPrincipalPolicy},
	{"GetEffectivePolicies", "POST", "/effective-policies", (*Handler).getEffectivePolicies},
	{"GetPolicy", "GET", "/policies/{policyName}", (*Handler).getPolicy},
	{"GetPolicyVersion", "GET", "/policies/{policyName}/version/{policyVersionId}", (*Handler).getPolicyVersion},
	{"ListAttachedPolicies", "POST", "/attached-policies/{target}", (*Handler).listAttachedPolicies},
	{"ListPolicies", "GET", "/policies", (*Handler).listPolicies},
	{"ListPolicyVersions", "GET", "/policies/{policyName}/version", (*Handler).listPolicyVersions},
	{"ListPrincipalPolicies", "GET", "/principal-policies", (*Handler).listPrincipalPolicies},
	{"ListTargetsForPolicy", "POST", "/policy-targets/{policyName}", (*Handler).listTargetsForPolicy},
	{"SetDefaultPolicyVersion", "PATCH", "/policies/{policyName}/version/{policyVersionId}", (*Handler).setDefaultPolicyVersion},
	{"TestAuthorization", "POST", "/test-authorization", (*Handler).testAuthorization},
}

// iotPrincipalHeader carries the principal of the deprecated principal
// operations (the model's locationName for their principal member).
const iotPrincipalHeader = "x-amzn-iot-principal"

// JSON shapes of the policy operations, member names as in the model.

type tagJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type createPolicyInput struct {
	PolicyDocument *string   `json:"policyDocument"`
	Tags           []tagJSON `json:"tags"`
}

type createPolicyOutput struct {
	PolicyName      string `json:"policyName"`
	PolicyARN       string `json:"policyArn"`
	PolicyDocument  string `json:"policyDocument"`
	PolicyVersionID string `json:"policyVersionId"`
}

type getPolicyOutput struct {
	PolicyName       string    `json:"policyName"`
	PolicyARN        string    `json:"policyArn"`
	PolicyDocument   string    `json:"policyDocument"`
	DefaultVersionID string    `json:"defaultVersionId"`
	CreationDate     epochTime `json:"creationDate,omitzero"`
	LastModifiedDate epochTime `json:"lastModifiedDate,omitzero"`
	GenerationID     string    `json:"generationId,omitempty"`
}

type policyJSON struct {
	PolicyName string `json:"policyName"`
	PolicyARN  string `json:"policyArn"`
}

type listPoliciesOutput struct {
	Policies   []policyJSON `json:"policies"`
	NextMarker string       `json:"nextMarker,omitempty"`
}

type createPolicyVersionInput struct {
	PolicyDocument *string `json:"policyDocument"`
}

type createPolicyVersionOutput struct {
	PolicyARN        string `json:"policyArn"`
	PolicyDocument   string `json:"policyDocument"`
	PolicyVersionID  string `json:"policyVersionId"`
	IsDefaultVersion bool   `json:"isDefaultVersion"`
}

type getPolicyVersionOutput struct {
	PolicyARN        string    `json:"policyArn"`
	PolicyName       string    `json:"policyName"`
	PolicyDocument   string    `json:"policyDocument"`
	PolicyVersionID  string    `json:"policyVersionId"`
	IsDefaultVersion bool      `json:"isDefaultVersion"`
	CreationDate     epochTime `json:"creationDate,omitzero"`
	LastModifiedDate epochTime `json:"lastModifiedDate,omitzero"`
	GenerationID     string    `json:"generationId,omitempty"`
}

type policyVersionJSON struct {
	VersionID        string    `json:"versionId"`
	IsDefaultVersion bool      `json:"isDefaultVersion"`
	CreateDate       epochTime `json:"createDate,omitzero"`
}

type listPolicyVersionsOutput struct {
	PolicyVersions []policyVersionJSON `json:"policyVersions"`
}

type policyTargetInput struct {
	Target *string `json:"target"`
}

type listTargetsForPolicyOutput struct {
	Targets    []string `json:"targets"`
	NextMarker string   `json:"nextMarker,omitempty"`
}

type getEffectivePoliciesInput struct {
	Principal             string `json:"principal"`
	CognitoIdentityPoolID string `json:"cognitoIdentityPoolId"`
}

type effectivePolicyJSON struct {
	PolicyName     string `json:"policyName"`
	PolicyARN      string `json:"policyArn"`
	PolicyDocument string `json:"policyDocument"`
}

type getEffectivePoliciesOutput struct {
	EffectivePolicies []effectivePolicyJSON `json:"effectivePolicies"`
}

type authInfoJSON struct {
	ActionType string   `json:"actionType,omitempty"`
	Resources  []string `json:"resources"`
}

type testAuthorizationInput struct {
	Principal             string         `json:"principal"`
	CognitoIdentityPoolID string         `json:"cognitoIdentityPoolId"`
	AuthInfos             []authInfoJSON `json:"authInfos"`
	PolicyNamesToAdd      []string       `json:"policyNamesToAdd"`
	PolicyNamesToSkip     []string       `json:"policyNamesToSkip"`
}

type policiesJSON struct {
	Policies []policyJSON `json:"policies"`
}

type deniedJSON struct {
	ImplicitDeny *policiesJSON `json:"implicitDeny,omitempty"`
	ExplicitDeny *policiesJSON `json:"explicitDeny,omitempty"`
}

type authResultJSON struct {
	AuthInfo             authInfoJSON  `json:"authInfo"`
	Allowed              *policiesJSON `json:"allowed,omitempty"`
	Denied               *deniedJSON   `json:"denied,omitempty"`
	AuthDecision         string        `json:"authDecision"`
	MissingContextValues []string      `json:"missingContextValues,omitempty"`
}

type testAuthorizationOutput struct {
	AuthResults []authResultJSON `json:"authResults"`
}

// createPolicy serves POST /policies/{policyName}.
func (h *Handler) createPolicy(c *call, r *http.Request) (any, error) {
	var in createPolicyInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.PolicyDocument == nil {
		return nil, missingMember("policyDocument")
	}
	var tags []fleetcert.Tag
	for _, t := range in.Tags {
		tags = append(tags, fleetcert.Tag{Key: t.Key, Value: t.Value})
	}
	p, err := h.Registry.CreatePolicy(c.ctx, c.scope, r.PathValue("policyName"), *in.PolicyDocument, tags)
	if err != nil {
		return nil, err
	}
	v := p.DefaultVersion()
	return &createPolicyOutput{PolicyName: p.Name, PolicyARN: p.ARN(), PolicyDocument: v.Document, PolicyVersionID: v.ID}, nil
}

// getPolicy serves GET /policies/{policyName}.
func (h *Handler) getPolicy(c *call, r *http.Request) (any, error) {
	p, err := h.Registry.GetPolicy(c.ctx, c.scope, r.PathValue("policyName"))
	if err != nil {
		return nil, err
	}
	v := p.DefaultVersion()
	return &getPolicyOutput{
		PolicyName: p.Name, PolicyARN: p.ARN(), PolicyDocument: v.Document, DefaultVersionID: v.ID,
		CreationDate: epochTime(p.CreationDate), LastModifiedDate: epochTime(p.LastModifiedDate),
		GenerationID: p.GenerationID,
	}, nil
}

// listPolicies serves GET /policies?marker=&pageSize=&isAscendingOrder=.
func (h *Handler) listPolicies(c *call, r *http.Request) (any, error) {
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListPolicies(c.ctx, c.scope, opts)
	if err != nil {
		return nil, err
	}
	return policyList(page), nil
}

// policyList is the output of the operations listing policies by name.
func policyList(page *fleetcert.PolicyPage) *listPoliciesOutput {
	out := &listPoliciesOutput{Policies: []policyJSON{}, NextMarker: page.NextMarker}
	for _, p := range page.Policies {
		out.Policies = append(out.Policies, policyJSON{PolicyName: p.Name, PolicyARN: p.ARN()})
	}
	return out
}

// deletePolicy serves DELETE /policies/{policyName}.
func (h *Handler) deletePolicy(c *call, r *http.Request) (any, error) {
	return nil, h.Registry.DeletePolicy(c.ctx, c.scope, r.PathValue("policyName"))
}

// createPolicyVersion serves POST /policies/{policyName}/version?setAsDefault=.
func (h *Handler) createPolicyVersion(c *call, r *http.Request) (any, error) {
	setAsDefault, err := queryBool(c.query, "setAsDefault")
	if err != nil {
		return nil, err
	}
	var in createPolicyVersionInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.PolicyDocument == nil {
		return nil, missingMember("policyDocument")
	}
	p, v, err := h.Registry.CreatePolicyVersion(c.ctx, c.scope, r.PathValue("policyName"), *in.PolicyDocument, setAsDefault)
	if err != nil {
		return nil, err
	}
	return &createPolicyVersionOutput{PolicyARN: p.ARN(), PolicyDocument: v.Document, PolicyVersionID: v.ID, IsDefaultVersion: v.IsDefaultVersion}, nil
}

// getPolicyVersion serves GET /policies/{policyName}/version/{policyVersionId}.
func (h *Handler) getPolicyVersion(c *call, r *http.Request) (any, error) {
	p, v, err := h.Registry.GetPolicyVersion(c.ctx, c.scope, r.PathValue("policyName"), r.PathValue("policyVersionId"))
	if err != nil {
		return nil, err
	}
	return &getPolicyVersionOutput{
		PolicyARN: p.ARN(), PolicyName: p.Name, PolicyDocument: v.Document, PolicyVersionID: v.ID,
		IsDefaultVersion: v.IsDefaultVersion, CreationDate: epochTime(v.CreateDate),
		LastModifiedDate: epochTime(p.LastModifiedDate), GenerationID: p.GenerationID,
	}, nil
}

// listPolicyVersions serves GET /policies/{policyName}/version.
func (h *Handler) listPolicyVersions(c *call, r *http.Request) (any, error) {
	vs, err := h.Registry.ListPolicyVersions(c.ctx, c.scope, r.PathValue("policyName"))
	if err != nil {
		return nil, err
	}
	out := &listPolicyVersionsOutput{PolicyVersions: []policyVersionJSON{}}
	for _, v := range vs {
		out.PolicyVersions = append(out.PolicyVersions, policyVersionJSON{VersionID: v.ID, IsDefaultVersion: v.IsDefaultVersion, CreateDate: epochTime(v.CreateDate)})
	}
	return out, nil
}

// setDefaultPolicyVersion serves PATCH /policies/{policyName}/version/{policyVersionId}.
func (h *Handler) setDefaultPolicyVersion(c *call, r *http.Request) (any, error) {
	return nil, h.Registry.SetDefaultPolicyVersion(c.ctx, c.scope, r.PathValue("policyName"), r.PathValue("policyVersionId"))
}

// deletePolicyVersion serves DELETE /policies/{policyName}/version/{policyVersionId}.
func (h *Handler) deletePolicyVersion(c *call, r *http.Request) (any, error) {
	return nil, h.Registry.DeletePolicyVersion(c.ctx, c.scope, r.PathValue("policyName"), r.PathValue("policyVersionId"))
}

// policyTarget reads the target member of AttachPolicy and DetachPolicy.
func policyTarget(c *call) (string, error) {
	var in policyTargetInput
	if err := decodeBody(c.body, &in); err != nil {
		return "", err
	}
	if in.Target == nil {
		return "", missingMember("target")
	}
	return *in.Target, nil
}

// attachPolicy serves PUT /target-policies/{policyName}.
func (h *Handler) attachPolicy(c *call, r *http.Request) (any, error) {
	target, err := policyTarget(c)
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.AttachPolicy(c.ctx, c.scope, r.PathValue("policyName"), target)
}

// detachPolicy serves POST /target-policies/{policyName}.
func (h *Handler) detachPolicy(c *call, r *http.Request) (any, error) {
	target, err := policyTarget(c)
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.DetachPolicy(c.ctx, c.scope, r.PathValue("policyName"), target)
}

// iotPrincipal reads the x-amzn-iot-principal header of the deprecated
// principal operations.
func iotPrincipal(r *http.Request) (string, error) {
	p := r.Header.Get(iotPrincipalHeader)
	if p == "" {
		return "", missingMember("principal")
	}
	return p, nil
}

// attachPrincipalPolicy serves PUT /principal-policies/{policyName}.
func (h *Handler) attachPrincipalPolicy(c *call, r *http.Request) (any, error) {
	p, err := iotPrincipal(r)
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.AttachPrincipalPolicy(c.ctx, c.scope, r.PathValue("policyName"), p)
}

// detachPrincipalPolicy serves DELETE /principal-policies/{policyName}.
func (h *Handler) detachPrincipalPolicy(c *call, r *http.Request) (any, error) {
	p, err := iotPrincipal(r)
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.DetachPrincipalPolicy(c.ctx, c.scope, r.PathValue("policyName"), p)
}

// listPrincipalPolicies serves GET /principal-policies?marker=&pageSize=&isAscendingOrder=.
func (h *Handler) listPrincipalPolicies(c *call, r *http.Request) (any, error) {
	p, err := iotPrincipal(r)
	if err != nil {
		return nil, err
	}
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListPrincipalPolicies(c.ctx, c.scope, p, opts)
	if err != nil {
		return nil, err
	}
	return policyList(page), nil
}

// listAttachedPolicies serves POST /attached-policies/{target}?recursive=&marker=&pageSize=.
func (h *Handler) listAttachedPolicies(c *call, r *http.Request) (any, error) {
	recursive, err := queryBool(c.query, "recursive")
	if err != nil {
		return nil, err
	}
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListAttachedPolicies(c.ctx, c.scope, r.PathValue("target"), recursive, opts)
	if err != nil {
		return nil, err
	}
	return policyList(page), nil
}

// listTargetsForPolicy serves POST /policy-targets/{policyName}?marker=&pageSize=.
func (h *Handler) listTargetsForPolicy(c *call, r *http.Request) (any, error) {
	opts, err := listOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListTargetsForPolicy(c.ctx, c.scope, r.PathValue("policyName"), opts)
	if err != nil {
		return nil, err
	}
	out := &listTargetsForPolicyOutput{Targets: page.Targets, NextMarker: page.NextMarker}
	if out.Targets == nil {
		out.Targets = []string{}
	}
	return out, nil
}

// getEffectivePolicies serves POST /effective-policies?thingName=.
func (h *Handler) getEffectivePolicies(c *call, r *http.Request) (any, error) {
	var in getEffectivePoliciesInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	thingName, _ := queryString(c.query, "thingName")
	ps, err := h.Registry.GetEffectivePolicies(c.ctx, c.scope, in.Principal, in.CognitoIdentityPoolID, thingName)
	if err != nil {
		return nil, err
	}
	out := &getEffectivePoliciesOutput{EffectivePolicies: []effectivePolicyJSON{}}
	for _, p := range ps {
		out.EffectivePolicies = append(out.EffectivePolicies, effectivePolicyJSON{PolicyName: p.Name, PolicyARN: p.ARN, PolicyDocument: p.Document})
	}
	return out, nil
}

// testAuthorization serves POST /test-authorization?clientId=.
func (h *Handler) testAuthorization(c *call, r *http.Request) (any, error) {
	var in testAuthorizationInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.AuthInfos == nil {
		return nil, missingMember("authInfos")
	}
	clientID, _ := queryString(c.query, "clientId")
	tin := fleetcert.TestAuthorizationInput{
		Principal: in.Principal, CognitoIdentityPoolID: in.CognitoIdentityPoolID, ClientID: clientID,
		PolicyNamesToAdd: in.PolicyNamesToAdd, PolicyNamesToSkip: in.PolicyNamesToSkip,
	}
	for _, a := range in.AuthInfos {
		tin.AuthInfos = append(tin.AuthInfos, fleetcert.AuthInfo{ActionType: a.ActionType, Resources: a.Resources})
	}
	results, err := h.Registry.TestAuthorization(c.ctx, c.scope, tin)
	if err != nil {
		return nil, err
	}
	out := &testAuthorizationOutput{AuthResults: []authResultJSON{}}
	for _, res := range results {
		j := authResultJSON{
			AuthInfo:             authInfoJSON{ActionType: res.AuthInfo.ActionType, Resources: res.AuthInfo.Resources},
			AuthDecision:         res.Decision,
			MissingContextValues: res.MissingContextValues,
			// AWS answers every member of the result, empty lists included.
			Allowed: policyRefs(res.Allowed),
			Denied:  &deniedJSON{ImplicitDeny: policyRefs(res.ImplicitDeny), ExplicitDeny: policyRefs(res.ExplicitDeny)},
		}
		out.AuthResults = append(out.AuthResults, j)
	}
	return out, nil
}

func policyRefs(refs []fleetcert.PolicyRef) *policiesJSON {
	out := &policiesJSON{Policies: []policyJSON{}}
	for _, p := range refs {
		out.Policies = append(out.Policies, policyJSON{PolicyName: p.Name, PolicyARN: p.ARN})
	}
	return out
}
