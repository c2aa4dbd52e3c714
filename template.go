package fleetcert

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Provisioning templates, as AWS IoT runs them for just-in-time
// provisioning (JITP). The rules, each cited beside its code, come from
// https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html
// ("provision-template" below) and
// https://docs.aws.amazon.com/iot/latest/developerguide/jit-provisioning.html
// ("jit-provisioning").

// Provisioning template resource types (provision-template, "Resources
// section": "Valid types are: AWS::IoT::Thing, AWS::IoT::Certificate,
// AWS::IoT::Policy").
const (
	ResourceThing       = "AWS::IoT::Thing"
	ResourceCertificate = "AWS::IoT::Certificate"
	ResourcePolicy      = "AWS::IoT::Policy"
)

// Override actions for a resource that already exists (provision-template,
// "Override settings").
const (
	OverrideDoNothing = "DO_NOTHING"
	OverrideReplace   = "REPLACE"
	OverrideFail      = "FAIL"
	OverrideMerge     = "MERGE"
)

// JITP parameters: what AWS IoT fills from the device's certificate
// (jit-provisioning: "AWS IoT defines the following parameters that you can
// declare and reference in provisioning templates").
const (
	ParamCountry                    = "AWS::IoT::Certificate::Country"
	ParamOrganization               = "AWS::IoT::Certificate::Organization"
	ParamOrganizationalUnit         = "AWS::IoT::Certificate::OrganizationalUnit"
	ParamDistinguishedNameQualifier = "AWS::IoT::Certificate::DistinguishedNameQualifier"
	ParamStateName                  = "AWS::IoT::Certificate::StateName"
	ParamCommonName                 = "AWS::IoT::Certificate::CommonName"
	ParamSerialNumber               = "AWS::IoT::Certificate::SerialNumber"
	ParamCertificateID              = "AWS::IoT::Certificate::Id"
)

// ERegistrationFailure is RegisterThing's error for a resource a template
// could not create or change (the AWS model's
// ResourceRegistrationFailureException); EResourceConflicts is the error an
// OverrideSettings FAIL causes (provision-template, "Override settings":
// "Cause the request to fail with a ResourceConflictsException").
const (
	ERegistrationFailure = "ResourceRegistrationFailureException"
	EResourceConflicts   = "ResourceConflictsException"
)

// MaxTemplateBodyLength is the model's TemplateBody bound, in characters
// (RegisterCACertificate's registrationConfig.templateBody; also
// CloudFormation's AWS::IoT::CACertificate RegistrationConfig, "Maximum:
// 10240").
const MaxTemplateBodyLength = 10240

var (
	oidDNQualifier  = asn1.ObjectIdentifier{2, 5, 4, 46}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// JITPParameters returns the parameters AWS IoT fills for just-in-time
// provisioning from a device's certificate and its id. A field the
// certificate's subject lacks is absent: jit-provisioning: "The values for
// these provisioning template parameters are limited to what JITP can
// extract from the subject field of the certificate of the device being
// provisioned. [...] The AWS::IoT::Certificate::Id parameter refers to an
// internally generated ID, not an ID that is contained in the certificate."
// So SerialNumber is the subject's serialNumber attribute (2.5.4.5), not
// the certificate's serial number.
func JITPParameters(cert *x509.Certificate, id string) map[string]string {
	p := map[string]string{ParamCertificateID: id}
	first := func(name string, v []string) {
		if len(v) > 0 && v[0] != "" {
			p[name] = v[0]
		}
	}
	s := cert.Subject
	first(ParamCountry, s.Country)
	first(ParamOrganization, s.Organization)
	first(ParamOrganizationalUnit, s.OrganizationalUnit)
	first(ParamStateName, s.Province)
	if s.CommonName != "" {
		p[ParamCommonName] = s.CommonName
	}
	for _, n := range s.Names {
		v, ok := n.Value.(string)
		if !ok || v == "" {
			continue
		}
		switch {
		case n.Type.Equal(oidDNQualifier):
			if _, set := p[ParamDistinguishedNameQualifier]; !set {
				p[ParamDistinguishedNameQualifier] = v
			}
		case n.Type.Equal(oidSerialNumber):
			if _, set := p[ParamSerialNumber]; !set {
				p[ParamSerialNumber] = v
			}
		}
	}
	return p
}

// ProvisioningTemplate is a checked provisioning template: what
// ParseProvisioningTemplate accepted, ready to Resolve with parameters.
type ProvisioningTemplate struct {
	params   map[string]*string // name → default, nil when it has none
	mappings map[string]any
	thing    *templateResource
	cert     *templateResource
	policies []*templateResource // in logical name order
}

type templateResource struct {
	name      string
	props     map[string]any
	overrides map[string]string // property → override action
}

// templateError is the error of a template refused when it is given
// (RegisterCACertificate, UpdateCACertificate: InvalidRequestException, the
// only client error UpdateCACertificate has in the AWS model).
func templateError(format string, args ...any) error {
	return Errorf(EInvalidRequest, "registrationConfig.templateBody is not a valid provisioning template: "+format, args...)
}

// ParseProvisioningTemplate parses a provisioning template and checks what
// can be checked without parameters: JSON, the sections, each resource's
// type, properties and override settings, the intrinsic functions' forms,
// that every Ref names a declared parameter, and a literal policy
// document.
//
// Errors: InvalidRequestException.
func ParseProvisioningTemplate(body string) (*ProvisioningTemplate, error) {
	if len([]rune(body)) > MaxTemplateBodyLength {
		return nil, Errorf(EInvalidRequest, "registrationConfig.templateBody is longer than %d characters.", MaxTemplateBodyLength)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, templateError("it is not JSON (%v).", err)
	}
	if dec.More() {
		return nil, templateError("it has more than one JSON value.")
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, templateError("it is not a JSON object.")
	}
	t := &ProvisioningTemplate{params: map[string]*string{}}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		switch k {
		case "Parameters", "Resources", "Mappings":
		case "DeviceConfiguration":
			// Fleet provisioning only (provision-template, "Device
			// configuration"): nothing receives it on a TLS connect.
		default:
			return nil, templateError("unknown section %q; a template has Parameters, Resources and optionally Mappings.", k)
		}
	}
	// provision-template, "Parameters section": "Each parameter declares a
	// name, a type, and an optional default value."
	if raw, ok := top["Parameters"]; ok {
		ps, ok := raw.(map[string]any)
		if !ok {
			return nil, templateError("Parameters must be an object.")
		}
		for name, raw := range ps {
			p, ok := raw.(map[string]any)
			if !ok {
				return nil, templateError("parameter %q must be an object with a Type.", name)
			}
			for k := range p {
				if k != "Type" && k != "Default" {
					return nil, templateError("parameter %q has an unknown member %q; a parameter has Type and Default.", name, k)
				}
			}
			if p["Type"] != "String" {
				// Every parameter AWS documents, and every value RegisterThing
				// passes (a string to string map), is a String.
				return nil, templateError("parameter %q must have \"Type\": \"String\".", name)
			}
			var def *string
			if d, ok := p["Default"]; ok {
				s, ok := d.(string)
				if !ok {
					return nil, templateError("the Default of parameter %q must be a string.", name)
				}
				def = &s
			}
			t.params[name] = def
		}
	}
	// provision-template, "Mappings": "You cannot include parameters,
	// pseudo parameters, or call intrinsic functions in the Mappings
	// section."
	if raw, ok := top["Mappings"]; ok {
		ms, ok := raw.(map[string]any)
		if !ok {
			return nil, templateError("Mappings must be an object.")
		}
		for name, m := range ms {
			keys, ok := m.(map[string]any)
			if !ok {
				return nil, templateError("mapping %q must be an object of objects.", name)
			}
			for key, v := range keys {
				vals, ok := v.(map[string]any)
				if !ok {
					return nil, templateError("mapping %q key %q must be an object.", name, key)
				}
				for _, v := range vals {
					if isFunction(v) {
						return nil, templateError("mapping %q calls an intrinsic function; Mappings hold literal values only.", name)
					}
				}
			}
		}
		t.mappings = ms
	}
	raw, ok := top["Resources"]
	if !ok {
		return nil, templateError("it has no Resources section.")
	}
	rs, ok := raw.(map[string]any)
	if !ok {
		return nil, templateError("Resources must be an object.")
	}
	for _, name := range slices.Sorted(maps.Keys(rs)) {
		if err := t.addResource(name, rs[name]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *ProvisioningTemplate) addResource(name string, raw any) error {
	r, ok := raw.(map[string]any)
	if !ok {
		return templateError("resource %q must be an object with a Type and Properties.", name)
	}
	for k := range r {
		if k != "Type" && k != "Properties" && k != "OverrideSettings" {
			return templateError("resource %q has an unknown member %q; a resource has Type, Properties and OverrideSettings.", name, k)
		}
	}
	props := map[string]any{}
	if p, ok := r["Properties"]; ok {
		if props, ok = p.(map[string]any); !ok {
			return templateError("the Properties of resource %q must be an object.", name)
		}
	}
	res := &templateResource{name: name, props: props, overrides: map[string]string{}}
	var allowed []string            // properties of the type
	var overridable = [][2]string{} // override setting key → property
	typ, _ := r["Type"].(string)
	switch typ {
	case ResourceThing:
		// provision-template, "Thing resources".
		if t.thing != nil {
			return templateError("resources %q and %q are both things; a template provisions one thing.", t.thing.name, name)
		}
		t.thing = res
		allowed = []string{"ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup", "PackageVersions"}
		overridable = [][2]string{{"AttributePayload", "AttributePayload"}, {"ATTRIBUTE_PAYLOAD", "AttributePayload"},
			{"ThingTypeName", "ThingTypeName"}, {"THING_TYPE_NAME", "ThingTypeName"},
			{"ThingGroups", "ThingGroups"}, {"THING_GROUPS", "ThingGroups"}}
		if _, ok := props["ThingName"]; !ok {
			return templateError("thing %q has no ThingName.", name)
		}
		for _, p := range []string{"BillingGroup", "PackageVersions"} {
			if _, ok := props[p]; ok {
				return templateError("thing %q sets %s; fleetcert has no billing groups or software packages.", name, p)
			}
		}
	case ResourceCertificate:
		// provision-template, "Certificate resources".
		if t.cert != nil {
			return templateError("resources %q and %q are both certificates; a template provisions one certificate.", t.cert.name, name)
		}
		t.cert = res
		allowed = []string{"CertificateId", "CertificatePem", "CACertificatePem", "CertificateSigningRequest", "Status"}
		overridable = [][2]string{{"Status", "Status"}}
		for _, p := range []string{"CertificateSigningRequest", "CertificatePem", "CACertificatePem"} {
			if _, ok := props[p]; ok {
				// Just-in-time provisioning registers the certificate the
				// device presented: jit-provisioning's template names it
				// {"Ref": "AWS::IoT::Certificate::Id"}.
				return templateError("certificate %q sets %s; in a CA's template the certificate is the device's own: set \"CertificateId\": {\"Ref\": %q}.", name, p, ParamCertificateID)
			}
		}
		if _, ok := props["CertificateId"]; !ok {
			return templateError("certificate %q has no CertificateId; set \"CertificateId\": {\"Ref\": %q}.", name, ParamCertificateID)
		}
		if s, ok := props["Status"].(string); ok {
			if _, ok := certificateStatus(s); !ok {
				return templateError("certificate %q: Status is ACTIVE or INACTIVE, not %q.", name, s)
			}
		}
	case ResourcePolicy:
		// provision-template, "Policy resources": "If a Policy section is
		// present, PolicyName or PolicyDocument, but not both, must be
		// specified."
		t.policies = append(t.policies, res)
		allowed = []string{"PolicyName", "PolicyDocument"}
		_, named := props["PolicyName"]
		_, doc := props["PolicyDocument"]
		if named == doc {
			return templateError("policy %q must have PolicyName or PolicyDocument, not both and not neither.", name)
		}
		if len(t.policies) > MaxPoliciesPerTarget {
			return templateError("it declares more than %d policies, the most a certificate can have attached.", MaxPoliciesPerTarget)
		}
		if s, ok := props["PolicyDocument"].(string); ok {
			if _, err := ParsePolicyDocument(s); err != nil {
				return templateError("the PolicyDocument of policy %q is malformed: %s", name, ErrorMessage(err))
			}
		}
		if s, ok := props["PolicyName"].(string); ok {
			if err := CheckPolicyName("PolicyName", s); err != nil {
				return templateError("policy %q: %s", name, ErrorMessage(err))
			}
		}
	case "":
		return templateError("resource %q has no Type; use %s, %s or %s.", name, ResourceThing, ResourceCertificate, ResourcePolicy)
	default:
		return templateError("resource %q has type %q; the types are %s, %s and %s.", name, typ, ResourceThing, ResourceCertificate, ResourcePolicy)
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if !slices.Contains(allowed, k) {
			return templateError("resource %q has an unknown property %q; a %s has %s.", name, k, typ, strings.Join(allowed, ", "))
		}
		if err := t.check(props[k]); err != nil {
			return templateError("resource %q property %s: %s", name, k, err)
		}
	}
	if raw, ok := r["OverrideSettings"]; ok {
		os, ok := raw.(map[string]any)
		if !ok {
			return templateError("the OverrideSettings of resource %q must be an object.", name)
		}
		if typ == ResourcePolicy {
			// provision-template: "OverrideSettings are not available for
			// policy resources."
			return templateError("policy %q has OverrideSettings; they are not available for policy resources.", name)
		}
		for _, k := range slices.Sorted(maps.Keys(os)) {
			i := slices.IndexFunc(overridable, func(o [2]string) bool { return o[0] == k })
			if i < 0 {
				return templateError("resource %q has an override setting for %q, which cannot be overridden.", name, k)
			}
			prop := overridable[i][1]
			v, _ := os[k].(string)
			switch v {
			case OverrideDoNothing, OverrideReplace, OverrideFail:
			case OverrideMerge:
				// provision-template: "MERGE: Valid only for the
				// ThingGroups and AttributePayload properties of a thing."
				if prop != "ThingGroups" && prop != "AttributePayload" {
					return templateError("resource %q: MERGE is valid only for a thing's ThingGroups and AttributePayload, not %s.", name, k)
				}
			default:
				return templateError("resource %q: the override setting of %s must be DO_NOTHING, REPLACE, FAIL or MERGE, not %v.", name, k, os[k])
			}
			res.overrides[prop] = v
		}
	}
	return nil
}

// functions are the intrinsic functions provision-template documents
// ("Intrinsic functions": Fn::Join, Fn::Select, Fn::FindInMap, Fn::Split,
// Fn::Sub; and Ref for parameters, "Resource example"). Conditions and
// Fn::If are CloudFormation's, not provisioning templates'.
var functions = []string{"Ref", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::FindInMap"}

func isFunction(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// check validates an expression's form: every function is one of
// functions with its arguments' shape, and every Ref and ${} names a
// declared parameter.
func (t *ProvisioningTemplate) check(v any) error {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if err := t.check(e); err != nil {
				return err
			}
		}
	case map[string]any:
		if !isFunction(v) {
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if err := t.check(v[k]); err != nil {
					return err
				}
			}
			return nil
		}
		for fn, arg := range v {
			return t.checkFunction(fn, arg)
		}
	}
	return nil
}

func (t *ProvisioningTemplate) checkFunction(fn string, arg any) error {
	args, _ := arg.([]any)
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return fmt.Errorf("Ref takes a parameter name")
		}
		if _, ok := t.params[name]; !ok {
			// provision-template: "The Parameters section declares the
			// parameters used in the Resources section."
			return fmt.Errorf("Ref names %q, which the Parameters section does not declare", name)
		}
		return nil
	case "Fn::Join":
		if len(args) != 2 {
			return fmt.Errorf("Fn::Join takes [delimiter, [values]]")
		}
		if _, ok := args[0].(string); !ok {
			return fmt.Errorf("the delimiter of Fn::Join must be a string")
		}
	case "Fn::Select":
		if len(args) != 2 {
			return fmt.Errorf("Fn::Select takes [index, [values]]")
		}
	case "Fn::Split":
		if len(args) != 2 {
			return fmt.Errorf("Fn::Split takes [delimiter, string]")
		}
		if d, ok := args[0].(string); !ok || d == "" {
			return fmt.Errorf("the delimiter of Fn::Split must be a non-empty string")
		}
	case "Fn::FindInMap":
		if len(args) != 3 {
			return fmt.Errorf("Fn::FindInMap takes [map name, top-level key, second-level key]")
		}
		if name, ok := args[0].(string); ok {
			if _, ok := t.mappings[name]; !ok {
				return fmt.Errorf("Fn::FindInMap names mapping %q, which the Mappings section does not declare", name)
			}
		}
	case "Fn::Sub":
		s, vars := "", map[string]any{}
		switch a := arg.(type) {
		case string:
			s = a
		case []any:
			if len(a) != 2 {
				return fmt.Errorf("Fn::Sub takes a string or [string, {variables}]")
			}
			var ok bool
			if s, ok = a[0].(string); !ok {
				return fmt.Errorf("Fn::Sub takes a string or [string, {variables}]")
			}
			if vars, ok = a[1].(map[string]any); !ok {
				return fmt.Errorf("the variables of Fn::Sub must be an object")
			}
			for _, k := range slices.Sorted(maps.Keys(vars)) {
				if err := t.check(vars[k]); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("Fn::Sub takes a string or [string, {variables}]")
		}
		names, err := subVariables(s)
		if err != nil {
			return err
		}
		for _, n := range names {
			if _, ok := vars[n]; ok {
				continue
			}
			if _, ok := t.params[n]; !ok {
				return fmt.Errorf("Fn::Sub uses ${%s}, which is neither a variable of it nor a declared parameter", n)
			}
		}
		return nil
	default:
		return fmt.Errorf("unknown intrinsic function %s; provisioning templates have %s", fn, strings.Join(functions, ", "))
	}
	for _, a := range args {
		if err := t.check(a); err != nil {
			return err
		}
	}
	return nil
}

// subVariables returns the ${name} variables of an Fn::Sub string, without
// the ${!literal} escapes (CloudFormation's Fn::Sub syntax, which
// provision-template's Fn::Sub follows).
func subVariables(s string) ([]string, error) {
	var names []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return names, nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("Fn::Sub has an unterminated ${ in %q", s)
		}
		name := s[i+2 : i+j]
		if !strings.HasPrefix(name, "!") {
			names = append(names, name)
		}
		s = s[i+j+1:]
	}
}

// ProvisioningPlan is a template resolved with its parameters: what
// provisioning creates, attaches and sets.
type ProvisioningPlan struct {
	Thing       *PlannedThing // nil when the template declares none
	Certificate *PlannedCertificate
	Policies    []PlannedPolicy
}

// PlannedThing is a template's thing, resolved. Attributes, TypeName and
// Groups are set only when the template sets them (Has*).
type PlannedThing struct {
	Name                              string
	Attributes                        map[string]string
	TypeName                          string
	Groups                            []string
	HasAttributes, HasType, HasGroups bool
	// Overrides maps AttributePayload, ThingTypeName and ThingGroups to
	// what to do when the thing exists (DO_NOTHING when absent).
	Overrides map[string]string
}

// PlannedCertificate is a template's certificate, resolved.
type PlannedCertificate struct {
	ID     string
	Status Status
}

// PlannedPolicy is a template's policy: an existing one by name, or one
// made from Document (named by its hash unless the template names it).
type PlannedPolicy struct {
	Name     string
	Document string // "" for a policy referenced by name
}

// provisioningError is an error of resolving a template with its
// parameters: the request is refused (RegisterThing's
// InvalidRequestException).
func provisioningError(format string, args ...any) error {
	return Errorf(EInvalidRequest, "The provisioning template cannot be applied: "+format, args...)
}

// Resolve evaluates the template with params: each Ref and function, each
// resource's properties checked as its API would.
//
// Errors: InvalidRequestException.
func (t *ProvisioningTemplate) Resolve(params map[string]string) (*ProvisioningPlan, error) {
	values := map[string]string{}
	for name, def := range t.params {
		if v, ok := params[name]; ok {
			values[name] = v
		} else if def != nil {
			// provision-template: "The default value is used when the
			// dictionary passed in with the template does not contain a
			// value for the parameter."
			values[name] = *def
		} else {
			// jit-provisioning: "The certificate must contain values for
			// all of the parameters in the template body."
			return nil, provisioningError("the parameter %s has no value and no Default; the device certificate's subject lacks it.", name)
		}
	}
	ev := &evaluator{t: t, values: values}
	plan := &ProvisioningPlan{}
	if r := t.thing; r != nil {
		th := &PlannedThing{Overrides: r.overrides}
		var err error
		if th.Name, err = ev.str(r, "ThingName"); err != nil {
			return nil, err
		}
		if err := CheckName("ThingName", th.Name); err != nil {
			return nil, provisioningError("thing %q: %s", r.name, ErrorMessage(err))
		}
		if _, th.HasType = r.props["ThingTypeName"]; th.HasType {
			if th.TypeName, err = ev.str(r, "ThingTypeName"); err != nil {
				return nil, err
			}
			if err := CheckName("ThingTypeName", th.TypeName); err != nil {
				return nil, provisioningError("thing %q: %s", r.name, ErrorMessage(err))
			}
		}
		if raw, ok := r.props["AttributePayload"]; ok {
			th.HasAttributes = true
			v, err := ev.eval(raw)
			if err != nil {
				return nil, provisioningError("thing %q AttributePayload: %s", r.name, err)
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, provisioningError("thing %q: AttributePayload must be an object of name-value pairs.", r.name)
			}
			th.Attributes = map[string]string{}
			for k, v := range m {
				s, err := scalar(v)
				if err != nil {
					return nil, provisioningError("thing %q attribute %s: %s", r.name, k, err)
				}
				th.Attributes[k] = s
			}
			if err := checkAttributes("AttributePayload", th.Attributes); err != nil {
				return nil, provisioningError("thing %q: %s", r.name, ErrorMessage(err))
			}
		}
		if raw, ok := r.props["ThingGroups"]; ok {
			th.HasGroups = true
			v, err := ev.eval(raw)
			if err != nil {
				return nil, provisioningError("thing %q ThingGroups: %s", r.name, err)
			}
			list, ok := v.([]any)
			if !ok {
				return nil, provisioningError("thing %q: ThingGroups must be a list of group names.", r.name)
			}
			for _, g := range list {
				s, err := scalar(g)
				if err != nil {
					return nil, provisioningError("thing %q ThingGroups: %s", r.name, err)
				}
				if err := CheckName("ThingGroups", s); err != nil {
					return nil, provisioningError("thing %q: %s", r.name, ErrorMessage(err))
				}
				if !slices.Contains(th.Groups, s) {
					th.Groups = append(th.Groups, s)
				}
			}
		}
		plan.Thing = th
	}
	if r := t.cert; r != nil {
		c := &PlannedCertificate{Status: StatusActive}
		var err error
		if c.ID, err = ev.str(r, "CertificateId"); err != nil {
			return nil, err
		}
		if _, ok := r.props["Status"]; ok {
			s, err := ev.str(r, "Status")
			if err != nil {
				return nil, err
			}
			var ok bool
			if c.Status, ok = certificateStatus(s); !ok {
				return nil, provisioningError("certificate %q: Status is ACTIVE or INACTIVE, not %q.", r.name, s)
			}
		}
		plan.Certificate = c
	}
	for _, r := range t.policies {
		var p PlannedPolicy
		if _, ok := r.props["PolicyName"]; ok {
			var err error
			if p.Name, err = ev.str(r, "PolicyName"); err != nil {
				return nil, err
			}
			if err := CheckPolicyName("PolicyName", p.Name); err != nil {
				return nil, provisioningError("policy %q: %s", r.name, ErrorMessage(err))
			}
		} else {
			v, err := ev.eval(r.props["PolicyDocument"])
			if err != nil {
				return nil, provisioningError("policy %q PolicyDocument: %s", r.name, err)
			}
			switch d := v.(type) {
			case string:
				// provision-template: "PolicyDocument: Optional. A JSON
				// object specified as an escaped string."
				p.Document = d
			case map[string]any:
				// The fleet provisioning example gives it as an object.
				b, err := json.Marshal(d)
				if err != nil {
					return nil, provisioningError("policy %q PolicyDocument: %s", r.name, err)
				}
				p.Document = string(b)
			default:
				return nil, provisioningError("policy %q: PolicyDocument must be a JSON document in a string.", r.name)
			}
			if _, err := ParsePolicyDocument(p.Document); err != nil {
				return nil, Errorf(EMalformedPolicy, "The provisioning template cannot be applied: policy %q: %s", r.name, ErrorMessage(err))
			}
			// provision-template: "PolicyName: Optional. String. Defaults
			// to a hash of the policy document."
			sum := sha256.Sum256([]byte(p.Document))
			p.Name = hex.EncodeToString(sum[:])
		}
		plan.Policies = append(plan.Policies, p)
	}
	return plan, nil
}

// certificateStatus reads a certificate resource's Status
// (provision-template: "Status: Optional. String that can be ACTIVE or
// INACTIVE. Defaults to ACTIVE." Its fleet provisioning example writes
// "Active", so the case is not significant).
func certificateStatus(s string) (Status, bool) {
	switch strings.ToUpper(s) {
	case "ACTIVE":
		return StatusActive, true
	case "INACTIVE":
		return StatusInactive, true
	}
	return "", false
}

// evaluator resolves expressions with parameter values.
type evaluator struct {
	t      *ProvisioningTemplate
	values map[string]string
}

// str evaluates property prop of r to a string.
func (e *evaluator) str(r *templateResource, prop string) (string, error) {
	v, err := e.eval(r.props[prop])
	if err == nil {
		var s string
		if s, err = scalar(v); err == nil {
			return s, nil
		}
	}
	return "", provisioningError("resource %q property %s: %s", r.name, prop, err)
}

// scalar returns v as a string: a string, or a number as written.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("a string is needed, not %s", describe(v))
}

func describe(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", v)
}

// eval evaluates an expression: a literal, a list, an object or one
// intrinsic function.
func (e *evaluator) eval(v any) (any, error) {
	switch v := v.(type) {
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			y, err := e.eval(x)
			if err != nil {
				return nil, err
			}
			out = append(out, y)
		}
		return out, nil
	case map[string]any:
		if !isFunction(v) {
			out := make(map[string]any, len(v))
			for k, x := range v {
				y, err := e.eval(x)
				if err != nil {
					return nil, err
				}
				out[k] = y
			}
			return out, nil
		}
		for fn, arg := range v {
			return e.call(fn, arg)
		}
	}
	return v, nil
}

func (e *evaluator) call(fn string, arg any) (any, error) {
	if fn == "Ref" {
		return e.values[arg.(string)], nil // checked when parsed
	}
	if fn == "Fn::Sub" {
		return e.sub(arg)
	}
	raw := arg.([]any) // the forms were checked when parsed
	args := make([]any, len(raw))
	for i, a := range raw {
		v, err := e.eval(a)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	switch fn {
	case "Fn::Join":
		// provision-template: "Appends a set of values into a single
		// value, separated by the specified delimiter."
		list, ok := args[1].([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join needs a list of values, not %s", describe(args[1]))
		}
		parts := make([]string, len(list))
		for i, x := range list {
			s, err := scalar(x)
			if err != nil {
				return nil, fmt.Errorf("Fn::Join: %w", err)
			}
			parts[i] = s
		}
		return strings.Join(parts, args[0].(string)), nil
	case "Fn::Select":
		// provision-template: "Fn::Select does not check for null values
		// or if the index is out of bounds of the array. Both conditions
		// result in a provisioning error".
		idx, err := scalar(args[0])
		if err != nil {
			return nil, fmt.Errorf("Fn::Select index: %w", err)
		}
		i, err := strconv.Atoi(idx)
		list, ok := args[1].([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Select needs a list, not %s", describe(args[1]))
		}
		if err != nil || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("Fn::Select index %s is not an index of a list of %d", idx, len(list))
		}
		if list[i] == nil {
			return nil, fmt.Errorf("Fn::Select selected null")
		}
		return list[i], nil
	case "Fn::Split":
		// provision-template: "Splits a string into a list of string
		// values".
		s, err := scalar(args[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Split: %w", err)
		}
		var out []any
		for _, p := range strings.Split(s, args[0].(string)) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::FindInMap":
		// provision-template: "Returns the value corresponding to keys in
		// a two-level map that is declared in the Mappings section."
		var keys [3]string
		for i, a := range args {
			s, err := scalar(a)
			if err != nil {
				return nil, fmt.Errorf("Fn::FindInMap: %w", err)
			}
			keys[i] = s
		}
		m, _ := e.t.mappings[keys[0]].(map[string]any)
		top, ok := m[keys[1]].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("mapping %s has no key %q", keys[0], keys[1])
		}
		v, ok := top[keys[2]]
		if !ok {
			return nil, fmt.Errorf("mapping %s key %s has no %q", keys[0], keys[1], keys[2])
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown intrinsic function %s", fn) // refused when parsed
}

// sub is Fn::Sub: "Substitutes variables in an input string with values
// that you specify" (provision-template), ${name} from its variables or
// the parameters, ${!name} for a literal ${name}.
func (e *evaluator) sub(arg any) (any, error) {
	s, vars := "", map[string]string{}
	switch a := arg.(type) {
	case string:
		s = a
	case []any:
		s = a[0].(string)
		for k, x := range a[1].(map[string]any) {
			v, err := e.eval(x)
			if err != nil {
				return nil, err
			}
			if vars[k], err = scalar(v); err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
		}
	}
	var b bytes.Buffer
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		switch v, ok := vars[name]; {
		case strings.HasPrefix(name, "!"):
			b.WriteString("${" + name[1:] + "}")
		case ok:
			b.WriteString(v)
		default:
			b.WriteString(e.values[name])
		}
		s = s[i+j+1:]
	}
}
