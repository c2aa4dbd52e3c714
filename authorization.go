package fleetcert

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"

	"github.com/fleetcert/fleetcert/policy"
)

// ConnectionPolicies is what authorizes a device connection: the policies
// in effect and the thing the connection is for, which thing policy
// variables read.
type ConnectionPolicies struct {
	// Policies are the default versions of the policies in effect, each
	// once: those attached to the certificate, in name order, then those
	// of the thing's groups, nearest group first.
	Policies []policy.Named
	// Thing is the thing whose name is the client id and to which the
	// certificate is attached; nil when there is none.
	Thing *ConnectionThing
}

// ConnectionThing is the thing of a connection: what the thing policy
// variables iot:Connection.Thing.* resolve to.
type ConnectionThing struct {
	Name       string
	TypeName   string
	Attributes map[string]string
}

// ConnectionPolicies returns what authorizes a device connection of scope
// presenting certificate certificateID with MQTT client id clientID: the
// default versions of the policies attached to the certificate and — when
// clientID is the name of a thing attached to the certificate, as AWS
// requires for thing policy variables and thing group policies — of the
// policies attached to that thing's groups and their ancestors; and that
// thing (name, type name, attributes) for the policy variables.
//
// AWS IoT: "The policies attached to a thing group apply to any thing
// within that group. For the policy to take effect, the clientId and the
// thing name must match"
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html);
// "the value of clientId in the MQTT connect message … must exactly match
// the thing name"
// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html);
// a parent group's policy "is inherited by its child groups, and by all of
// the things in the group and in its child groups"
// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html).
//
// Errors: InvalidRequestException, ResourceNotFoundException (the
// certificate).
func (r *Registry) ConnectionPolicies(ctx context.Context, scope Scope, certificateID, clientID string) (*ConnectionPolicies, error) {
	id, err := ParseCertificateID("certificateId", certificateID)
	if err != nil {
		return nil, err
	}
	var cp *ConnectionPolicies
	err = r.Store.View(ctx, func(tx Tx) (err error) {
		cp, _, err = r.connectionPolicies(ctx, tx, scope, id, clientID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// connectionPolicies is ConnectionPolicies in tx; it also returns the
// certificate.
func (r *Registry) connectionPolicies(ctx context.Context, tx Tx, scope Scope, id, clientID string) (*ConnectionPolicies, *Certificate, error) {
	cert, err := tx.Certificate(ctx, scope, id)
	if err != nil {
		return nil, nil, notFound(err, id)
	}
	certARN := cert.ARN()
	cp := &ConnectionPolicies{}
	seen := map[string]bool{}
	add := func(target string) error {
		links, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, To: target})
		if err != nil {
			return err
		}
		for _, l := range links {
			if seen[l.From] {
				continue
			}
			seen[l.From] = true
			n, err := namedPolicy(ctx, tx, scope, l.From)
			if err != nil {
				return err
			}
			cp.Policies = append(cp.Policies, n)
		}
		return nil
	}
	if err := add(certARN); err != nil {
		return nil, nil, err
	}
	if clientID == "" {
		return cp, cert, nil
	}
	thing, groups, err := r.connectionThing(ctx, tx, scope, clientID, certARN)
	if err != nil || thing == nil {
		return cp, cert, err
	}
	cp.Thing = thing
	for _, g := range groups {
		if err := add(ThingGroupARN(scope, g)); err != nil {
			return nil, nil, err
		}
	}
	return cp, cert, nil
}

// namedPolicy returns the default version of policy name, parsed.
func namedPolicy(ctx context.Context, tx Tx, scope Scope, name string) (policy.Named, error) {
	p, err := loadPolicy(ctx, tx, scope, name)
	if err != nil {
		return policy.Named{}, err
	}
	v := p.DefaultVersion()
	if v == nil {
		return policy.Named{}, fmt.Errorf("policy %s has no default version", name)
	}
	doc, err := policy.Parse(v.Document)
	if err != nil {
		// Every stored document was parsed before it was stored.
		return policy.Named{}, fmt.Errorf("parse policy %s version %s: %w", name, v.ID, err)
	}
	return policy.Named{Name: name, ARN: p.ARN(), Doc: doc}, nil
}

// connectionThing returns the thing named clientID when the certificate
// certARN is attached to it, and its thing groups with their ancestors,
// nearest first, each once; nil when there is no such thing or the
// certificate is not attached to it.
func (r *Registry) connectionThing(ctx context.Context, tx Tx, scope Scope, clientID, certARN string) (*ConnectionThing, []string, error) {
	if CheckName("thingName", clientID) != nil {
		return nil, nil, nil // no thing can have this name
	}
	if _, err := tx.Link(ctx, scope, LinkThingPrincipal, clientID, certARN); ErrorCode(err) == EResourceNotFound {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	th, err := r.thing(ctx, tx, scope, clientID)
	if ErrorCode(err) == EResourceNotFound {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	links, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingGroup, From: clientID})
	if err != nil {
		return nil, nil, err
	}
	// Breadth first: the thing's own groups, then their parents, and so on.
	var chains [][]string
	for _, l := range links {
		chain, err := r.ancestors(ctx, tx, scope, l.To)
		if err != nil {
			return nil, nil, err
		}
		chains = append(chains, chain)
	}
	seen := map[string]bool{}
	var groups []string
	for depth := 0; ; depth++ {
		more := false
		for _, c := range chains {
			if depth < len(c) {
				more = true
				if !seen[c[depth]] {
					seen[c[depth]] = true
					groups = append(groups, c[depth])
				}
			}
		}
		if !more {
			break
		}
	}
	return &ConnectionThing{Name: th.Name, TypeName: th.TypeName, Attributes: th.Attributes}, groups, nil
}

// certificateVariables returns the certificate policy variables of c.
func certificateVariables(c *Certificate) map[string][]string {
	b, _ := pem.Decode([]byte(c.PEM))
	if b == nil {
		return nil
	}
	x, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return policy.CertificateVariables(x)
}

// EffectivePolicy is a policy in effect, with the document of its default
// version (EffectivePolicy in the AWS model).
type EffectivePolicy struct {
	Name     string
	ARN      string
	Document string
}

// GetEffectivePolicies returns the policies in effect for principal: for a
// certificate, those a device presenting it would connect with as
// thingName (ConnectionPolicies, with the thing name as client id); for a
// thing group, those attached to it and its ancestors.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) GetEffectivePolicies(ctx context.Context, scope Scope, principal, cognitoIdentityPoolID, thingName string) ([]EffectivePolicy, error) {
	if cognitoIdentityPoolID != "" {
		return nil, noCognito()
	}
	if thingName != "" {
		if err := checkThingName(thingName); err != nil {
			return nil, err
		}
	}
	t, err := ParsePolicyTarget(scope, "principal", principal)
	if err != nil {
		return nil, err
	}
	var out []EffectivePolicy
	err = r.Store.View(ctx, func(tx Tx) error {
		var names []string
		switch t.Kind {
		case TargetCertificate:
			cp, _, err := r.connectionPolicies(ctx, tx, scope, t.Name, thingName)
			if err != nil {
				return err
			}
			for _, p := range cp.Policies {
				names = append(names, p.Name)
			}
		case TargetThingGroup:
			page, err := r.listAttachedIn(ctx, tx, scope, t, true)
			if err != nil {
				return err
			}
			names = page
		}
		for _, n := range names {
			p, err := loadPolicy(ctx, tx, scope, n)
			if err != nil {
				return err
			}
			out = append(out, EffectivePolicy{Name: n, ARN: p.ARN(), Document: p.DefaultVersion().Document})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// noCognito refuses an Amazon Cognito identity pool: fleetcert has none.
func noCognito() error {
	return Errorf(EInvalidRequest, "fleetcert has no Amazon Cognito identities; omit cognitoIdentityPoolId and name a certificate as the principal.")
}

// checkThingName validates a thing name (AWS model: ThingName, 1 to 128
// characters of [a-zA-Z0-9:_-]).
//
// Errors: InvalidRequestException.
func checkThingName(name string) error {
	if len(name) < 1 || len(name) > 128 {
		return Errorf(EInvalidRequest,
			"1 validation error detected: Value '%s' at 'thingName' failed to satisfy constraint: Member must have length less than or equal to 128 and greater than or equal to 1", truncateValue(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ':' || c == '_' || c == '-') {
			return Errorf(EInvalidRequest,
				"1 validation error detected: Value '%s' at 'thingName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+", truncateValue(name))
		}
	}
	return nil
}

// Action types of TestAuthorization (ActionType in the AWS model) and the
// IoT actions they stand for.
var authActions = map[string]string{
	"PUBLISH":   "iot:Publish",
	"SUBSCRIBE": "iot:Subscribe",
	"RECEIVE":   "iot:Receive",
	"CONNECT":   "iot:Connect",
}

// Authorization decisions (AuthDecision in the AWS model).
const (
	AuthAllowed      = "ALLOWED"
	AuthExplicitDeny = "EXPLICIT_DENY"
	AuthImplicitDeny = "IMPLICIT_DENY"
)

// AuthInfo is one action to test on resources (AuthInfo in the AWS model).
type AuthInfo struct {
	ActionType string   // PUBLISH, SUBSCRIBE, RECEIVE or CONNECT
	Resources  []string // ARNs: topic/…, topicfilter/…, client/…
}

// TestAuthorizationInput is the input of TestAuthorization.
type TestAuthorizationInput struct {
	Principal             string // a certificate ARN
	CognitoIdentityPoolID string // refused: fleetcert has no Cognito identities
	ClientID              string
	AuthInfos             []AuthInfo
	PolicyNamesToAdd      []string
	PolicyNamesToSkip     []string
}

// PolicyRef names a policy in an authorization result.
type PolicyRef struct {
	Name string
	ARN  string
}

// AuthResult is the decision on one AuthInfo (AuthResult in the AWS
// model).
type AuthResult struct {
	AuthInfo             AuthInfo
	Decision             string      // AuthAllowed, AuthExplicitDeny or AuthImplicitDeny
	Allowed              []PolicyRef // the policies that allowed every resource
	ExplicitDeny         []PolicyRef // the policies that denied a resource
	ImplicitDeny         []PolicyRef // the policies evaluated, none of which allowed or denied a resource
	MissingContextValues []string
}

// maxAuthInfos is the model's bound on TestAuthorization's authInfos.
const maxAuthInfos = 10

// TestAuthorization decides, as the device gateway would, whether a device
// presenting the certificate in.Principal with MQTT client id in.ClientID
// may perform each of in.AuthInfos: with the policies of
// ConnectionPolicies, plus in.PolicyNamesToAdd, less in.PolicyNamesToSkip.
// An AuthInfo with several resources is ALLOWED when every resource is,
// EXPLICIT_DENY when a policy denies any of them, IMPLICIT_DENY otherwise.
//
// Errors: InvalidRequestException, ResourceNotFoundException (the
// certificate, a policy to add).
func (r *Registry) TestAuthorization(ctx context.Context, scope Scope, in TestAuthorizationInput) ([]AuthResult, error) {
	if in.CognitoIdentityPoolID != "" {
		return nil, noCognito()
	}
	if in.Principal == "" {
		return nil, Errorf(EInvalidRequest, "fleetcert tests the authorization of certificates: name one as the principal (arn:aws:iot:%s:%s:cert/{certificateId}).", scope.Region, scope.AccountID)
	}
	if err := certificateOnly(scope, in.Principal); err != nil {
		return nil, err
	}
	t, err := ParsePolicyTarget(scope, "principal", in.Principal)
	if err != nil {
		return nil, err
	}
	if n := len(in.AuthInfos); n < 1 || n > maxAuthInfos {
		return nil, Errorf(EInvalidRequest,
			"1 validation error detected: Value at 'authInfos' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1", maxAuthInfos)
	}
	for i, a := range in.AuthInfos {
		if _, ok := authActions[a.ActionType]; !ok {
			return nil, Errorf(EInvalidRequest,
				"1 validation error detected: Value '%s' at 'authInfos.%d.member.actionType' failed to satisfy constraint: Member must satisfy enum value set: [PUBLISH, SUBSCRIBE, RECEIVE, CONNECT]", truncateValue(a.ActionType), i+1)
		}
		if len(a.Resources) == 0 {
			return nil, Errorf(EInvalidRequest, "authInfos.%d.member.resources must name at least one resource.", i+1)
		}
		for _, res := range a.Resources {
			// AWS model: Resource is at most 2048 characters.
			if len(res) > 2048 {
				return nil, Errorf(EInvalidRequest,
					"1 validation error detected: Value at 'authInfos.%d.member.resources' failed to satisfy constraint: Member must have length less than or equal to 2048", i+1)
			}
		}
	}
	for _, n := range slices.Concat(in.PolicyNamesToAdd, in.PolicyNamesToSkip) {
		if err := CheckPolicyName("policyNames", n); err != nil {
			return nil, err
		}
	}
	var cp *ConnectionPolicies
	var cert *Certificate
	err = r.Store.View(ctx, func(tx Tx) (err error) {
		if cp, cert, err = r.connectionPolicies(ctx, tx, scope, t.Name, in.ClientID); err != nil {
			return err
		}
		cp.Policies = slices.DeleteFunc(cp.Policies, func(p policy.Named) bool {
			return slices.Contains(in.PolicyNamesToSkip, p.Name)
		})
		for _, n := range in.PolicyNamesToAdd {
			if slices.ContainsFunc(cp.Policies, func(p policy.Named) bool { return p.Name == n }) {
				continue
			}
			p, err := namedPolicy(ctx, tx, scope, n)
			if err != nil {
				return err
			}
			cp.Policies = append(cp.Policies, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pctx := policy.Context{
		ClientID:    in.ClientID,
		Region:      scope.Region,
		AccountID:   scope.AccountID,
		Certificate: certificateVariables(cert),
	}
	if th := cp.Thing; th != nil {
		pctx.ThingName, pctx.ThingTypeName, pctx.ThingAttributes, pctx.ThingAttached = th.Name, th.TypeName, th.Attributes, true
	}
	set := policy.Compile(cp.Policies, pctx)
	arns := map[string]string{}
	for _, p := range cp.Policies {
		arns[p.Name] = p.ARN
	}
	refs := func(names []string) []PolicyRef {
		var out []PolicyRef
		for _, n := range names {
			if !slices.ContainsFunc(out, func(r PolicyRef) bool { return r.Name == n }) {
				out = append(out, PolicyRef{Name: n, ARN: arns[n]})
			}
		}
		return out
	}
	results := make([]AuthResult, 0, len(in.AuthInfos))
	for _, a := range in.AuthInfos {
		res := AuthResult{AuthInfo: a, Decision: AuthAllowed}
		var allowing, denying []string
		allAllowed, anyDenied := true, false
		for _, resource := range a.Resources {
			d := set.Decide(authActions[a.ActionType], resource)
			for _, m := range d.MissingContextValues {
				if !slices.Contains(res.MissingContextValues, m) {
					res.MissingContextValues = append(res.MissingContextValues, m)
				}
			}
			switch d.Effect {
			case policy.Allowed:
				allowing = append(allowing, d.Allowing...)
			case policy.ExplicitDeny:
				anyDenied = true
				allAllowed = false
				denying = append(denying, d.Denying...)
			default:
				allAllowed = false
			}
		}
		switch {
		case anyDenied:
			res.Decision = AuthExplicitDeny
			res.ExplicitDeny = refs(denying)
		case allAllowed:
			res.Allowed = refs(allowing)
		default:
			res.Decision = AuthImplicitDeny
			var all []string
			for _, p := range cp.Policies {
				all = append(all, p.Name)
			}
			res.ImplicitDeny = refs(all)
		}
		results = append(results, res)
	}
	return results, nil
}
