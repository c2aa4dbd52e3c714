package awsapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/fleetcert/fleetcert"
)

// thingOperations are the operations of things, thing types, thing groups
// and thing principals (issue 15), with the method and requestUri of each
// in testdata/iot-authz-api.json.
var thingOperations = []operation{
	{"AddThingToThingGroup", "PUT", "/thing-groups/addThingToThingGroup", (*Handler).addThingToThingGroup},
	{"AttachThingPrincipal", "PUT", "/things/{thingName}/principals", (*Handler).attachThingPrincipal},
	{"CreateThing", "POST", "/things/{thingName}", (*Handler).createThing},
	{"CreateThingGroup", "POST", "/thing-groups/{thingGroupName}", (*Handler).createThingGroup},
	{"CreateThingType", "POST", "/thing-types/{thingTypeName}", (*Handler).createThingType},
	{"DeleteThing", "DELETE", "/things/{thingName}", (*Handler).deleteThing},
	{"DeleteThingGroup", "DELETE", "/thing-groups/{thingGroupName}", (*Handler).deleteThingGroup},
	{"DeleteThingType", "DELETE", "/thing-types/{thingTypeName}", (*Handler).deleteThingType},
	{"DeprecateThingType", "POST", "/thing-types/{thingTypeName}/deprecate", (*Handler).deprecateThingType},
	{"DescribeThing", "GET", "/things/{thingName}", (*Handler).describeThing},
	{"DescribeThingGroup", "GET", "/thing-groups/{thingGroupName}", (*Handler).describeThingGroup},
	{"DescribeThingType", "GET", "/thing-types/{thingTypeName}", (*Handler).describeThingType},
	{"DetachThingPrincipal", "DELETE", "/things/{thingName}/principals", (*Handler).detachThingPrincipal},
	{"ListPrincipalThings", "GET", "/principals/things", (*Handler).listPrincipalThings},
	{"ListPrincipalThingsV2", "GET", "/principals/things-v2", (*Handler).listPrincipalThingsV2},
	{"ListThingGroups", "GET", "/thing-groups", (*Handler).listThingGroups},
	{"ListThingGroupsForThing", "GET", "/things/{thingName}/thing-groups", (*Handler).listThingGroupsForThing},
	{"ListThingPrincipals", "GET", "/things/{thingName}/principals", (*Handler).listThingPrincipals},
	{"ListThingPrincipalsV2", "GET", "/things/{thingName}/principals-v2", (*Handler).listThingPrincipalsV2},
	{"ListThingTypes", "GET", "/thing-types", (*Handler).listThingTypes},
	{"ListThings", "GET", "/things", (*Handler).listThings},
	{"ListThingsInThingGroup", "GET", "/thing-groups/{thingGroupName}/things", (*Handler).listThingsInThingGroup},
	{"RemoveThingFromThingGroup", "PUT", "/thing-groups/removeThingFromThingGroup", (*Handler).removeThingFromThingGroup},
	{"UpdateThing", "PATCH", "/things/{thingName}", (*Handler).updateThing},
	{"UpdateThingGroup", "PATCH", "/thing-groups/{thingGroupName}", (*Handler).updateThingGroup},
}

// principalHeader carries the principal of the thing principal operations
// (the model's locationName for Principal: x-amzn-principal).
const principalHeader = "x-amzn-principal"

// JSON shapes, member names as in the model.

type attributePayload struct {
	Attributes map[string]string `json:"attributes"`
	Merge      bool              `json:"merge"`
}

func (p *attributePayload) domain() *fleetcert.AttributePayload {
	if p == nil {
		return nil
	}
	return &fleetcert.AttributePayload{Attributes: p.Attributes, Merge: p.Merge}
}

type createThingInput struct {
	ThingTypeName    string            `json:"thingTypeName"`
	AttributePayload *attributePayload `json:"attributePayload"`
	BillingGroupName string            `json:"billingGroupName"`
}

type createThingOutput struct {
	ThingName string `json:"thingName"`
	ThingARN  string `json:"thingArn"`
	ThingID   string `json:"thingId"`
}

type describeThingOutput struct {
	DefaultClientID string            `json:"defaultClientId"`
	ThingName       string            `json:"thingName"`
	ThingID         string            `json:"thingId"`
	ThingARN        string            `json:"thingArn"`
	ThingTypeName   string            `json:"thingTypeName,omitempty"`
	Attributes      map[string]string `json:"attributes"`
	Version         int64             `json:"version"`
}

type updateThingInput struct {
	ThingTypeName    string            `json:"thingTypeName"`
	AttributePayload *attributePayload `json:"attributePayload"`
	ExpectedVersion  *int64            `json:"expectedVersion"`
	RemoveThingType  bool              `json:"removeThingType"`
}

type thingAttribute struct {
	ThingName     string            `json:"thingName"`
	ThingTypeName string            `json:"thingTypeName,omitempty"`
	ThingARN      string            `json:"thingArn"`
	Attributes    map[string]string `json:"attributes"`
	Version       int64             `json:"version"`
}

type listThingsOutput struct {
	Things    []thingAttribute `json:"things"`
	NextToken string           `json:"nextToken,omitempty"`
}

type thingTypeProperties struct {
	ThingTypeDescription string   `json:"thingTypeDescription,omitempty"`
	SearchableAttributes []string `json:"searchableAttributes,omitempty"`
}

type createThingTypeInput struct {
	ThingTypeProperties *thingTypeProperties `json:"thingTypeProperties"`
}

type createThingTypeOutput struct {
	ThingTypeName string `json:"thingTypeName"`
	ThingTypeARN  string `json:"thingTypeArn"`
	ThingTypeID   string `json:"thingTypeId"`
}

type thingTypeMetadata struct {
	Deprecated      bool      `json:"deprecated"`
	DeprecationDate epochTime `json:"deprecationDate,omitzero"`
	CreationDate    epochTime `json:"creationDate,omitzero"`
}

type thingTypeDefinition struct {
	ThingTypeName       string              `json:"thingTypeName"`
	ThingTypeID         string              `json:"thingTypeId,omitempty"`
	ThingTypeARN        string              `json:"thingTypeArn"`
	ThingTypeProperties thingTypeProperties `json:"thingTypeProperties"`
	ThingTypeMetadata   thingTypeMetadata   `json:"thingTypeMetadata"`
}

type listThingTypesOutput struct {
	ThingTypes []thingTypeDefinition `json:"thingTypes"`
	NextToken  string                `json:"nextToken,omitempty"`
}

type deprecateThingTypeInput struct {
	UndoDeprecate bool `json:"undoDeprecate"`
}

type thingGroupProperties struct {
	ThingGroupDescription *string           `json:"thingGroupDescription,omitempty"`
	AttributePayload      *attributePayload `json:"attributePayload,omitempty"`
}

type createThingGroupInput struct {
	ParentGroupName      string                `json:"parentGroupName"`
	ThingGroupProperties *thingGroupProperties `json:"thingGroupProperties"`
}

type createThingGroupOutput struct {
	ThingGroupName string `json:"thingGroupName"`
	ThingGroupARN  string `json:"thingGroupArn"`
	ThingGroupID   string `json:"thingGroupId"`
}

type groupNameAndARN struct {
	GroupName string `json:"groupName"`
	GroupARN  string `json:"groupArn"`
}

type thingGroupMetadata struct {
	ParentGroupName         string            `json:"parentGroupName,omitempty"`
	RootToParentThingGroups []groupNameAndARN `json:"rootToParentThingGroups,omitempty"`
	CreationDate            epochTime         `json:"creationDate,omitzero"`
}

type describeThingGroupOutput struct {
	ThingGroupName       string               `json:"thingGroupName"`
	ThingGroupID         string               `json:"thingGroupId"`
	ThingGroupARN        string               `json:"thingGroupArn"`
	Version              int64                `json:"version"`
	ThingGroupProperties thingGroupProperties `json:"thingGroupProperties"`
	ThingGroupMetadata   thingGroupMetadata   `json:"thingGroupMetadata"`
}

type listThingGroupsOutput struct {
	ThingGroups []groupNameAndARN `json:"thingGroups"`
	NextToken   string            `json:"nextToken,omitempty"`
}

type updateThingGroupInput struct {
	ThingGroupProperties *thingGroupProperties `json:"thingGroupProperties"`
	ExpectedVersion      *int64                `json:"expectedVersion"`
}

type updateThingGroupOutput struct {
	Version int64 `json:"version"`
}

type thingGroupMemberInput struct {
	ThingGroupName        string `json:"thingGroupName"`
	ThingGroupARN         string `json:"thingGroupArn"`
	ThingName             string `json:"thingName"`
	ThingARN              string `json:"thingArn"`
	OverrideDynamicGroups bool   `json:"overrideDynamicGroups"`
}

type thingNamesOutput struct {
	Things    []string `json:"things"`
	NextToken string   `json:"nextToken,omitempty"`
}

type listThingPrincipalsOutput struct {
	Principals []string `json:"principals"`
	NextToken  string   `json:"nextToken,omitempty"`
}

type thingPrincipalObject struct {
	Principal          string                       `json:"principal"`
	ThingPrincipalType fleetcert.ThingPrincipalType `json:"thingPrincipalType"`
}

type listThingPrincipalsV2Output struct {
	ThingPrincipalObjects []thingPrincipalObject `json:"thingPrincipalObjects"`
	NextToken             string                 `json:"nextToken,omitempty"`
}

type principalThingObject struct {
	ThingName          string                       `json:"thingName"`
	ThingPrincipalType fleetcert.ThingPrincipalType `json:"thingPrincipalType"`
}

type listPrincipalThingsV2Output struct {
	PrincipalThingObjects []principalThingObject `json:"principalThingObjects"`
	NextToken             string                 `json:"nextToken,omitempty"`
}

// registryListOptions reads nextToken and maxResults (RegistryMaxResults,
// an integer whose limits the Registry checks).
func registryListOptions(q url.Values) (fleetcert.RegistryListOptions, error) {
	var opts fleetcert.RegistryListOptions
	opts.NextToken, _ = queryString(q, "nextToken")
	if v, ok := queryString(q, "maxResults"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return opts, invalidMember("maxResults", v, "an integer")
		}
		opts.MaxResults = &n
	}
	return opts, nil
}

// queryLong reads an optional long query member (expectedVersion).
func queryLong(q url.Values, name string) (*int64, error) {
	v, ok := queryString(q, name)
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, invalidMember(name, v, "an integer")
	}
	return &n, nil
}

// principal reads the principal header, required by the operations that
// carry it.
func principal(r *http.Request) (string, error) {
	p := r.Header.Get(principalHeader)
	if p == "" {
		return "", missingMember("principal")
	}
	return p, nil
}

func groupARNs(scope fleetcert.Scope, names []string) []groupNameAndARN {
	out := make([]groupNameAndARN, len(names))
	for i, n := range names {
		out[i] = groupNameAndARN{GroupName: n, GroupARN: fleetcert.ThingGroupARN(scope, n)}
	}
	return out
}

func nonNilAttributes(a map[string]string) map[string]string {
	if a == nil {
		return map[string]string{}
	}
	return a
}

// createThing serves POST /things/{thingName}.
func (h *Handler) createThing(c *call, r *http.Request) (any, error) {
	var in createThingInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	t, err := h.Registry.CreateThing(c.ctx, c.scope, fleetcert.CreateThingInput{
		Name: r.PathValue("thingName"), TypeName: in.ThingTypeName,
		AttributePayload: in.AttributePayload.domain(), BillingGroupName: in.BillingGroupName,
	})
	if err != nil {
		return nil, err
	}
	return &createThingOutput{ThingName: t.Name, ThingARN: t.ARN(), ThingID: t.ID}, nil
}

// describeThing serves GET /things/{thingName}.
func (h *Handler) describeThing(c *call, r *http.Request) (any, error) {
	t, err := h.Registry.DescribeThing(c.ctx, c.scope, r.PathValue("thingName"))
	if err != nil {
		return nil, err
	}
	// AWS IoT (DescribeThing defaultClientId): "The default MQTT client ID.
	// For a typical device, the thing name is also used as the default MQTT
	// client ID."
	return &describeThingOutput{DefaultClientID: t.Name, ThingName: t.Name, ThingID: t.ID, ThingARN: t.ARN(),
		ThingTypeName: t.TypeName, Attributes: nonNilAttributes(t.Attributes), Version: t.Version}, nil
}

// updateThing serves PATCH /things/{thingName}.
func (h *Handler) updateThing(c *call, r *http.Request) (any, error) {
	var in updateThingInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	return nil, h.Registry.UpdateThing(c.ctx, c.scope, fleetcert.UpdateThingInput{
		Name: r.PathValue("thingName"), TypeName: in.ThingTypeName, RemoveThingType: in.RemoveThingType,
		AttributePayload: in.AttributePayload.domain(), ExpectedVersion: in.ExpectedVersion,
	})
}

// deleteThing serves DELETE /things/{thingName}?expectedVersion=.
func (h *Handler) deleteThing(c *call, r *http.Request) (any, error) {
	v, err := queryLong(c.query, "expectedVersion")
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.DeleteThing(c.ctx, c.scope, r.PathValue("thingName"), v)
}

// listThings serves GET /things?attributeName=&attributeValue=&thingTypeName=&usePrefixAttributeValue=.
func (h *Handler) listThings(c *call, r *http.Request) (any, error) {
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	var f fleetcert.ThingFilter
	f.AttributeName, _ = queryString(c.query, "attributeName")
	f.AttributeValue, _ = queryString(c.query, "attributeValue")
	f.TypeName, _ = queryString(c.query, "thingTypeName")
	if f.UsePrefixAttributeValue, err = queryBool(c.query, "usePrefixAttributeValue"); err != nil {
		return nil, err
	}
	page, err := h.Registry.ListThings(c.ctx, c.scope, f, opts)
	if err != nil {
		return nil, err
	}
	out := &listThingsOutput{Things: make([]thingAttribute, len(page.Things)), NextToken: page.NextToken}
	for i, t := range page.Things {
		out.Things[i] = thingAttribute{ThingName: t.Name, ThingTypeName: t.TypeName, ThingARN: t.ARN(),
			Attributes: nonNilAttributes(t.Attributes), Version: t.Version}
	}
	return out, nil
}

// createThingType serves POST /thing-types/{thingTypeName}.
func (h *Handler) createThingType(c *call, r *http.Request) (any, error) {
	var in createThingTypeInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	var p thingTypeProperties
	if in.ThingTypeProperties != nil {
		p = *in.ThingTypeProperties
	}
	tt, err := h.Registry.CreateThingType(c.ctx, c.scope, fleetcert.CreateThingTypeInput{
		Name: r.PathValue("thingTypeName"), Description: p.ThingTypeDescription, SearchableAttributes: p.SearchableAttributes,
	})
	if err != nil {
		return nil, err
	}
	return &createThingTypeOutput{ThingTypeName: tt.Name, ThingTypeARN: tt.ARN(), ThingTypeID: tt.ID}, nil
}

func thingTypeOut(tt *fleetcert.ThingType) thingTypeDefinition {
	return thingTypeDefinition{
		ThingTypeName: tt.Name, ThingTypeID: tt.ID, ThingTypeARN: tt.ARN(),
		ThingTypeProperties: thingTypeProperties{ThingTypeDescription: tt.Description, SearchableAttributes: tt.SearchableAttributes},
		ThingTypeMetadata: thingTypeMetadata{Deprecated: tt.Deprecated, DeprecationDate: epochTime(tt.DeprecationDate),
			CreationDate: epochTime(tt.CreationDate)},
	}
}

// describeThingType serves GET /thing-types/{thingTypeName}.
func (h *Handler) describeThingType(c *call, r *http.Request) (any, error) {
	tt, err := h.Registry.DescribeThingType(c.ctx, c.scope, r.PathValue("thingTypeName"))
	if err != nil {
		return nil, err
	}
	out := thingTypeOut(tt)
	return &out, nil
}

// listThingTypes serves GET /thing-types?thingTypeName=.
func (h *Handler) listThingTypes(c *call, r *http.Request) (any, error) {
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	name, _ := queryString(c.query, "thingTypeName")
	page, err := h.Registry.ListThingTypes(c.ctx, c.scope, name, opts)
	if err != nil {
		return nil, err
	}
	out := &listThingTypesOutput{ThingTypes: make([]thingTypeDefinition, len(page.ThingTypes)), NextToken: page.NextToken}
	for i, tt := range page.ThingTypes {
		out.ThingTypes[i] = thingTypeOut(tt)
		out.ThingTypes[i].ThingTypeID = "" // ThingTypeDefinition has no id
	}
	return out, nil
}

// deprecateThingType serves POST /thing-types/{thingTypeName}/deprecate.
func (h *Handler) deprecateThingType(c *call, r *http.Request) (any, error) {
	var in deprecateThingTypeInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	return nil, h.Registry.DeprecateThingType(c.ctx, c.scope, r.PathValue("thingTypeName"), in.UndoDeprecate)
}

// deleteThingType serves DELETE /thing-types/{thingTypeName}.
func (h *Handler) deleteThingType(c *call, r *http.Request) (any, error) {
	return nil, h.Registry.DeleteThingType(c.ctx, c.scope, r.PathValue("thingTypeName"))
}

// createThingGroup serves POST /thing-groups/{thingGroupName}.
func (h *Handler) createThingGroup(c *call, r *http.Request) (any, error) {
	var in createThingGroupInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	gi := fleetcert.CreateThingGroupInput{Name: r.PathValue("thingGroupName"), ParentName: in.ParentGroupName}
	if p := in.ThingGroupProperties; p != nil {
		if p.ThingGroupDescription != nil {
			gi.Description = *p.ThingGroupDescription
		}
		gi.AttributePayload = p.AttributePayload.domain()
	}
	g, err := h.Registry.CreateThingGroup(c.ctx, c.scope, gi)
	if err != nil {
		return nil, err
	}
	return &createThingGroupOutput{ThingGroupName: g.Name, ThingGroupARN: g.ARN(), ThingGroupID: g.ID}, nil
}

// describeThingGroup serves GET /thing-groups/{thingGroupName}.
func (h *Handler) describeThingGroup(c *call, r *http.Request) (any, error) {
	g, err := h.Registry.DescribeThingGroup(c.ctx, c.scope, r.PathValue("thingGroupName"))
	if err != nil {
		return nil, err
	}
	out := &describeThingGroupOutput{
		ThingGroupName: g.Name, ThingGroupID: g.ID, ThingGroupARN: g.ARN(), Version: g.Version,
		ThingGroupMetadata: thingGroupMetadata{ParentGroupName: g.ParentName,
			RootToParentThingGroups: groupARNs(c.scope, g.RootToParent), CreationDate: epochTime(g.CreationDate)},
	}
	if g.Description != "" {
		out.ThingGroupProperties.ThingGroupDescription = &g.Description
	}
	if len(g.Attributes) > 0 {
		out.ThingGroupProperties.AttributePayload = &attributePayload{Attributes: g.Attributes}
	}
	return out, nil
}

// listThingGroups serves GET /thing-groups?parentGroup=&namePrefixFilter=&recursive=.
func (h *Handler) listThingGroups(c *call, r *http.Request) (any, error) {
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	var f fleetcert.ThingGroupFilter
	f.ParentGroup, _ = queryString(c.query, "parentGroup")
	f.NamePrefixFilter, _ = queryString(c.query, "namePrefixFilter")
	if _, ok := queryString(c.query, "recursive"); ok {
		rec, err := queryBool(c.query, "recursive")
		if err != nil {
			return nil, err
		}
		f.Recursive = &rec
	}
	page, err := h.Registry.ListThingGroups(c.ctx, c.scope, f, opts)
	if err != nil {
		return nil, err
	}
	return &listThingGroupsOutput{ThingGroups: groupARNs(c.scope, page.Names), NextToken: page.NextToken}, nil
}

// updateThingGroup serves PATCH /thing-groups/{thingGroupName}.
func (h *Handler) updateThingGroup(c *call, r *http.Request) (any, error) {
	var in updateThingGroupInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.ThingGroupProperties == nil {
		return nil, missingMember("thingGroupProperties")
	}
	v, err := h.Registry.UpdateThingGroup(c.ctx, c.scope, fleetcert.UpdateThingGroupInput{
		Name: r.PathValue("thingGroupName"), Description: in.ThingGroupProperties.ThingGroupDescription,
		AttributePayload: in.ThingGroupProperties.AttributePayload.domain(), ExpectedVersion: in.ExpectedVersion,
	})
	if err != nil {
		return nil, err
	}
	return &updateThingGroupOutput{Version: v}, nil
}

// deleteThingGroup serves DELETE /thing-groups/{thingGroupName}?expectedVersion=.
func (h *Handler) deleteThingGroup(c *call, r *http.Request) (any, error) {
	v, err := queryLong(c.query, "expectedVersion")
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.DeleteThingGroup(c.ctx, c.scope, r.PathValue("thingGroupName"), v)
}

func (in *thingGroupMemberInput) member() fleetcert.ThingGroupMember {
	return fleetcert.ThingGroupMember{GroupName: in.ThingGroupName, GroupARN: in.ThingGroupARN,
		ThingName: in.ThingName, ThingARN: in.ThingARN}
}

// addThingToThingGroup serves PUT /thing-groups/addThingToThingGroup.
// overrideDynamicGroups changes nothing: fleetcert has static groups only.
func (h *Handler) addThingToThingGroup(c *call, r *http.Request) (any, error) {
	var in thingGroupMemberInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	return nil, h.Registry.AddThingToThingGroup(c.ctx, c.scope, in.member())
}

// removeThingFromThingGroup serves PUT /thing-groups/removeThingFromThingGroup.
func (h *Handler) removeThingFromThingGroup(c *call, r *http.Request) (any, error) {
	var in thingGroupMemberInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	return nil, h.Registry.RemoveThingFromThingGroup(c.ctx, c.scope, in.member())
}

// listThingsInThingGroup serves GET /thing-groups/{thingGroupName}/things?recursive=.
func (h *Handler) listThingsInThingGroup(c *call, r *http.Request) (any, error) {
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	recursive, err := queryBool(c.query, "recursive")
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListThingsInThingGroup(c.ctx, c.scope, r.PathValue("thingGroupName"), recursive, opts)
	if err != nil {
		return nil, err
	}
	return &thingNamesOutput{Things: nonNil(page.Names), NextToken: page.NextToken}, nil
}

// listThingGroupsForThing serves GET /things/{thingName}/thing-groups.
func (h *Handler) listThingGroupsForThing(c *call, r *http.Request) (any, error) {
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	page, err := h.Registry.ListThingGroupsForThing(c.ctx, c.scope, r.PathValue("thingName"), opts)
	if err != nil {
		return nil, err
	}
	return &listThingGroupsOutput{ThingGroups: groupARNs(c.scope, page.Names), NextToken: page.NextToken}, nil
}

// attachThingPrincipal serves PUT /things/{thingName}/principals?thingPrincipalType=.
func (h *Handler) attachThingPrincipal(c *call, r *http.Request) (any, error) {
	p, err := principal(r)
	if err != nil {
		return nil, err
	}
	typ, _ := queryString(c.query, "thingPrincipalType")
	return nil, h.Registry.AttachThingPrincipal(c.ctx, c.scope, r.PathValue("thingName"), p, fleetcert.ThingPrincipalType(typ))
}

// detachThingPrincipal serves DELETE /things/{thingName}/principals.
func (h *Handler) detachThingPrincipal(c *call, r *http.Request) (any, error) {
	p, err := principal(r)
	if err != nil {
		return nil, err
	}
	return nil, h.Registry.DetachThingPrincipal(c.ctx, c.scope, r.PathValue("thingName"), p)
}

func (h *Handler) thingPrincipals(c *call, r *http.Request, typ string) (*fleetcert.ThingPrincipalPage, error) {
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	return h.Registry.ListThingPrincipals(c.ctx, c.scope, r.PathValue("thingName"), fleetcert.ThingPrincipalType(typ), opts)
}

// listThingPrincipals serves GET /things/{thingName}/principals.
func (h *Handler) listThingPrincipals(c *call, r *http.Request) (any, error) {
	page, err := h.thingPrincipals(c, r, "")
	if err != nil {
		return nil, err
	}
	out := &listThingPrincipalsOutput{Principals: []string{}, NextToken: page.NextToken}
	for _, p := range page.Principals {
		out.Principals = append(out.Principals, p.Principal)
	}
	return out, nil
}

// listThingPrincipalsV2 serves GET /things/{thingName}/principals-v2?thingPrincipalType=.
func (h *Handler) listThingPrincipalsV2(c *call, r *http.Request) (any, error) {
	typ, _ := queryString(c.query, "thingPrincipalType")
	page, err := h.thingPrincipals(c, r, typ)
	if err != nil {
		return nil, err
	}
	out := &listThingPrincipalsV2Output{ThingPrincipalObjects: []thingPrincipalObject{}, NextToken: page.NextToken}
	for _, p := range page.Principals {
		out.ThingPrincipalObjects = append(out.ThingPrincipalObjects, thingPrincipalObject{Principal: p.Principal, ThingPrincipalType: p.Type})
	}
	return out, nil
}

func (h *Handler) principalThings(c *call, r *http.Request, typ string) (*fleetcert.ThingPrincipalPage, error) {
	p, err := principal(r)
	if err != nil {
		return nil, err
	}
	opts, err := registryListOptions(c.query)
	if err != nil {
		return nil, err
	}
	return h.Registry.ListPrincipalThings(c.ctx, c.scope, p, fleetcert.ThingPrincipalType(typ), opts)
}

// listPrincipalThings serves GET /principals/things.
func (h *Handler) listPrincipalThings(c *call, r *http.Request) (any, error) {
	page, err := h.principalThings(c, r, "")
	if err != nil {
		return nil, err
	}
	out := &thingNamesOutput{Things: []string{}, NextToken: page.NextToken}
	for _, p := range page.Principals {
		out.Things = append(out.Things, p.ThingName)
	}
	return out, nil
}

// listPrincipalThingsV2 serves GET /principals/things-v2?thingPrincipalType=.
func (h *Handler) listPrincipalThingsV2(c *call, r *http.Request) (any, error) {
	typ, _ := queryString(c.query, "thingPrincipalType")
	page, err := h.principalThings(c, r, typ)
	if err != nil {
		return nil, err
	}
	out := &listPrincipalThingsV2Output{PrincipalThingObjects: []principalThingObject{}, NextToken: page.NextToken}
	for _, p := range page.Principals {
		out.PrincipalThingObjects = append(out.PrincipalThingObjects, principalThingObject{ThingName: p.ThingName, ThingPrincipalType: p.Type})
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
