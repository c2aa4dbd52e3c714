package fleetcert

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits of things, thing types and thing groups. The names' length and
// pattern and the attributes' are the AWS model's (ThingName,
// ThingTypeName, ThingGroupName, AttributeName, AttributeValue,
// ThingTypeDescription); the counts are AWS's documented quotas.
const (
	maxNameLength        = 128
	maxAttributeName     = 128
	maxAttributeValue    = 800
	maxDescriptionLength = 2028

	// AWS IoT: "Things with a thing type can have up to 50 attributes.
	// Things without a thing type can have up to three attributes."
	// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-types.html)
	MaxThingAttributes         = 3
	MaxThingAttributesWithType = 50

	// AWS IoT: "Only three searchable attributes are allowed for a thing
	// type." (CreateThingType's answer, quoted in
	// https://thingrex.com/aws_iot_thing_type)
	MaxSearchableAttributes = 3

	// AWS IoT: "You can add a thing to a maximum of 10 groups"
	// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html).
	MaxThingGroupsPerThing = 10

	// AWS IoT Core quotas, thing group limits: "Thing Group Hierarchy: The
	// maximum depth of a thing group hierarchy. 7"; "Maximum direct child
	// groups 100"; "Thing Group Attributes 50"
	// (https://docs.aws.amazon.com/iot/latest/developerguide/limits-iot.html).
	MaxThingGroupDepth      = 7
	MaxChildThingGroups     = 100
	MaxThingGroupAttributes = 50

	// MaxPrincipalsPerThing bounds the certificates attached to one thing.
	// AWS publishes no such number that we could find; fleetcert bounds it
	// so that a thing's principals fit one listing page.
	MaxPrincipalsPerThing = 250

	// ThingTypeDeleteDelay is how long a thing type must have been
	// deprecated before it can be deleted. AWS IoT: "Before you can delete
	// a thing type, wait for five minutes after you deprecate it."
	// (https://docs.aws.amazon.com/iot/latest/developerguide/delete-thing-types.html)
	ThingTypeDeleteDelay = 5 * time.Minute
)

var (
	namePattern           = regexp.MustCompile(`^[a-zA-Z0-9:_-]+$`)
	attributeNamePattern  = regexp.MustCompile(`^[a-zA-Z0-9_.,@/:#-]+$`)
	attributeValuePattern = regexp.MustCompile(`^[a-zA-Z0-9_.,@/:#=\[\]-]*$`)
	descriptionPattern    = regexp.MustCompile(`^[\x20-\x7e]*$`) // Java's \p{Graph} is ASCII 0x21–0x7e
)

// ThingPrincipalType is how a principal is attached to a thing
// (ThingPrincipalType in the AWS model).
type ThingPrincipalType string

// Thing principal types. A principal attached EXCLUSIVE_THING is attached
// to that thing only.
const (
	ExclusiveThing    ThingPrincipalType = "EXCLUSIVE_THING"
	NonExclusiveThing ThingPrincipalType = "NON_EXCLUSIVE_THING"
)

// Thing is a thing of the registry (DescribeThing's output in the AWS model).
type Thing struct {
	Scope
	Name       string
	ID         string // a UUID
	TypeName   string
	Attributes map[string]string
	Version    int64
}

// ARN returns the thing's ARN, arn:aws:iot:{region}:{account}:thing/{name}.
func (t *Thing) ARN() string { return ThingARN(t.Scope, t.Name) }

// ThingARN returns the ARN of thing name in scope.
func ThingARN(s Scope, name string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:thing/%s", s.Region, s.AccountID, name)
}

// ThingType is a thing type (ThingTypeDefinition in the AWS model).
type ThingType struct {
	Scope
	Name                 string
	ID                   string
	Description          string
	SearchableAttributes []string
	Deprecated           bool
	DeprecationDate      time.Time
	CreationDate         time.Time
}

// ARN returns the thing type's ARN.
func (t *ThingType) ARN() string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:thingtype/%s", t.Region, t.AccountID, t.Name)
}

// ThingGroup is a static thing group (DescribeThingGroup's output).
type ThingGroup struct {
	Scope
	Name         string
	ID           string
	ParentName   string
	Description  string
	Attributes   map[string]string
	Version      int64
	CreationDate time.Time
	// RootToParent names the group's ancestors, the root first; filled by
	// DescribeThingGroup.
	RootToParent []string
}

// ARN returns the thing group's ARN.
func (g *ThingGroup) ARN() string { return ThingGroupARN(g.Scope, g.Name) }

// ThingGroupARN returns the ARN of thing group name in scope.
func ThingGroupARN(s Scope, name string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:thinggroup/%s", s.Region, s.AccountID, name)
}

// AttributePayload is a set of attributes to set (AttributePayload in the
// AWS model). With Merge, UpdateThing and UpdateThingGroup merge them into
// the stored ones; an empty value removes an attribute.
type AttributePayload struct {
	Attributes map[string]string
	Merge      bool
}

// ThingPrincipal is a principal attached to a thing, and how.
type ThingPrincipal struct {
	ThingName string
	Principal string // a certificate ARN
	Type      ThingPrincipalType
}

// Page options and results of the registry's listings (things, groups,
// principals): nextToken and maxResults in the AWS model.
type RegistryListOptions struct {
	NextToken  string
	MaxResults *int // nil means DefaultPageSize; 1–250 (RegistryMaxResults)
}

// Bodies stored in Object.Body.
type thingBody struct {
	ID         string            `json:"id"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

type thingTypeBody struct {
	ID                   string    `json:"id"`
	Description          string    `json:"description,omitempty"`
	SearchableAttributes []string  `json:"searchableAttributes,omitempty"`
	Deprecated           bool      `json:"deprecated,omitempty"`
	DeprecationDate      time.Time `json:"deprecationDate,omitzero"`
}

type thingGroupBody struct {
	ID          string            `json:"id"`
	Description string            `json:"description,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
}

type thingPrincipalBody struct {
	Type ThingPrincipalType `json:"type"`
}

// CheckName validates a thing, thing type or thing group name given as
// member.
//
// Errors: InvalidRequestException.
func CheckName(member, name string) error {
	switch {
	case len(name) < 1:
		return validation(name, member, "Member must have length greater than or equal to 1")
	case len(name) > maxNameLength:
		return validation(name, member, "Member must have length less than or equal to 128")
	case !namePattern.MatchString(name):
		return validation(name, member, "Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+")
	}
	return nil
}

func validation(value, member, constraint string) error {
	if len(value) > 256 {
		value = value[:256] + "…"
	}
	return Errorf(EInvalidRequest, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, member, constraint)
}

// checkAttributes validates attribute names and values (empty values
// allowed: they remove an attribute in a merge).
func checkAttributes(member string, attrs map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		switch {
		case len(k) > maxAttributeName:
			return validation(k, member+".attributes", "Member must have length less than or equal to 128")
		case !attributeNamePattern.MatchString(k):
			return validation(k, member+".attributes", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.,@/:#-]+")
		case len(v) > maxAttributeValue:
			return validation(v, member+".attributes."+k, "Member must have length less than or equal to 800")
		case !attributeValuePattern.MatchString(v):
			return validation(v, member+".attributes."+k, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.,@/:#=\\[\\]-]*")
		}
	}
	return nil
}

func checkDescription(member, d string) error {
	if len(d) > maxDescriptionLength {
		return validation(d, member, "Member must have length less than or equal to 2028")
	}
	if !descriptionPattern.MatchString(d) {
		return validation(d, member, "Member must satisfy regular expression pattern: [\\p{Graph}\\x20]*")
	}
	return nil
}

// applyAttributes returns stored updated by p: replaced, or merged with
// p.Merge. Empty values are dropped either way: AWS IoT (AttributePayload):
// "To remove an attribute, call UpdateThing with an empty attribute value."
func applyAttributes(stored map[string]string, p *AttributePayload) map[string]string {
	out := map[string]string{}
	if p.Merge {
		maps.Copy(out, stored)
	}
	for k, v := range p.Attributes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func checkAttributeCount(n int, typed bool) error {
	if typed && n > MaxThingAttributesWithType {
		return Errorf(EInvalidRequest, "A thing with a thing type can have at most %d attributes; this one would have %d.", MaxThingAttributesWithType, n)
	}
	if !typed && n > MaxThingAttributes {
		return Errorf(EInvalidRequest, "A thing without a thing type can have at most %d attributes; this one would have %d. Give it a thing type for up to %d.", MaxThingAttributes, n, MaxThingAttributesWithType)
	}
	return nil
}

// objectChange records a change to object (kind, name) of scope.
func objectChange(kind ChangeKind, scope Scope, okind ObjectKind, name string, now time.Time) *Change {
	return &Change{Kind: kind, Scope: scope, Resource: string(okind) + "/" + name, Time: now}
}

// linkChange records a change to link l.
func linkChange(kind ChangeKind, scope Scope, lkind LinkKind, from, to string, now time.Time) *Change {
	return &Change{Kind: kind, Scope: scope, Resource: string(lkind) + "/" + from, Target: to, Time: now}
}

// createLink stores a link and records it in the change feed.
func createLink(ctx context.Context, tx Tx, l *Link) error {
	if err := tx.CreateLink(ctx, l); err != nil {
		return err
	}
	return tx.AppendChange(ctx, linkChange(ChangeLinkCreated, l.Scope, l.Kind, l.From, l.To, l.CreationDate))
}

// deleteLink removes a link and records it in the change feed.
func deleteLink(ctx context.Context, tx Tx, scope Scope, kind LinkKind, from, to string, now time.Time) error {
	if err := tx.DeleteLink(ctx, scope, kind, from, to); err != nil {
		return err
	}
	return tx.AppendChange(ctx, linkChange(ChangeLinkDeleted, scope, kind, from, to, now))
}

// allLinks returns every link of q (q.Limit is the batch size).
func allLinks(ctx context.Context, tx Tx, q LinkQuery) ([]*Link, error) {
	var all []*Link
	q.Limit = MaxPageSize
	for {
		links, err := tx.ListLinks(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, links...)
		if len(links) < q.Limit || (q.From == "" && q.To == "") {
			return all, nil
		}
		if q.From != "" {
			q.After = links[len(links)-1].To
		} else {
			q.After = links[len(links)-1].From
		}
	}
}

// allObjects returns every object of q.
func allObjects(ctx context.Context, tx Tx, q ObjectQuery) ([]*Object, error) {
	var all []*Object
	q.Limit = MaxPageSize
	for {
		objs, err := tx.ListObjects(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, objs...)
		if len(objs) < q.Limit {
			return all, nil
		}
		q.After = objs[len(objs)-1].Name
	}
}

// Registry pagination: a token is the name (or ARN) of the last item of
// the previous page, opaque to the caller.
const tokenPrefix = "fc1:"

func encodeToken(last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + last))
}

func decodeToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), tokenPrefix) || len(b) == len(tokenPrefix) {
		return "", Errorf(EInvalidRequest, "The nextToken is not valid; pass the nextToken of a previous response.")
	}
	return string(b[len(tokenPrefix):]), nil
}

func checkMaxResults(n *int) (int, error) {
	if n == nil {
		return DefaultPageSize, nil
	}
	if *n < 1 || *n > MaxPageSize {
		return 0, Errorf(EInvalidRequest,
			"1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and %d", *n, MaxPageSize)
	}
	return *n, nil
}

// scan reads one page of up to size items after the token's position:
// read returns items (sorted by key) after a key, up to a limit, and an
// item is kept when keep says so. It returns the page and the next token.
func scan[T any](opts RegistryListOptions, key func(T) string, keep func(T) bool,
	read func(after string, limit int) ([]T, error)) ([]T, string, error) {
	size, err := checkMaxResults(opts.MaxResults)
	if err != nil {
		return nil, "", err
	}
	after, err := decodeToken(opts.NextToken)
	if err != nil {
		return nil, "", err
	}
	var page []T
	for {
		batch, err := read(after, MaxPageSize)
		if err != nil {
			return nil, "", err
		}
		for _, it := range batch {
			if keep != nil && !keep(it) {
				continue
			}
			if len(page) == size {
				return page, encodeToken(key(page[size-1])), nil
			}
			page = append(page, it)
		}
		if len(batch) < MaxPageSize {
			return page, "", nil
		}
		after = key(batch[len(batch)-1])
	}
}

// pageOf pages a sorted, deduplicated slice of names.
func pageOf(names []string, opts RegistryListOptions) ([]string, string, error) {
	return scan(opts, func(s string) string { return s }, nil, func(after string, limit int) ([]string, error) {
		i, _ := slices.BinarySearch(names, after)
		if i < len(names) && names[i] == after {
			i++
		}
		if after == "" {
			i = 0
		}
		return names[i:min(len(names), i+limit)], nil
	})
}

// Things

// CreateThingInput is the input of CreateThing.
type CreateThingInput struct {
	Name             string
	TypeName         string
	AttributePayload *AttributePayload
	BillingGroupName string
}

// CreateThing creates a thing. Creating it again with the same type and
// attributes is a success that returns the existing thing, as on AWS.
//
// Errors: InvalidRequestException, ResourceNotFoundException (the thing
// type), ResourceAlreadyExistsException (same name, other configuration).
func (r *Registry) CreateThing(ctx context.Context, scope Scope, in CreateThingInput) (*Thing, error) {
	var t *Thing
	err := r.update(ctx, "CreateThing", func(tx Tx) (err error) {
		t, err = r.createThingIn(ctx, tx, scope, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// createThingIn is CreateThing in tx.
func (r *Registry) createThingIn(ctx context.Context, tx Tx, scope Scope, in CreateThingInput) (*Thing, error) {
	if err := CheckName("thingName", in.Name); err != nil {
		return nil, err
	}
	if in.TypeName != "" {
		if err := CheckName("thingTypeName", in.TypeName); err != nil {
			return nil, err
		}
	}
	if in.BillingGroupName != "" {
		return nil, Errorf(EInvalidRequest, "fleetcert does not support billing groups; create the thing without billingGroupName.")
	}
	var attrs map[string]string
	if in.AttributePayload != nil {
		if err := checkAttributes("attributePayload", in.AttributePayload.Attributes); err != nil {
			return nil, err
		}
		attrs = applyAttributes(nil, &AttributePayload{Attributes: in.AttributePayload.Attributes})
	}
	if err := checkAttributeCount(len(attrs), in.TypeName != ""); err != nil {
		return nil, err
	}
	if in.TypeName != "" {
		tt, err := r.thingType(ctx, tx, scope, in.TypeName)
		if err != nil {
			return nil, err
		}
		if tt.Deprecated {
			// AWS IoT (DeprecateThingType): "You can not associate new
			// things with deprecated thing type."
			return nil, Errorf(EInvalidRequest, "Can not create new thing with deprecated thing type:%s", in.TypeName)
		}
	}
	old, err := r.thing(ctx, tx, scope, in.Name)
	if err == nil {
		// AWS IoT (CreateThing): "If this call is made multiple times
		// using the same thing name and configuration, the call will
		// succeed. If this call is made with the same thing name but
		// different configuration a ResourceAlreadyExistsException is
		// thrown."
		if old.TypeName == in.TypeName && maps.Equal(old.Attributes, attrs) {
			return old, nil
		}
		return nil, &Error{Code: EResourceAlreadyExists,
			Message:    fmt.Sprintf("Thing %s already exists with different tags or attributes.", in.Name),
			ResourceID: old.ID, ResourceARN: old.ARN()}
	} else if ErrorCode(err) != EResourceNotFound {
		return nil, err
	}
	t := &Thing{Scope: scope, Name: in.Name, ID: newGenerationID(), TypeName: in.TypeName, Attributes: attrs}
	body, err := json.Marshal(thingBody{ID: t.ID, Attributes: attrs})
	if err != nil {
		return nil, err
	}
	now := r.now()
	o := &Object{Scope: scope, Kind: ObjectThing, Name: in.Name, Label: in.TypeName, Body: body,
		CreationDate: now, LastModifiedDate: now}
	if err := tx.CreateObject(ctx, o); err != nil {
		return nil, err
	}
	t.Version = o.Version
	return t, tx.AppendChange(ctx, objectChange(ChangeObjectCreated, scope, ObjectThing, in.Name, now))
}

func thingNotFound(name string) error {
	return Errorf(EResourceNotFound, "Thing %s cannot be found.", name)
}

// thing reads thing name.
func (r *Registry) thing(ctx context.Context, tx Tx, scope Scope, name string) (*Thing, error) {
	o, err := tx.Object(ctx, scope, ObjectThing, name)
	if ErrorCode(err) == EResourceNotFound {
		return nil, thingNotFound(name)
	} else if err != nil {
		return nil, err
	}
	return decodeThing(o)
}

func decodeThing(o *Object) (*Thing, error) {
	var b thingBody
	if err := json.Unmarshal(o.Body, &b); err != nil {
		return nil, fmt.Errorf("thing %s: %w", o.Name, err)
	}
	return &Thing{Scope: o.Scope, Name: o.Name, ID: b.ID, TypeName: o.Label, Attributes: b.Attributes, Version: o.Version}, nil
}

// DescribeThing returns thing name.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DescribeThing(ctx context.Context, scope Scope, name string) (*Thing, error) {
	if err := CheckName("thingName", name); err != nil {
		return nil, err
	}
	var t *Thing
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		t, err = r.thing(ctx, tx, scope, name)
		return err
	})
	return t, err
}

// UpdateThingInput is the input of UpdateThing.
type UpdateThingInput struct {
	Name             string
	TypeName         string
	RemoveThingType  bool
	AttributePayload *AttributePayload
	ExpectedVersion  *int64
}

// UpdateThing changes a thing's type and attributes.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// VersionConflictException.
func (r *Registry) UpdateThing(ctx context.Context, scope Scope, in UpdateThingInput) error {
	return r.update(ctx, "UpdateThing", func(tx Tx) error { return r.updateThingIn(ctx, tx, scope, in) })
}

// updateThingIn is UpdateThing in tx.
func (r *Registry) updateThingIn(ctx context.Context, tx Tx, scope Scope, in UpdateThingInput) error {
	if err := CheckName("thingName", in.Name); err != nil {
		return err
	}
	if in.TypeName != "" {
		if err := CheckName("thingTypeName", in.TypeName); err != nil {
			return err
		}
		if in.RemoveThingType {
			return Errorf(EInvalidRequest, "Give either thingTypeName or removeThingType, not both.")
		}
	}
	if in.AttributePayload != nil {
		if err := checkAttributes("attributePayload", in.AttributePayload.Attributes); err != nil {
			return err
		}
	}
	o, err := tx.Object(ctx, scope, ObjectThing, in.Name)
	if ErrorCode(err) == EResourceNotFound {
		return thingNotFound(in.Name)
	} else if err != nil {
		return err
	}
	t, err := decodeThing(o)
	if err != nil {
		return err
	}
	if in.ExpectedVersion != nil && *in.ExpectedVersion != t.Version {
		// AWS IoT (UpdateThing expectedVersion): "If the version of the
		// record in the registry does not match the expected version
		// specified in the request, the UpdateThing request is rejected
		// with a VersionConflictException."
		return Errorf(EVersionConflict, "The version for thing %s does not match the expected version.", in.Name)
	}
	typeName := t.TypeName
	switch {
	case in.RemoveThingType:
		typeName = ""
	case in.TypeName != "" && in.TypeName != t.TypeName:
		tt, err := r.thingType(ctx, tx, scope, in.TypeName)
		if err != nil {
			return err
		}
		if tt.Deprecated {
			return Errorf(EInvalidRequest, "Can not associate thing %s with deprecated thing type:%s", in.Name, in.TypeName)
		}
		typeName = in.TypeName
	}
	attrs := t.Attributes
	if in.AttributePayload != nil {
		attrs = applyAttributes(t.Attributes, in.AttributePayload)
	}
	if err := checkAttributeCount(len(attrs), typeName != ""); err != nil {
		return err
	}
	body, err := json.Marshal(thingBody{ID: t.ID, Attributes: attrs})
	if err != nil {
		return err
	}
	now := r.now()
	o.Label, o.Body, o.LastModifiedDate = typeName, body, now
	if err := tx.UpdateObject(ctx, o); err != nil {
		return err
	}
	return tx.AppendChange(ctx, objectChange(ChangeObjectUpdated, scope, ObjectThing, in.Name, now))
}

// DeleteThing deletes a thing and its group memberships. A thing that does
// not exist is deleted already: AWS IoT (DeleteThing): "Returns
// successfully with no error if the deletion is successful or you specify a
// thing that doesn't exist."
//
// Errors: InvalidRequestException (principals still attached),
// VersionConflictException.
func (r *Registry) DeleteThing(ctx context.Context, scope Scope, name string, expectedVersion *int64) error {
	if err := CheckName("thingName", name); err != nil {
		return err
	}
	return r.update(ctx, "DeleteThing", func(tx Tx) error {
		t, err := r.thing(ctx, tx, scope, name)
		if ErrorCode(err) == EResourceNotFound {
			return nil
		} else if err != nil {
			return err
		}
		if expectedVersion != nil && *expectedVersion != t.Version {
			return Errorf(EVersionConflict, "The version for thing %s does not match the expected version.", name)
		}
		principals, err := tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingPrincipal, From: name, Limit: 1})
		if err != nil {
			return err
		}
		if len(principals) > 0 {
			// AWS's answer since 2019 (getmoto/moto#2586, #4616; quoted in
			// rebuy-de/aws-nuke#374): detach the principals first.
			return Errorf(EInvalidRequest, "Cannot delete. Thing %s is still attached to one or more principals", name)
		}
		now := r.now()
		groups, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingGroup, From: name})
		if err != nil {
			return err
		}
		for _, l := range groups {
			if err := deleteLink(ctx, tx, scope, LinkThingGroup, name, l.To, now); err != nil {
				return err
			}
		}
		if err := tx.DeleteObject(ctx, scope, ObjectThing, name); err != nil {
			return err
		}
		return tx.AppendChange(ctx, objectChange(ChangeObjectDeleted, scope, ObjectThing, name, now))
	})
}

// ThingFilter narrows ListThings.
type ThingFilter struct {
	// NamePrefix keeps the things whose name starts with it (the
	// console's search; AWS's ListThings has no such filter).
	NamePrefix              string
	AttributeName           string
	AttributeValue          string
	UsePrefixAttributeValue bool
	TypeName                string
}

// ThingPage is a page of things.
type ThingPage struct {
	Things    []*Thing
	NextToken string
}

// ListThings returns a page of the things of scope that match f, by name.
//
// Errors: InvalidRequestException.
func (r *Registry) ListThings(ctx context.Context, scope Scope, f ThingFilter, opts RegistryListOptions) (*ThingPage, error) {
	if f.TypeName != "" {
		if err := CheckName("thingTypeName", f.TypeName); err != nil {
			return nil, err
		}
	}
	if f.AttributeName != "" || f.AttributeValue != "" {
		if err := checkAttributes("", map[string]string{f.AttributeName: f.AttributeValue}); err != nil {
			return nil, err
		}
		if f.AttributeName == "" {
			return nil, Errorf(EInvalidRequest, "attributeValue needs attributeName.")
		}
	}
	if f.UsePrefixAttributeValue && f.AttributeValue == "" {
		return nil, Errorf(EInvalidRequest, "usePrefixAttributeValue needs attributeName and attributeValue.")
	}
	keep := func(t *Thing) bool {
		if f.AttributeName == "" {
			return true
		}
		v, ok := t.Attributes[f.AttributeName]
		switch {
		case !ok:
			return false
		case f.AttributeValue == "":
			return true
		case f.UsePrefixAttributeValue:
			return strings.HasPrefix(v, f.AttributeValue)
		}
		return v == f.AttributeValue
	}
	var things []*Thing
	var next string
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		things, next, err = scan(opts, func(t *Thing) string { return t.Name }, keep,
			func(after string, limit int) ([]*Thing, error) {
				objs, err := tx.ListObjects(ctx, ObjectQuery{Scope: scope, Kind: ObjectThing, Label: f.TypeName, NamePrefix: f.NamePrefix, After: after, Limit: limit})
				if err != nil {
					return nil, err
				}
				out := make([]*Thing, len(objs))
				for i, o := range objs {
					if out[i], err = decodeThing(o); err != nil {
						return nil, err
					}
				}
				return out, nil
			})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ThingPage{Things: things, NextToken: next}, nil
}

// Thing types

// CreateThingTypeInput is the input of CreateThingType.
type CreateThingTypeInput struct {
	Name                 string
	Description          string
	SearchableAttributes []string
}

// CreateThingType creates a thing type.
//
// Errors: InvalidRequestException, ResourceAlreadyExistsException.
func (r *Registry) CreateThingType(ctx context.Context, scope Scope, in CreateThingTypeInput) (*ThingType, error) {
	if err := CheckName("thingTypeName", in.Name); err != nil {
		return nil, err
	}
	if err := checkDescription("thingTypeProperties.thingTypeDescription", in.Description); err != nil {
		return nil, err
	}
	if len(in.SearchableAttributes) > MaxSearchableAttributes {
		return nil, Errorf(EInvalidRequest, "Only three searchable attributes are allowed for a thing type.")
	}
	for _, a := range in.SearchableAttributes {
		if err := checkAttributes("thingTypeProperties.searchableAttributes", map[string]string{a: ""}); err != nil {
			return nil, err
		}
	}
	now := r.now()
	tt := &ThingType{Scope: scope, Name: in.Name, ID: newGenerationID(), Description: in.Description,
		SearchableAttributes: in.SearchableAttributes, CreationDate: now}
	body, err := json.Marshal(thingTypeBody{ID: tt.ID, Description: tt.Description, SearchableAttributes: tt.SearchableAttributes})
	if err != nil {
		return nil, err
	}
	err = r.update(ctx, "CreateThingType", func(tx Tx) error {
		if err := tx.CreateObject(ctx, &Object{Scope: scope, Kind: ObjectThingType, Name: in.Name, Body: body,
			CreationDate: now, LastModifiedDate: now}); err != nil {
			return err
		}
		return tx.AppendChange(ctx, objectChange(ChangeObjectCreated, scope, ObjectThingType, in.Name, now))
	})
	if ErrorCode(err) == EResourceAlreadyExists {
		return nil, &Error{Code: EResourceAlreadyExists, Message: fmt.Sprintf("Thing Type %s already exists.", in.Name),
			ResourceARN: tt.ARN()}
	}
	if err != nil {
		return nil, err
	}
	return tt, nil
}

func (r *Registry) thingType(ctx context.Context, tx Tx, scope Scope, name string) (*ThingType, error) {
	o, err := tx.Object(ctx, scope, ObjectThingType, name)
	if ErrorCode(err) == EResourceNotFound {
		return nil, Errorf(EResourceNotFound, "Thing Type %s cannot be found.", name)
	} else if err != nil {
		return nil, err
	}
	return decodeThingType(o)
}

func decodeThingType(o *Object) (*ThingType, error) {
	var b thingTypeBody
	if err := json.Unmarshal(o.Body, &b); err != nil {
		return nil, fmt.Errorf("thing type %s: %w", o.Name, err)
	}
	return &ThingType{Scope: o.Scope, Name: o.Name, ID: b.ID, Description: b.Description,
		SearchableAttributes: b.SearchableAttributes, Deprecated: b.Deprecated,
		DeprecationDate: b.DeprecationDate, CreationDate: o.CreationDate}, nil
}

// DescribeThingType returns thing type name.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DescribeThingType(ctx context.Context, scope Scope, name string) (*ThingType, error) {
	if err := CheckName("thingTypeName", name); err != nil {
		return nil, err
	}
	var tt *ThingType
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		tt, err = r.thingType(ctx, tx, scope, name)
		return err
	})
	return tt, err
}

// ThingTypePage is a page of thing types.
type ThingTypePage struct {
	ThingTypes []*ThingType
	NextToken  string
}

// ListThingTypes returns a page of the thing types of scope by name; with
// name set, only that one.
//
// Errors: InvalidRequestException.
func (r *Registry) ListThingTypes(ctx context.Context, scope Scope, name string, opts RegistryListOptions) (*ThingTypePage, error) {
	if name != "" {
		if err := CheckName("thingTypeName", name); err != nil {
			return nil, err
		}
	}
	var types []*ThingType
	var next string
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		types, next, err = scan(opts, func(t *ThingType) string { return t.Name },
			func(t *ThingType) bool { return name == "" || t.Name == name },
			func(after string, limit int) ([]*ThingType, error) {
				objs, err := tx.ListObjects(ctx, ObjectQuery{Scope: scope, Kind: ObjectThingType, NamePrefix: name, After: after, Limit: limit})
				if err != nil {
					return nil, err
				}
				out := make([]*ThingType, len(objs))
				for i, o := range objs {
					if out[i], err = decodeThingType(o); err != nil {
						return nil, err
					}
				}
				return out, nil
			})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ThingTypePage{ThingTypes: types, NextToken: next}, nil
}

// DeprecateThingType deprecates a thing type, or with undo makes it usable
// again. Deprecating a deprecated type keeps its deprecation date.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DeprecateThingType(ctx context.Context, scope Scope, name string, undo bool) error {
	if err := CheckName("thingTypeName", name); err != nil {
		return err
	}
	return r.update(ctx, "DeprecateThingType", func(tx Tx) error {
		o, err := tx.Object(ctx, scope, ObjectThingType, name)
		if ErrorCode(err) == EResourceNotFound {
			return Errorf(EResourceNotFound, "Thing Type %s cannot be found.", name)
		} else if err != nil {
			return err
		}
		tt, err := decodeThingType(o)
		if err != nil {
			return err
		}
		if tt.Deprecated == !undo {
			return nil
		}
		now := r.now()
		tt.Deprecated, tt.DeprecationDate = !undo, time.Time{}
		if !undo {
			tt.DeprecationDate = now
		}
		body, err := json.Marshal(thingTypeBody{ID: tt.ID, Description: tt.Description,
			SearchableAttributes: tt.SearchableAttributes, Deprecated: tt.Deprecated, DeprecationDate: tt.DeprecationDate})
		if err != nil {
			return err
		}
		o.Body, o.LastModifiedDate = body, now
		if err := tx.UpdateObject(ctx, o); err != nil {
			return err
		}
		return tx.AppendChange(ctx, objectChange(ChangeObjectUpdated, scope, ObjectThingType, name, now))
	})
}

// DeleteThingType deletes a thing type deprecated ThingTypeDeleteDelay ago
// or earlier, with no things of that type.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DeleteThingType(ctx context.Context, scope Scope, name string) error {
	if err := CheckName("thingTypeName", name); err != nil {
		return err
	}
	return r.update(ctx, "DeleteThingType", func(tx Tx) error {
		tt, err := r.thingType(ctx, tx, scope, name)
		if err != nil {
			return err
		}
		now := r.now()
		if !tt.Deprecated {
			// AWS IoT (delete-thing-types.md): "You can delete thing types
			// only after they have been deprecated."
			return Errorf(EInvalidRequest, "Thing type %s must be deprecated before it can be deleted; call DeprecateThingType, then wait %v.", name, ThingTypeDeleteDelay)
		}
		if wait := tt.DeprecationDate.Add(ThingTypeDeleteDelay).Sub(now); wait > 0 {
			return Errorf(EInvalidRequest, "Thing type %s was deprecated less than 5 minutes ago; it can be deleted in %v.", name, wait.Round(time.Second))
		}
		things, err := tx.ListObjects(ctx, ObjectQuery{Scope: scope, Kind: ObjectThing, Label: name, Limit: 1})
		if err != nil {
			return err
		}
		if len(things) > 0 {
			// AWS IoT (DeleteThingType): "You cannot delete a thing type if
			// it has things associated with it."
			return Errorf(EInvalidRequest, "Thing type %s cannot be deleted while things have it (%s, …); change their type with UpdateThing first.", name, things[0].Name)
		}
		if err := tx.DeleteObject(ctx, scope, ObjectThingType, name); err != nil {
			return err
		}
		return tx.AppendChange(ctx, objectChange(ChangeObjectDeleted, scope, ObjectThingType, name, now))
	})
}

// Thing groups

// CreateThingGroupInput is the input of CreateThingGroup.
type CreateThingGroupInput struct {
	Name             string
	ParentName       string
	Description      string
	AttributePayload *AttributePayload
}

func groupNotFound(name string) error {
	return Errorf(EResourceNotFound, "Thing Group %s cannot be found.", name)
}

func checkGroupAttributes(p *AttributePayload) (map[string]string, error) {
	if p == nil {
		return nil, nil
	}
	if err := checkAttributes("thingGroupProperties.attributePayload", p.Attributes); err != nil {
		return nil, err
	}
	return p.Attributes, nil
}

// CreateThingGroup creates a static thing group, under a parent group when
// in.ParentName is set. Creating it again with the same parent and
// properties returns the existing group.
//
// Errors: InvalidRequestException, ResourceNotFoundException (the parent),
// ResourceAlreadyExistsException.
func (r *Registry) CreateThingGroup(ctx context.Context, scope Scope, in CreateThingGroupInput) (*ThingGroup, error) {
	if err := CheckName("thingGroupName", in.Name); err != nil {
		return nil, err
	}
	if in.ParentName != "" {
		if err := CheckName("parentGroupName", in.ParentName); err != nil {
			return nil, err
		}
	}
	if err := checkDescription("thingGroupProperties.thingGroupDescription", in.Description); err != nil {
		return nil, err
	}
	attrs, err := checkGroupAttributes(in.AttributePayload)
	if err != nil {
		return nil, err
	}
	if in.AttributePayload != nil {
		attrs = applyAttributes(nil, &AttributePayload{Attributes: attrs})
	}
	if len(attrs) > MaxThingGroupAttributes {
		return nil, Errorf(EInvalidRequest, "A thing group can have at most %d attributes.", MaxThingGroupAttributes)
	}
	var g *ThingGroup
	err = r.update(ctx, "CreateThingGroup", func(tx Tx) error {
		if old, err := r.thingGroup(ctx, tx, scope, in.Name); err == nil {
			if old.ParentName == in.ParentName && old.Description == in.Description && maps.Equal(old.Attributes, attrs) {
				g = old
				return nil
			}
			return &Error{Code: EResourceAlreadyExists, Message: fmt.Sprintf("Thing Group %s already exists with different properties.", in.Name),
				ResourceID: old.ID, ResourceARN: old.ARN()}
		} else if ErrorCode(err) != EResourceNotFound {
			return err
		}
		if in.ParentName != "" {
			ancestors, err := r.ancestors(ctx, tx, scope, in.ParentName)
			if err != nil {
				return err
			}
			if len(ancestors)+1 > MaxThingGroupDepth {
				return Errorf(EInvalidRequest, "Thing group %s cannot be created under %s: a thing group hierarchy is at most %d deep.", in.Name, in.ParentName, MaxThingGroupDepth)
			}
			children, err := tx.ListObjects(ctx, ObjectQuery{Scope: scope, Kind: ObjectThingGroup, Label: in.ParentName, Limit: MaxChildThingGroups})
			if err != nil {
				return err
			}
			if len(children) >= MaxChildThingGroups {
				return Errorf(EInvalidRequest, "Thing group %s already has %d child groups, the most a group can have.", in.ParentName, MaxChildThingGroups)
			}
		}
		now := r.now()
		g = &ThingGroup{Scope: scope, Name: in.Name, ID: newGenerationID(), ParentName: in.ParentName,
			Description: in.Description, Attributes: attrs, CreationDate: now}
		body, err := json.Marshal(thingGroupBody{ID: g.ID, Description: g.Description, Attributes: attrs})
		if err != nil {
			return err
		}
		o := &Object{Scope: scope, Kind: ObjectThingGroup, Name: in.Name, Label: in.ParentName, Body: body,
			CreationDate: now, LastModifiedDate: now}
		if err := tx.CreateObject(ctx, o); err != nil {
			return err
		}
		g.Version = o.Version
		return tx.AppendChange(ctx, objectChange(ChangeObjectCreated, scope, ObjectThingGroup, in.Name, now))
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (r *Registry) thingGroup(ctx context.Context, tx Tx, scope Scope, name string) (*ThingGroup, error) {
	o, err := tx.Object(ctx, scope, ObjectThingGroup, name)
	if ErrorCode(err) == EResourceNotFound {
		return nil, groupNotFound(name)
	} else if err != nil {
		return nil, err
	}
	return decodeThingGroup(o)
}

func decodeThingGroup(o *Object) (*ThingGroup, error) {
	var b thingGroupBody
	if err := json.Unmarshal(o.Body, &b); err != nil {
		return nil, fmt.Errorf("thing group %s: %w", o.Name, err)
	}
	return &ThingGroup{Scope: o.Scope, Name: o.Name, ID: b.ID, ParentName: o.Label, Description: b.Description,
		Attributes: b.Attributes, Version: o.Version, CreationDate: o.CreationDate}, nil
}

// ancestors returns group name and its ancestors, name first.
func (r *Registry) ancestors(ctx context.Context, tx Tx, scope Scope, name string) ([]string, error) {
	var chain []string
	for name != "" {
		if len(chain) > MaxThingGroupDepth {
			return nil, fmt.Errorf("thing group %s: hierarchy deeper than %d", chain[0], MaxThingGroupDepth)
		}
		g, err := r.thingGroup(ctx, tx, scope, name)
		if err != nil {
			return nil, err
		}
		chain = append(chain, name)
		name = g.ParentName
	}
	return chain, nil
}

// descendants returns the names of the groups below name (all of them
// with recursive, else its direct children), sorted.
func (r *Registry) descendants(ctx context.Context, tx Tx, scope Scope, name string, recursive bool) ([]string, error) {
	var out []string
	level := []string{name}
	for depth := 0; len(level) > 0 && depth <= MaxThingGroupDepth; depth++ {
		var next []string
		for _, p := range level {
			children, err := allObjects(ctx, tx, ObjectQuery{Scope: scope, Kind: ObjectThingGroup, Label: p})
			if err != nil {
				return nil, err
			}
			for _, c := range children {
				next = append(next, c.Name)
			}
		}
		out = append(out, next...)
		if !recursive {
			break
		}
		level = next
	}
	slices.Sort(out)
	return out, nil
}

// DescribeThingGroup returns a thing group with its ancestors.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DescribeThingGroup(ctx context.Context, scope Scope, name string) (*ThingGroup, error) {
	if err := CheckName("thingGroupName", name); err != nil {
		return nil, err
	}
	var g *ThingGroup
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		if g, err = r.thingGroup(ctx, tx, scope, name); err != nil {
			return err
		}
		up, err := r.ancestors(ctx, tx, scope, g.ParentName)
		if err != nil {
			return err
		}
		slices.Reverse(up)
		g.RootToParent = up
		return nil
	})
	return g, err
}

// ThingGroupFilter narrows ListThingGroups.
type ThingGroupFilter struct {
	ParentGroup      string
	NamePrefixFilter string
	// Recursive, when set, says whether groups below ParentGroup's
	// children are listed too; without ParentGroup, false lists the root
	// groups only. Unset lists direct children, or every group.
	Recursive *bool
}

// NamePage is a page of names.
type NamePage struct {
	Names     []string
	NextToken string
}

// ListThingGroups returns a page of the thing group names of scope.
//
// Errors: InvalidRequestException, ResourceNotFoundException (the parent).
func (r *Registry) ListThingGroups(ctx context.Context, scope Scope, f ThingGroupFilter, opts RegistryListOptions) (*NamePage, error) {
	if f.ParentGroup != "" {
		if err := CheckName("parentGroup", f.ParentGroup); err != nil {
			return nil, err
		}
	}
	if f.NamePrefixFilter != "" {
		if err := CheckName("namePrefixFilter", f.NamePrefixFilter); err != nil {
			return nil, err
		}
	}
	recursive := f.Recursive != nil && *f.Recursive
	var page NamePage
	err := r.Store.View(ctx, func(tx Tx) error {
		var names []string
		switch {
		case f.ParentGroup != "":
			if _, err := r.thingGroup(ctx, tx, scope, f.ParentGroup); err != nil {
				return err
			}
			var err error
			if names, err = r.descendants(ctx, tx, scope, f.ParentGroup, recursive); err != nil {
				return err
			}
		default:
			q := ObjectQuery{Scope: scope, Kind: ObjectThingGroup, NamePrefix: f.NamePrefixFilter}
			objs, err := allObjects(ctx, tx, q)
			if err != nil {
				return err
			}
			for _, o := range objs {
				if f.Recursive != nil && !*f.Recursive && o.Label != "" {
					continue
				}
				names = append(names, o.Name)
			}
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, f.NamePrefixFilter) })
		var err error
		page.Names, page.NextToken, err = pageOf(names, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// UpdateThingGroupInput is the input of UpdateThingGroup.
type UpdateThingGroupInput struct {
	Name             string
	Description      *string
	AttributePayload *AttributePayload
	ExpectedVersion  *int64
}

// UpdateThingGroup changes a group's description and attributes and
// returns its new version.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// VersionConflictException.
func (r *Registry) UpdateThingGroup(ctx context.Context, scope Scope, in UpdateThingGroupInput) (int64, error) {
	if err := CheckName("thingGroupName", in.Name); err != nil {
		return 0, err
	}
	if in.Description != nil {
		if err := checkDescription("thingGroupProperties.thingGroupDescription", *in.Description); err != nil {
			return 0, err
		}
	}
	if _, err := checkGroupAttributes(in.AttributePayload); err != nil {
		return 0, err
	}
	var version int64
	err := r.update(ctx, "UpdateThingGroup", func(tx Tx) error {
		o, err := tx.Object(ctx, scope, ObjectThingGroup, in.Name)
		if ErrorCode(err) == EResourceNotFound {
			return groupNotFound(in.Name)
		} else if err != nil {
			return err
		}
		g, err := decodeThingGroup(o)
		if err != nil {
			return err
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != g.Version {
			return Errorf(EVersionConflict, "The version for thing group %s does not match the expected version.", in.Name)
		}
		if in.Description != nil {
			g.Description = *in.Description
		}
		if in.AttributePayload != nil {
			g.Attributes = applyAttributes(g.Attributes, in.AttributePayload)
		}
		if len(g.Attributes) > MaxThingGroupAttributes {
			return Errorf(EInvalidRequest, "A thing group can have at most %d attributes.", MaxThingGroupAttributes)
		}
		body, err := json.Marshal(thingGroupBody{ID: g.ID, Description: g.Description, Attributes: g.Attributes})
		if err != nil {
			return err
		}
		now := r.now()
		o.Body, o.LastModifiedDate = body, now
		if err := tx.UpdateObject(ctx, o); err != nil {
			return err
		}
		version = o.Version
		return tx.AppendChange(ctx, objectChange(ChangeObjectUpdated, scope, ObjectThingGroup, in.Name, now))
	})
	return version, err
}

// DeleteThingGroup deletes a thing group without child groups; its things
// leave it and its policy attachments go. A group that does not exist is
// deleted already, as on AWS (getmoto/moto#3367).
//
// Errors: InvalidRequestException (child groups), VersionConflictException.
func (r *Registry) DeleteThingGroup(ctx context.Context, scope Scope, name string, expectedVersion *int64) error {
	if err := CheckName("thingGroupName", name); err != nil {
		return err
	}
	return r.update(ctx, "DeleteThingGroup", func(tx Tx) error {
		g, err := r.thingGroup(ctx, tx, scope, name)
		if ErrorCode(err) == EResourceNotFound {
			return nil
		} else if err != nil {
			return err
		}
		if expectedVersion != nil && *expectedVersion != g.Version {
			return Errorf(EVersionConflict, "The version for thing group %s does not match the expected version.", name)
		}
		children, err := tx.ListObjects(ctx, ObjectQuery{Scope: scope, Kind: ObjectThingGroup, Label: name, Limit: 1})
		if err != nil {
			return err
		}
		if len(children) > 0 {
			// AWS IoT (thing-groups.html): "If you try to delete a thing
			// group that has child thing groups, you receive an error".
			return Errorf(EInvalidRequest, "Cannot delete thing group : %s when there are still child groups attached to it", name)
		}
		now := r.now()
		members, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingGroup, To: name})
		if err != nil {
			return err
		}
		for _, l := range members {
			if err := deleteLink(ctx, tx, scope, LinkThingGroup, l.From, name, now); err != nil {
				return err
			}
		}
		policies, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, To: g.ARN()})
		if err != nil {
			return err
		}
		for _, l := range policies {
			if err := deleteLink(ctx, tx, scope, LinkPolicyTarget, l.From, l.To, now); err != nil {
				return err
			}
		}
		if err := tx.DeleteObject(ctx, scope, ObjectThingGroup, name); err != nil {
			return err
		}
		return tx.AppendChange(ctx, objectChange(ChangeObjectDeleted, scope, ObjectThingGroup, name, now))
	})
}

// nameFromARN returns the name of a thing or thing group ARN of scope
// ("arn:aws:iot:{region}:{account}:{resource}/{name}"); another scope's ARN
// names nothing the caller can see (ResourceNotFoundException).
func nameFromARN(scope Scope, member, resource, arn string) (string, error) {
	prefix := fmt.Sprintf("arn:aws:iot:%s:%s:%s/", scope.Region, scope.AccountID, resource)
	if name, ok := strings.CutPrefix(arn, prefix); ok {
		return name, CheckName(member, name)
	}
	if strings.HasPrefix(arn, "arn:aws:iot:") && strings.Contains(arn, ":"+resource+"/") {
		return "", Errorf(EResourceNotFound, "%s does not exist.", arn)
	}
	return "", Errorf(EInvalidRequest, "%s is not a %s ARN.", arn, resource)
}

// ThingGroupMember names a thing and a group by name or ARN
// (AddThingToThingGroup's input).
type ThingGroupMember struct {
	GroupName, GroupARN string
	ThingName, ThingARN string
}

func (m ThingGroupMember) resolve(scope Scope) (group, thing string, err error) {
	switch {
	case m.GroupName != "":
		group, err = m.GroupName, CheckName("thingGroupName", m.GroupName)
	case m.GroupARN != "":
		group, err = nameFromARN(scope, "thingGroupArn", "thinggroup", m.GroupARN)
	default:
		err = Errorf(EInvalidRequest, "Give thingGroupName or thingGroupArn.")
	}
	if err != nil {
		return "", "", err
	}
	switch {
	case m.ThingName != "":
		thing, err = m.ThingName, CheckName("thingName", m.ThingName)
	case m.ThingARN != "":
		thing, err = nameFromARN(scope, "thingArn", "thing", m.ThingARN)
	default:
		err = Errorf(EInvalidRequest, "Give thingName or thingArn.")
	}
	return group, thing, err
}

// AddThingToThingGroup makes a thing a member of a static group. Adding it
// again changes nothing.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) AddThingToThingGroup(ctx context.Context, scope Scope, m ThingGroupMember) error {
	group, thing, err := m.resolve(scope)
	if err != nil {
		return err
	}
	return r.update(ctx, "AddThingToThingGroup", func(tx Tx) error { return r.addThingToGroupIn(ctx, tx, scope, group, thing) })
}

// addThingToGroupIn is the body of AddThingToThingGroup in tx.
func (r *Registry) addThingToGroupIn(ctx context.Context, tx Tx, scope Scope, group, thing string) error {
	if _, err := r.thing(ctx, tx, scope, thing); err != nil {
		return err
	}
	root, err := r.ancestors(ctx, tx, scope, group)
	if err != nil {
		return err
	}
	groups, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingGroup, From: thing})
	if err != nil {
		return err
	}
	for _, l := range groups {
		if l.To == group {
			return nil
		}
		// AWS IoT (thing-groups.html): "you can't add a thing to more
		// than one group in the same hierarchy".
		other, err := r.ancestors(ctx, tx, scope, l.To)
		if err != nil {
			return err
		}
		if other[len(other)-1] == root[len(root)-1] {
			return Errorf(EInvalidRequest, "Thing %s is already in thing group %s of the same hierarchy (root %s); a thing can be in one group of a hierarchy.", thing, l.To, root[len(root)-1])
		}
	}
	if len(groups) >= MaxThingGroupsPerThing {
		return Errorf(EInvalidRequest, "Thing %s is already in %d thing groups, the most a thing can be in.", thing, MaxThingGroupsPerThing)
	}
	return createLink(ctx, tx, &Link{Scope: scope, Kind: LinkThingGroup, From: thing, To: group, CreationDate: r.now()})
}

// RemoveThingFromThingGroup ends a thing's membership of a group; a thing
// that is not a member is removed already.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) RemoveThingFromThingGroup(ctx context.Context, scope Scope, m ThingGroupMember) error {
	group, thing, err := m.resolve(scope)
	if err != nil {
		return err
	}
	return r.update(ctx, "RemoveThingFromThingGroup", func(tx Tx) error { return r.removeThingFromGroupIn(ctx, tx, scope, group, thing) })
}

// removeThingFromGroupIn is the body of RemoveThingFromThingGroup in tx.
func (r *Registry) removeThingFromGroupIn(ctx context.Context, tx Tx, scope Scope, group, thing string) error {
	if _, err := r.thing(ctx, tx, scope, thing); err != nil {
		return err
	}
	if _, err := r.thingGroup(ctx, tx, scope, group); err != nil {
		return err
	}
	err := deleteLink(ctx, tx, scope, LinkThingGroup, thing, group, r.now())
	if ErrorCode(err) == EResourceNotFound {
		return nil
	}
	return err
}

// ListThingsInThingGroup returns a page of the names of a group's things,
// with recursive also those of the groups below it.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListThingsInThingGroup(ctx context.Context, scope Scope, group string, recursive bool, opts RegistryListOptions) (*NamePage, error) {
	if err := CheckName("thingGroupName", group); err != nil {
		return nil, err
	}
	var page NamePage
	err := r.Store.View(ctx, func(tx Tx) error {
		if _, err := r.thingGroup(ctx, tx, scope, group); err != nil {
			return err
		}
		groups := []string{group}
		if recursive {
			below, err := r.descendants(ctx, tx, scope, group, true)
			if err != nil {
				return err
			}
			groups = append(groups, below...)
		}
		var err error
		if len(groups) == 1 {
			var links []*Link
			links, page.NextToken, err = scan(opts, func(l *Link) string { return l.From }, nil,
				func(after string, limit int) ([]*Link, error) {
					return tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingGroup, To: group, After: after, Limit: limit})
				})
			for _, l := range links {
				page.Names = append(page.Names, l.From)
			}
			return err
		}
		var names []string
		for _, g := range groups {
			links, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingGroup, To: g})
			if err != nil {
				return err
			}
			for _, l := range links {
				names = append(names, l.From)
			}
		}
		slices.Sort(names)
		page.Names, page.NextToken, err = pageOf(slices.Compact(names), opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// ListThingGroupsForThing returns a page of the names of the groups a thing
// is a member of.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListThingGroupsForThing(ctx context.Context, scope Scope, thing string, opts RegistryListOptions) (*NamePage, error) {
	if err := CheckName("thingName", thing); err != nil {
		return nil, err
	}
	var page NamePage
	err := r.Store.View(ctx, func(tx Tx) error {
		if _, err := r.thing(ctx, tx, scope, thing); err != nil {
			return err
		}
		links, next, err := scan(opts, func(l *Link) string { return l.To }, nil,
			func(after string, limit int) ([]*Link, error) {
				return tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingGroup, From: thing, After: after, Limit: limit})
			})
		for _, l := range links {
			page.Names = append(page.Names, l.To)
		}
		page.NextToken = next
		return err
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// Thing principals

// cognitoID matches an Amazon Cognito identity id, {region}:{uuid}.
var cognitoID = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// principalCertificate checks that principal is the ARN of a client
// certificate of scope and returns its id.
func principalCertificate(ctx context.Context, tx Tx, scope Scope, principal string) (string, error) {
	if principal == "" {
		return "", Errorf(EInvalidRequest, "1 validation error detected: Value null at 'principal' failed to satisfy constraint: Member must not be null")
	}
	if cognitoID.MatchString(principal) {
		// AWS IoT also accepts Amazon Cognito identities as principals;
		// fleetcert has no Cognito.
		return "", Errorf(EInvalidRequest, "fleetcert supports certificate principals only; %s looks like an Amazon Cognito identity id. Pass a certificate ARN.", principal)
	}
	prefix := fmt.Sprintf("arn:aws:iot:%s:%s:cert/", scope.Region, scope.AccountID)
	id, ok := strings.CutPrefix(principal, prefix)
	if !ok {
		if strings.HasPrefix(principal, "arn:aws:iot:") && strings.Contains(principal, ":cert/") {
			// Another account's or Region's certificate does not exist for
			// this caller.
			return "", Errorf(EResourceNotFound, "The certificate %s does not exist.", principal)
		}
		return "", Errorf(EInvalidRequest, "The principal %q is not a certificate ARN (arn:aws:iot:%s:%s:cert/{certificateId}).", principal, scope.Region, scope.AccountID)
	}
	if _, err := ParseCertificateID("principal", id); err != nil || id != strings.ToLower(id) {
		return "", Errorf(EInvalidRequest, "The principal %q is not a certificate ARN: the certificate id is 64 lowercase hex digits.", principal)
	}
	if _, err := tx.Certificate(ctx, scope, id); err != nil {
		return "", notFound(err, id)
	}
	return id, nil
}

// AttachThingPrincipal attaches a certificate (by ARN) to a thing,
// NON_EXCLUSIVE_THING unless typ says otherwise. A principal attached
// EXCLUSIVE_THING is attached to no other thing: AWS IoT
// (ThingPrincipalType): "EXCLUSIVE_THING - Attaches the specified principal
// to the specified thing, exclusively. The thing will be the only thing
// that's attached to the principal." Attaching it again with another type
// changes the type, under the same rule.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) AttachThingPrincipal(ctx context.Context, scope Scope, thing, principal string, typ ThingPrincipalType) error {
	if err := CheckName("thingName", thing); err != nil {
		return err
	}
	switch typ {
	case "":
		typ = NonExclusiveThing
	case ExclusiveThing, NonExclusiveThing:
	default:
		return validation(string(typ), "thingPrincipalType", "Member must satisfy enum value set: [EXCLUSIVE_THING, NON_EXCLUSIVE_THING]")
	}
	return r.update(ctx, "AttachThingPrincipal", func(tx Tx) error { return r.attachThingPrincipalIn(ctx, tx, scope, thing, principal, typ) })
}

// attachThingPrincipalIn is the body of AttachThingPrincipal in tx.
func (r *Registry) attachThingPrincipalIn(ctx context.Context, tx Tx, scope Scope, thing, principal string, typ ThingPrincipalType) error {
	if _, err := r.thing(ctx, tx, scope, thing); err != nil {
		return err
	}
	if _, err := principalCertificate(ctx, tx, scope, principal); err != nil {
		return err
	}
	others, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingPrincipal, To: principal})
	if err != nil {
		return err
	}
	var existing *Link
	for _, l := range others {
		if l.From == thing {
			existing = l
			continue
		}
		if typ == ExclusiveThing {
			return Errorf(EInvalidRequest, "The principal %s is attached to thing %s; detach it from every other thing before attaching it EXCLUSIVE_THING.", principal, l.From)
		}
		if linkPrincipalType(l) == ExclusiveThing {
			return Errorf(EInvalidRequest, "The principal %s is attached exclusively to thing %s; it cannot be attached to another thing.", principal, l.From)
		}
	}
	now := r.now()
	if existing != nil {
		if linkPrincipalType(existing) == typ {
			return nil
		}
		if err := deleteLink(ctx, tx, scope, LinkThingPrincipal, thing, principal, now); err != nil {
			return err
		}
	} else {
		n, err := tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingPrincipal, From: thing, Limit: MaxPrincipalsPerThing})
		if err != nil {
			return err
		}
		if len(n) >= MaxPrincipalsPerThing {
			return Errorf(EInvalidRequest, "Thing %s already has %d principals, the most fleetcert attaches to a thing.", thing, MaxPrincipalsPerThing)
		}
	}
	body, err := json.Marshal(thingPrincipalBody{Type: typ})
	if err != nil {
		return err
	}
	return createLink(ctx, tx, &Link{Scope: scope, Kind: LinkThingPrincipal, From: thing, To: principal, Body: body, CreationDate: now})
}

func linkPrincipalType(l *Link) ThingPrincipalType {
	var b thingPrincipalBody
	if json.Unmarshal(l.Body, &b) != nil || b.Type == "" {
		return NonExclusiveThing
	}
	return b.Type
}

// DetachThingPrincipal detaches a certificate from a thing.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DetachThingPrincipal(ctx context.Context, scope Scope, thing, principal string) error {
	if err := CheckName("thingName", thing); err != nil {
		return err
	}
	return r.update(ctx, "DetachThingPrincipal", func(tx Tx) error {
		if _, err := r.thing(ctx, tx, scope, thing); err != nil {
			return err
		}
		if _, err := principalCertificate(ctx, tx, scope, principal); err != nil {
			return err
		}
		err := deleteLink(ctx, tx, scope, LinkThingPrincipal, thing, principal, r.now())
		if ErrorCode(err) == EResourceNotFound {
			return Errorf(EResourceNotFound, "The principal %s is not attached to thing %s.", principal, thing)
		}
		return err
	})
}

// ThingPrincipalPage is a page of thing–principal attachments.
type ThingPrincipalPage struct {
	Principals []ThingPrincipal
	NextToken  string
}

// ListThingPrincipals returns a page of the principals attached to a
// thing, by ARN; with typ set, only those attached so.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListThingPrincipals(ctx context.Context, scope Scope, thing string, typ ThingPrincipalType, opts RegistryListOptions) (*ThingPrincipalPage, error) {
	if err := CheckName("thingName", thing); err != nil {
		return nil, err
	}
	if err := checkPrincipalTypeFilter(typ); err != nil {
		return nil, err
	}
	var page ThingPrincipalPage
	err := r.Store.View(ctx, func(tx Tx) error {
		if _, err := r.thing(ctx, tx, scope, thing); err != nil {
			return err
		}
		links, next, err := scan(opts, func(l *Link) string { return l.To },
			func(l *Link) bool { return typ == "" || linkPrincipalType(l) == typ },
			func(after string, limit int) ([]*Link, error) {
				return tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingPrincipal, From: thing, After: after, Limit: limit})
			})
		for _, l := range links {
			page.Principals = append(page.Principals, ThingPrincipal{ThingName: thing, Principal: l.To, Type: linkPrincipalType(l)})
		}
		page.NextToken = next
		return err
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

func checkPrincipalTypeFilter(typ ThingPrincipalType) error {
	switch typ {
	case "", ExclusiveThing, NonExclusiveThing:
		return nil
	}
	return validation(string(typ), "thingPrincipalType", "Member must satisfy enum value set: [EXCLUSIVE_THING, NON_EXCLUSIVE_THING]")
}

// ListPrincipalThings returns a page of the things a certificate (by ARN)
// is attached to, by name; with typ set, only those attached so.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) ListPrincipalThings(ctx context.Context, scope Scope, principal string, typ ThingPrincipalType, opts RegistryListOptions) (*ThingPrincipalPage, error) {
	if err := checkPrincipalTypeFilter(typ); err != nil {
		return nil, err
	}
	var page ThingPrincipalPage
	err := r.Store.View(ctx, func(tx Tx) error {
		if _, err := principalCertificate(ctx, tx, scope, principal); err != nil {
			return err
		}
		links, next, err := scan(opts, func(l *Link) string { return l.From },
			func(l *Link) bool { return typ == "" || linkPrincipalType(l) == typ },
			func(after string, limit int) ([]*Link, error) {
				return tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingPrincipal, To: principal, After: after, Limit: limit})
			})
		for _, l := range links {
			page.Principals = append(page.Principals, ThingPrincipal{ThingName: l.From, Principal: principal, Type: linkPrincipalType(l)})
		}
		page.NextToken = next
		return err
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// Certificates and their attachments

// checkCertificateAttachments applies AWS's rule for deleting a certificate
// with attachments and removes its policy attachments when force allows.
// AWS IoT (DeleteCertificate): "A certificate cannot be deleted if it has
// a policy or IoT thing attached to it"; forceDelete "Forces the deletion
// of a certificate if it is inactive and is not attached to an IoT thing":
// policies are detached, a thing still conflicts. The messages are AWS's
// (as moto reproduces them, getmoto/moto moto/iot/models.py).
func (r *Registry) checkCertificateAttachments(ctx context.Context, tx Tx, scope Scope, id string, force bool, now time.Time) error {
	arn := CertificateARN(scope, id)
	things, err := tx.ListLinks(ctx, LinkQuery{Scope: scope, Kind: LinkThingPrincipal, To: arn, Limit: 1})
	if err != nil {
		return err
	}
	if len(things) > 0 {
		return Errorf(EDeleteConflict, "Things must be detached before deletion (arn: %s)", arn)
	}
	policies, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkPolicyTarget, To: arn})
	if err != nil {
		return err
	}
	if len(policies) > 0 && !force {
		return Errorf(EDeleteConflict, "Certificate policies must be detached before deletion (arn: %s)", arn)
	}
	for _, l := range policies {
		if err := deleteLink(ctx, tx, scope, LinkPolicyTarget, l.From, arn, now); err != nil {
			return err
		}
	}
	return nil
}

// detachCertificate removes every attachment of certificate id in scope
// (its record there is going away: a transfer ended).
func detachCertificate(ctx context.Context, tx Tx, scope Scope, id string, now time.Time) error {
	arn := CertificateARN(scope, id)
	for _, kind := range []LinkKind{LinkThingPrincipal, LinkPolicyTarget} {
		links, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: kind, To: arn})
		if err != nil {
			return err
		}
		for _, l := range links {
			if err := deleteLink(ctx, tx, scope, kind, l.From, arn, now); err != nil {
				return err
			}
		}
	}
	return nil
}
