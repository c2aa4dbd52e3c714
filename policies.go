package fleetcert

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetcert/fleetcert/policy"
)

// AWS IoT's limits on policies. The model gives the name's and the
// request's bounds; the quotas page gives the rest
// (https://docs.aws.amazon.com/general/latest/gr/iot-core.html, "AWS IoT
// Core resource quotas": "Maximum number of policies that can be attached
// to a certificate or Amazon Cognito identity: 10", "Maximum number of
// named policy versions: 5"; the document's size is policy.Parse's to
// check).
const (
	MaxPolicyNameLength = 128 // PolicyName: min 1, max 128, [\w+=,.@-]+
	// MaxPolicyDocumentLength is the model's PolicyDocument bound on the
	// request member, in characters.
	MaxPolicyDocumentLength = 404600
	// MaxPolicyVersions is how many versions a policy keeps (CreatePolicyVersion:
	// "A managed policy can have up to five versions").
	MaxPolicyVersions = 5
	// MaxPoliciesPerTarget is how many policies may be attached to one
	// certificate. AWS publishes it for certificates; fleetcert applies it
	// to thing groups too.
	MaxPoliciesPerTarget = 10
)

// Policy is a named AWS IoT policy of one scope with its versions
// (GetPolicyResponse in the AWS model).
type Policy struct {
	Scope
	Name             string
	Versions         []PolicyVersion // in ascending version order
	Tags             []Tag
	GenerationID     string
	CreationDate     time.Time
	LastModifiedDate time.Time

	lastVersionID int   // the highest version id ever given; ids are never reused
	version       int64 // the store's Object.Version, for UpdateObject
}

// PolicyVersion is one version of a policy (PolicyVersion and
// GetPolicyVersionResponse in the AWS model).
type PolicyVersion struct {
	ID               string // "1", "2", …
	Document         string
	IsDefaultVersion bool
	CreateDate       time.Time
}

// ARN returns the policy's ARN, arn:aws:iot:{region}:{account}:policy/{name}.
func (p *Policy) ARN() string { return PolicyARN(p.Scope, p.Name) }

// PolicyARN returns the ARN of policy name in scope.
func PolicyARN(s Scope, name string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:policy/%s", s.Region, s.AccountID, name)
}

// DefaultVersion returns the policy's default version: the one in effect.
func (p *Policy) DefaultVersion() *PolicyVersion {
	for i := range p.Versions {
		if p.Versions[i].IsDefaultVersion {
			return &p.Versions[i]
		}
	}
	return nil // never for a stored policy
}

// versionByID returns version id of p, nil when it has none.
func (p *Policy) versionByID(id string) *PolicyVersion {
	for i := range p.Versions {
		if p.Versions[i].ID == id {
			return &p.Versions[i]
		}
	}
	return nil
}

// policyBody is the JSON a policy's Object.Body holds.
type policyBody struct {
	Versions         []policyVersionBody `json:"versions"`
	LastVersionID    int                 `json:"lastVersionId"`
	GenerationID     string              `json:"generationId"`
	LastModifiedDate time.Time           `json:"lastModifiedDate"`
	Tags             []policyTagBody     `json:"tags,omitempty"`
}

type policyVersionBody struct {
	ID               string    `json:"id"`
	IsDefaultVersion bool      `json:"isDefaultVersion"`
	CreateDate       time.Time `json:"createDate"`
	Document         string    `json:"document"`
}

type policyTagBody struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// policyObject encodes p as the store's object.
func (p *Policy) object() (*Object, error) {
	b := policyBody{
		LastVersionID:    p.lastVersionID,
		GenerationID:     p.GenerationID,
		LastModifiedDate: p.LastModifiedDate,
	}
	for _, v := range p.Versions {
		b.Versions = append(b.Versions, policyVersionBody{ID: v.ID, IsDefaultVersion: v.IsDefaultVersion, CreateDate: v.CreateDate, Document: v.Document})
	}
	for _, t := range p.Tags {
		b.Tags = append(b.Tags, policyTagBody(t))
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode policy %s: %w", p.Name, err)
	}
	return &Object{
		Scope: p.Scope, Kind: ObjectPolicy, Name: p.Name, Body: body,
		Version: p.version, CreationDate: p.CreationDate, LastModifiedDate: p.LastModifiedDate,
	}, nil
}

// decodePolicy reads a policy from its stored object.
func decodePolicy(o *Object) (*Policy, error) {
	var b policyBody
	if err := json.Unmarshal(o.Body, &b); err != nil {
		return nil, fmt.Errorf("decode policy %s: %w", o.Name, err)
	}
	p := &Policy{
		Scope: o.Scope, Name: o.Name, GenerationID: b.GenerationID,
		CreationDate: o.CreationDate.UTC(), LastModifiedDate: b.LastModifiedDate.UTC(),
		lastVersionID: b.LastVersionID, version: o.Version,
	}
	for _, v := range b.Versions {
		p.Versions = append(p.Versions, PolicyVersion{ID: v.ID, IsDefaultVersion: v.IsDefaultVersion, CreateDate: v.CreateDate.UTC(), Document: v.Document})
	}
	for _, t := range b.Tags {
		p.Tags = append(p.Tags, Tag(t))
	}
	return p, nil
}

// CheckPolicyName validates a policy name given in member.
//
// Errors: InvalidRequestException.
func CheckPolicyName(member, name string) error {
	// AWS model: PolicyName is 1 to 128 characters matching [\w+=,.@-]+.
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxPolicyNameLength {
		return Errorf(EInvalidRequest,
			"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1", truncateValue(name), member, MaxPolicyNameLength)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("_+=,.@-", c)) {
			return Errorf(EInvalidRequest,
				"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", truncateValue(name), member)
		}
	}
	return nil
}

// truncateValue shortens a caller's value quoted in a message.
func truncateValue(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// checkPolicyVersionID validates a version id given by a caller.
//
// Errors: InvalidRequestException.
func checkPolicyVersionID(id string) error {
	// AWS model: PolicyVersionId matches [0-9]+.
	if id == "" || strings.Trim(id, "0123456789") != "" || len(id) > 18 {
		return Errorf(EInvalidRequest,
			"1 validation error detected: Value '%s' at 'policyVersionId' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]+", truncateValue(id))
	}
	return nil
}

// ParsePolicyDocument checks a policy document as AWS does before storing
// it (policy.Parse: not empty, at most policy.MaxDocumentLength characters
// other than white space, AWS IoT's grammar) and returns it parsed.
//
// Errors: InvalidRequestException over the model's request bound;
// MalformedPolicyException for a document AWS would refuse.
func ParsePolicyDocument(doc string) (*policy.Document, error) {
	if utf8.RuneCountInString(doc) > MaxPolicyDocumentLength {
		return nil, Errorf(EInvalidRequest,
			"1 validation error detected: Value at 'policyDocument' failed to satisfy constraint: Member must have length less than or equal to %d", MaxPolicyDocumentLength)
	}
	d, err := policy.Parse(doc)
	if err != nil {
		return nil, Errorf(EMalformedPolicy, "%s", err.Error())
	}
	return d, nil
}

// policyNotFound is ResourceNotFoundException for policy name, the same
// whether it never existed or belongs to another account.
func policyNotFound(name string) error {
	return Errorf(EResourceNotFound, "The policy %s does not exist.", name)
}

// loadPolicy reads policy name of scope in tx.
//
// Errors: ResourceNotFoundException.
func loadPolicy(ctx context.Context, tx Tx, scope Scope, name string) (*Policy, error) {
	o, err := tx.Object(ctx, scope, ObjectPolicy, name)
	if ErrorCode(err) == EResourceNotFound {
		return nil, policyNotFound(name)
	} else if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", name, err)
	}
	return decodePolicy(o)
}

// savePolicy writes p, changed, back to the store and records the change.
func (r *Registry) savePolicy(ctx context.Context, tx Tx, p *Policy, now time.Time) error {
	p.LastModifiedDate = now
	p.GenerationID = newGenerationID()
	o, err := p.object()
	if err != nil {
		return err
	}
	if err := tx.UpdateObject(ctx, o); err != nil {
		return err
	}
	p.version = o.Version
	return tx.AppendChange(ctx, objectChange(ChangeObjectUpdated, p.Scope, ObjectPolicy, p.Name, now))
}

// CreatePolicy creates policy name with document as its version 1, the
// default one.
//
// Errors: InvalidRequestException, MalformedPolicyException,
// ResourceAlreadyExistsException.
func (r *Registry) CreatePolicy(ctx context.Context, scope Scope, name, document string, tags []Tag) (*Policy, error) {
	var p *Policy
	err := r.update(ctx, "CreatePolicy", func(tx Tx) (err error) {
		p, err = r.createPolicyIn(ctx, tx, scope, name, document, tags)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// createPolicyIn is CreatePolicy in tx.
func (r *Registry) createPolicyIn(ctx context.Context, tx Tx, scope Scope, name, document string, tags []Tag) (*Policy, error) {
	if err := CheckPolicyName("policyName", name); err != nil {
		return nil, err
	}
	if _, err := ParsePolicyDocument(document); err != nil {
		return nil, err
	}
	if err := checkTags(tags); err != nil {
		return nil, err
	}
	now := r.now()
	p := &Policy{
		Scope: scope, Name: name, Tags: slices.Clone(tags),
		Versions:      []PolicyVersion{{ID: "1", Document: document, IsDefaultVersion: true, CreateDate: now}},
		lastVersionID: 1, GenerationID: newGenerationID(),
		CreationDate: now, LastModifiedDate: now,
	}
	o, err := p.object()
	if err != nil {
		return nil, err
	}
	err = tx.CreateObject(ctx, o)
	if ErrorCode(err) == EResourceAlreadyExists {
		// AWS's message for a taken name.
		return nil, &Error{Code: EResourceAlreadyExists,
			Message:    fmt.Sprintf("Policy cannot be created - name already exists (name=%s)", name),
			ResourceID: name, ResourceARN: PolicyARN(scope, name)}
	} else if err != nil {
		return nil, fmt.Errorf("create policy %s: %w", name, err)
	}
	p.version = o.Version
	return p, tx.AppendChange(ctx, objectChange(ChangeObjectCreated, scope, ObjectPolicy, name, now))
}

// GetPolicy returns policy name of scope.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) GetPolicy(ctx context.Context, scope Scope, name string) (*Policy, error) {
	if err := CheckPolicyName("policyName", name); err != nil {
		return nil, err
	}
	var p *Policy
	err := r.Store.View(ctx, func(tx Tx) (err error) {
		p, err = loadPolicy(ctx, tx, scope, name)
		return err
	})
	return p, err
}

// PolicyPage is one page of a policy listing; NextMarker is "" on the last
// page. Only Name and Scope are set on its policies.
type PolicyPage struct {
	Policies   []*Policy
	NextMarker string
}

// ListPolicies returns a page of the policies of scope in ascending name
// order. opts.Ascending is accepted and ignored: the model speaks of
// creation order, but the store keeps policies in name order only.
//
// Errors: InvalidRequestException.
func (r *Registry) ListPolicies(ctx context.Context, scope Scope, opts ListOptions) (*PolicyPage, error) {
	size, err := checkPageSize(opts.PageSize)
	if err != nil {
		return nil, err
	}
	after, err := decodeKeyMarker(opts.Marker)
	if err != nil {
		return nil, err
	}
	var objs []*Object
	err = r.Store.View(ctx, func(tx Tx) (err error) {
		objs, err = tx.ListObjects(ctx, ObjectQuery{Scope: scope, Kind: ObjectPolicy, After: after, Limit: size + 1})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	page := &PolicyPage{}
	if len(objs) > size {
		objs = objs[:size]
		page.NextMarker = encodeKeyMarker(objs[size-1].Name)
	}
	for _, o := range objs {
		page.Policies = append(page.Policies, &Policy{Scope: scope, Name: o.Name})
	}
	return page, nil
}

// DeletePolicy deletes policy name and its default version. AWS IoT
// (DeletePolicy): "A policy cannot be deleted if it has non-default
// versions or it is attached to any certificate."
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// DeleteConflictException.
func (r *Registry) DeletePolicy(ctx context.Context, scope Scope, name string) error {
	if err := CheckPolicyName("policyName", name); err != nil {
		return err
	}
	return r.update(ctx, "DeletePolicy", func(tx Tx) error {
		p, err := loadPolicy(ctx, tx, scope, name)
		if err != nil {
			return err
		}
		links, err := tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, From: name, Limit: 1})
		if err != nil {
			return err
		}
		if len(links) > 0 {
			return Errorf(EDeleteConflict,
				"The policy cannot be deleted as the policy is attached to one or more principals (name=%s); detach it first (DetachPolicy).", name)
		}
		if len(p.Versions) > 1 {
			return Errorf(EDeleteConflict,
				"Cannot delete the policy because it has one or more policy versions attached to it (name=%s); delete the non-default versions first (DeletePolicyVersion).", name)
		}
		if err := tx.DeleteObject(ctx, scope, ObjectPolicy, name); err != nil {
			return err
		}
		return tx.AppendChange(ctx, objectChange(ChangeObjectDeleted, scope, ObjectPolicy, name, r.now()))
	})
}

// CreatePolicyVersion adds a version with document to policy name, the
// default one when setAsDefault, and returns it.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// MalformedPolicyException, VersionsLimitExceededException.
func (r *Registry) CreatePolicyVersion(ctx context.Context, scope Scope, name, document string, setAsDefault bool) (*Policy, *PolicyVersion, error) {
	if err := CheckPolicyName("policyName", name); err != nil {
		return nil, nil, err
	}
	if _, err := ParsePolicyDocument(document); err != nil {
		return nil, nil, err
	}
	var p *Policy
	var v PolicyVersion
	err := r.update(ctx, "CreatePolicyVersion", func(tx Tx) (err error) {
		if p, err = loadPolicy(ctx, tx, scope, name); err != nil {
			return err
		}
		if len(p.Versions) >= MaxPolicyVersions {
			// AWS IoT (CreatePolicyVersion): "If the policy has five
			// versions, you must use DeletePolicyVersion to delete an
			// existing version before you create a new one."
			return Errorf(EVersionsLimitExceeded,
				"The policy %s already has the maximum number of versions (%d); delete one with DeletePolicyVersion first.", name, MaxPolicyVersions)
		}
		now := r.now()
		p.lastVersionID++
		v = PolicyVersion{ID: strconv.Itoa(p.lastVersionID), Document: document, CreateDate: now, IsDefaultVersion: setAsDefault}
		if setAsDefault {
			for i := range p.Versions {
				p.Versions[i].IsDefaultVersion = false
			}
		}
		p.Versions = append(p.Versions, v)
		return r.savePolicy(ctx, tx, p, now)
	})
	if err != nil {
		return nil, nil, err
	}
	return p, &v, nil
}

// GetPolicyVersion returns policy name and its version id.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) GetPolicyVersion(ctx context.Context, scope Scope, name, id string) (*Policy, *PolicyVersion, error) {
	if err := checkPolicyVersionID(id); err != nil {
		return nil, nil, err
	}
	p, err := r.GetPolicy(ctx, scope, name)
	if err != nil {
		return nil, nil, err
	}
	v := p.versionByID(id)
	if v == nil {
		return nil, nil, versionNotFound(name, id)
	}
	return p, v, nil
}

func versionNotFound(name, id string) error {
	return Errorf(EResourceNotFound, "The policy %s has no version %s.", name, id)
}

// ListPolicyVersions returns the versions of policy name, oldest first
// (at most MaxPolicyVersions: the operation has no paging).
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListPolicyVersions(ctx context.Context, scope Scope, name string) ([]PolicyVersion, error) {
	p, err := r.GetPolicy(ctx, scope, name)
	if err != nil {
		return nil, err
	}
	return p.Versions, nil
}

// SetDefaultPolicyVersion makes version id of policy name the one in
// effect. Setting the default version again changes nothing.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) SetDefaultPolicyVersion(ctx context.Context, scope Scope, name, id string) error {
	return r.changePolicyVersion(ctx, "SetDefaultPolicyVersion", scope, name, id, func(p *Policy, v *PolicyVersion) (bool, error) {
		if v.IsDefaultVersion {
			return false, nil
		}
		for i := range p.Versions {
			p.Versions[i].IsDefaultVersion = p.Versions[i].ID == id
		}
		return true, nil
	})
}

// changePolicyVersion checks name and id, reads policy name and its
// version id in an update, and saves the policy when change, given both,
// reports that it changed it.
func (r *Registry) changePolicyVersion(ctx context.Context, op string, scope Scope, name, id string, change func(*Policy, *PolicyVersion) (bool, error)) error {
	if err := CheckPolicyName("policyName", name); err != nil {
		return err
	}
	if err := checkPolicyVersionID(id); err != nil {
		return err
	}
	return r.update(ctx, op, func(tx Tx) error {
		p, err := loadPolicy(ctx, tx, scope, name)
		if err != nil {
			return err
		}
		v := p.versionByID(id)
		if v == nil {
			return versionNotFound(name, id)
		}
		if changed, err := change(p, v); err != nil || !changed {
			return err
		}
		return r.savePolicy(ctx, tx, p, r.now())
	})
}

// DeletePolicyVersion deletes version id of policy name. AWS IoT
// (DeletePolicyVersion): "You cannot delete the default version of a
// policy using this action."
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// DeleteConflictException.
func (r *Registry) DeletePolicyVersion(ctx context.Context, scope Scope, name, id string) error {
	return r.changePolicyVersion(ctx, "DeletePolicyVersion", scope, name, id, func(p *Policy, v *PolicyVersion) (bool, error) {
		if v.IsDefaultVersion {
			return false, Errorf(EDeleteConflict,
				"Cannot delete the default version of a policy (name=%s, version=%s); make another version the default first, or delete the policy.", name, id)
		}
		p.Versions = slices.DeleteFunc(p.Versions, func(v PolicyVersion) bool { return v.ID == id })
		return true, nil
	})
}

// PolicyTargetKind says what a policy is attached to.
type PolicyTargetKind string

// Policy target kinds: the identities fleetcert attaches policies to.
const (
	TargetCertificate PolicyTargetKind = "cert"
	TargetThingGroup  PolicyTargetKind = "thinggroup"
)

// PolicyTarget is a parsed policy target of the caller's scope.
type PolicyTarget struct {
	Kind PolicyTargetKind
	Name string // the certificate id or the thing group name
	ARN  string // canonical: the link's To
}

// ParsePolicyTarget reads a policy target (a certificate ARN or a thing
// group ARN) given in member. An ARN of another account or region names
// nothing the caller can see: it is not found, as one never registered.
//
// Errors: InvalidRequestException for anything but those two ARNs,
// ResourceNotFoundException for another scope's.
func ParsePolicyTarget(scope Scope, member, target string) (PolicyTarget, error) {
	refuse := Errorf(EInvalidRequest,
		"%s must be a certificate ARN (arn:aws:iot:%s:%s:cert/{certificateId}) or a thing group ARN (arn:aws:iot:%s:%s:thinggroup/{thingGroupName}); fleetcert has no other principals (no Amazon Cognito identities).",
		member, scope.Region, scope.AccountID, scope.Region, scope.AccountID)
	if target == "" {
		return PolicyTarget{}, missing(member)
	}
	parts := strings.SplitN(target, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" || parts[2] != "iot" {
		return PolicyTarget{}, refuse
	}
	region, account, resource := parts[3], parts[4], parts[5]
	kind, name, ok := strings.Cut(resource, "/")
	if !ok {
		return PolicyTarget{}, refuse
	}
	var t PolicyTarget
	switch PolicyTargetKind(kind) {
	case TargetCertificate:
		id, err := ParseCertificateID(member, name)
		if err != nil {
			return PolicyTarget{}, err
		}
		t = PolicyTarget{Kind: TargetCertificate, Name: id, ARN: CertificateARN(scope, id)}
		if region != scope.Region || account != scope.AccountID {
			return PolicyTarget{}, notFound(Errorf(EResourceNotFound, ""), id)
		}
	case TargetThingGroup:
		// AWS model: ThingGroupName is 1 to 128 characters of [a-zA-Z0-9:_-].
		if len(name) < 1 || len(name) > 128 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-") != "" {
			return PolicyTarget{}, refuse
		}
		t = PolicyTarget{Kind: TargetThingGroup, Name: name, ARN: ThingGroupARN(scope, name)}
		if region != scope.Region || account != scope.AccountID {
			return PolicyTarget{}, groupNotFound(name)
		}
	default:
		return PolicyTarget{}, refuse
	}
	return t, nil
}

// missing is the error for a required member left empty.
func missing(member string) error {
	return Errorf(EInvalidRequest,
		"1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
}

// checkTarget confirms that t exists in scope.
//
// Errors: ResourceNotFoundException.
func checkTarget(ctx context.Context, tx Tx, scope Scope, t PolicyTarget) error {
	var err error
	switch t.Kind {
	case TargetCertificate:
		_, err = tx.Certificate(ctx, scope, t.Name)
		err = notFound(err, t.Name)
	case TargetThingGroup:
		_, err = tx.Object(ctx, scope, ObjectThingGroup, t.Name)
		if ErrorCode(err) == EResourceNotFound {
			err = groupNotFound(t.Name)
		}
	}
	return err
}

// AttachPolicy attaches policy name to target (a certificate or thing
// group ARN of scope). Attaching it again changes nothing.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// LimitExceededException (MaxPoliciesPerTarget).
func (r *Registry) AttachPolicy(ctx context.Context, scope Scope, name, target string) error {
	return r.attachPolicy(ctx, "AttachPolicy", scope, name, "target", target)
}

// AttachPrincipalPolicy is AWS's deprecated form of AttachPolicy.
//
// Errors: AttachPolicy's.
func (r *Registry) AttachPrincipalPolicy(ctx context.Context, scope Scope, name, principal string) error {
	return r.attachPolicy(ctx, "AttachPrincipalPolicy", scope, name, "principal", principal)
}

// certificateOnly refuses a principal that is not a certificate ARN
// (TestAuthorization's principals are certificates and Cognito
// identities).
func certificateOnly(scope Scope, principal string) error {
	if principal == "" {
		return missing("principal")
	}
	if !strings.HasPrefix(principal, "arn:aws:iot:") || !strings.Contains(principal, ":cert/") {
		return Errorf(EInvalidRequest,
			"principal must be a certificate ARN (arn:aws:iot:%s:%s:cert/{certificateId}); fleetcert has no other principals (no Amazon Cognito identities).", scope.Region, scope.AccountID)
	}
	return nil
}

func (r *Registry) attachPolicy(ctx context.Context, op string, scope Scope, name, member, target string) error {
	if err := CheckPolicyName("policyName", name); err != nil {
		return err
	}
	t, err := ParsePolicyTarget(scope, member, target)
	if err != nil {
		return err
	}
	return r.update(ctx, op, func(tx Tx) error { return r.attachPolicyIn(ctx, tx, scope, name, t) })
}

// attachPolicyIn is the body of attachPolicy in tx.
func (r *Registry) attachPolicyIn(ctx context.Context, tx Tx, scope Scope, name string, t PolicyTarget) error {
	if _, err := loadPolicy(ctx, tx, scope, name); err != nil {
		return err
	}
	if err := checkTarget(ctx, tx, scope, t); err != nil {
		return err
	}
	_, err := tx.Link(ctx, scope, LinkPolicyTarget, name, t.ARN)
	if err == nil {
		return nil // attached already
	} else if ErrorCode(err) != EResourceNotFound {
		return err
	}
	attached, err := tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, To: t.ARN, Limit: MaxPoliciesPerTarget})
	if err != nil {
		return err
	}
	if len(attached) >= MaxPoliciesPerTarget {
		// https://docs.aws.amazon.com/general/latest/gr/iot-core.html:
		// at most 10 policies attached to a certificate.
		return Errorf(ELimitExceeded,
			"%s already has the maximum number of policies attached (%d); detach one first.", t.ARN, MaxPoliciesPerTarget)
	}
	return createLink(ctx, tx, &Link{Scope: scope, Kind: LinkPolicyTarget, From: name, To: t.ARN, CreationDate: r.now()})
}

// DetachPolicy detaches policy name from target. Detaching a policy that
// is not attached changes nothing.
//
// Errors: InvalidRequestException, ResourceNotFoundException (the policy).
func (r *Registry) DetachPolicy(ctx context.Context, scope Scope, name, target string) error {
	return r.detachPolicy(ctx, "DetachPolicy", scope, name, "target", target)
}

// DetachPrincipalPolicy is AWS's deprecated form of DetachPolicy.
//
// Errors: DetachPolicy's.
func (r *Registry) DetachPrincipalPolicy(ctx context.Context, scope Scope, name, principal string) error {
	return r.detachPolicy(ctx, "DetachPrincipalPolicy", scope, name, "principal", principal)
}

func (r *Registry) detachPolicy(ctx context.Context, op string, scope Scope, name, member, target string) error {
	if err := CheckPolicyName("policyName", name); err != nil {
		return err
	}
	t, err := ParsePolicyTarget(scope, member, target)
	if err != nil {
		return err
	}
	return r.update(ctx, op, func(tx Tx) error {
		if _, err := loadPolicy(ctx, tx, scope, name); err != nil {
			return err
		}
		err := deleteLink(ctx, tx, scope, LinkPolicyTarget, name, t.ARN, r.now())
		if ErrorCode(err) == EResourceNotFound {
			return nil // not attached: nothing to do
		}
		return err
	})
}

// ListAttachedPolicies returns a page of the policies attached to target
// (a certificate or thing group ARN), in ascending name order; with
// recursive, for a thing group, also those attached to its ancestors
// (AWS IoT: "You can attach a policy to a parent group and it is inherited
// by its child groups",
// https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html).
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListAttachedPolicies(ctx context.Context, scope Scope, target string, recursive bool, opts ListOptions) (*PolicyPage, error) {
	t, err := ParsePolicyTarget(scope, "target", target)
	if err != nil {
		return nil, err
	}
	return r.listAttached(ctx, scope, t, recursive, opts)
}

// ListPrincipalPolicies returns a page of the policies attached to
// principal (AWS's deprecated form of ListAttachedPolicies, not
// recursive), in ascending name order: opts.Ascending is accepted and
// ignored, as by ListPolicies.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListPrincipalPolicies(ctx context.Context, scope Scope, principal string, opts ListOptions) (*PolicyPage, error) {
	t, err := ParsePolicyTarget(scope, "principal", principal)
	if err != nil {
		return nil, err
	}
	return r.listAttached(ctx, scope, t, false, opts)
}

func (r *Registry) listAttached(ctx context.Context, scope Scope, t PolicyTarget, recursive bool, opts ListOptions) (*PolicyPage, error) {
	size, err := checkPageSize(opts.PageSize)
	if err != nil {
		return nil, err
	}
	after, err := decodeKeyMarker(opts.Marker)
	if err != nil {
		return nil, err
	}
	var names []string
	err = r.Store.View(ctx, func(tx Tx) (err error) {
		names, err = r.listAttachedIn(ctx, tx, scope, t, recursive)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The attachments of a target are few (MaxPoliciesPerTarget each, a
	// group hierarchy at most 7 deep): page them in memory.
	if after != "" {
		i, _ := slices.BinarySearch(names, after)
		for i < len(names) && names[i] <= after {
			i++
		}
		names = names[i:]
	}
	page := &PolicyPage{}
	if len(names) > size {
		names = names[:size]
		page.NextMarker = encodeKeyMarker(names[size-1])
	}
	for _, n := range names {
		page.Policies = append(page.Policies, &Policy{Scope: scope, Name: n})
	}
	return page, nil
}

// listAttachedIn returns the names of the policies attached to t, and
// with recursive to a thing group's ancestors, sorted, each once.
//
// Errors: ResourceNotFoundException (t).
func (r *Registry) listAttachedIn(ctx context.Context, tx Tx, scope Scope, t PolicyTarget, recursive bool) ([]string, error) {
	if err := checkTarget(ctx, tx, scope, t); err != nil {
		return nil, err
	}
	targets := []string{t.ARN}
	if recursive && t.Kind == TargetThingGroup {
		chain, err := r.ancestors(ctx, tx, scope, t.Name)
		if err != nil {
			return nil, err
		}
		for _, g := range chain[1:] {
			targets = append(targets, ThingGroupARN(scope, g))
		}
	}
	var names []string
	for _, to := range targets {
		links, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, To: to})
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			names = append(names, l.From)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// TargetPage is one page of ListTargetsForPolicy.
type TargetPage struct {
	Targets    []string // ARNs
	NextMarker string
}

// ListTargetsForPolicy returns a page of the targets (ARNs) policy name
// is attached to, in ascending order.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListTargetsForPolicy(ctx context.Context, scope Scope, name string, opts ListOptions) (*TargetPage, error) {
	if err := CheckPolicyName("policyName", name); err != nil {
		return nil, err
	}
	size, err := checkPageSize(opts.PageSize)
	if err != nil {
		return nil, err
	}
	after, err := decodeKeyMarker(opts.Marker)
	if err != nil {
		return nil, err
	}
	var links []*Link
	err = r.Store.View(ctx, func(tx Tx) (err error) {
		if _, err := loadPolicy(ctx, tx, scope, name); err != nil {
			return err
		}
		links, err = tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, From: name, After: after, Limit: size + 1})
		return err
	})
	if err != nil {
		return nil, err
	}
	page := &TargetPage{}
	if len(links) > size {
		links = links[:size]
		page.NextMarker = encodeKeyMarker(links[size-1].To)
	}
	for _, l := range links {
		page.Targets = append(page.Targets, l.To)
	}
	return page, nil
}

// keyMarkerVersion prefixes markers that hold a name (listings in name
// order), distinct from the (time, seq) markers of list.go.
const keyMarkerVersion = 0x10

// encodeKeyMarker returns the marker of a listing in key order resuming
// after key: standard base64, as the model's Marker pattern requires.
func encodeKeyMarker(key string) string {
	return base64.StdEncoding.EncodeToString(append([]byte{keyMarkerVersion}, key...))
}

// decodeKeyMarker parses a marker made by encodeKeyMarker ("" for none).
//
// Errors: InvalidRequestException.
func decodeKeyMarker(m string) (string, error) {
	if m == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(m)
	if err != nil || len(b) < 2 || b[0] != keyMarkerVersion || len(m) > 1024 || base64.StdEncoding.EncodeToString(b) != m {
		return "", Errorf(EInvalidRequest, "The marker is not valid; pass the nextMarker of a previous response.")
	}
	return string(b[1:]), nil
}
