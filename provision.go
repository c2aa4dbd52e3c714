package fleetcert

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// ProvisioningFailure is the error of a device refused because its CA's
// provisioning template could not be applied to its certificate. Nothing
// was written. Err carries the AWS error code: InvalidRequestException or
// MalformedPolicyException (the template with these parameters),
// ResourceConflictsException (an OverrideSettings FAIL),
// ResourceRegistrationFailureException (a resource the template names
// cannot be made: a missing thing type, group or policy, a limit).
type ProvisioningFailure struct {
	CA            *CACertificate
	CertificateID string
	Err           error
}

// Error implements the error interface.
func (e *ProvisioningFailure) Error() string {
	return fmt.Sprintf("provision certificate %s with the template of CA %s: %v", e.CertificateID, e.CA.ID, e.Err)
}

// Unwrap returns the cause, an *Error.
func (e *ProvisioningFailure) Unwrap() error { return e.Err }

// registrationFailure gives a resource's refusal RegisterThing's code,
// naming the resource; internal failures pass unchanged.
func registrationFailure(err error, format string, args ...any) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Code == EResourceConflicts || e.Code == ERegistrationFailure {
		return e
	}
	return Errorf(ERegistrationFailure, "%s: %s", fmt.Sprintf(format, args...), e.Message)
}

// provisionIn registers leaf under ca and applies ca's provisioning
// template to it in tx, as AWS IoT's just-in-time provisioning does
// (https://docs.aws.amazon.com/iot/latest/developerguide/jit-provisioning.html:
// "The JITP workflow first registers a certificate with a status value of
// PENDING_ACTIVATION. When the device provisioning flow is complete, the
// status of the certificate is changed to ACTIVE"): the certificate
// registered PENDING_ACTIVATION, the thing created or updated and put in
// its groups, the certificate attached to it, each policy created or found
// and attached to the certificate, then the certificate's status set. Each
// step is the Registry's own operation in tx, with its rules and its
// change. It returns the certificate as registered (PENDING_ACTIVATION,
// for the registration event) and its status now.
func (r *Registry) provisionIn(ctx context.Context, tx Tx, ca *CACertificate, leaf *x509.Certificate, now time.Time) (*Certificate, Status, error) {
	id := CertificateID(leaf.Raw)
	fail := func(err error) (*Certificate, Status, error) {
		var e *Error
		if errors.As(err, &e) {
			return nil, "", &ProvisioningFailure{CA: ca, CertificateID: id, Err: e}
		}
		return nil, "", err
	}
	t, err := ParseProvisioningTemplate(ca.RegistrationConfig.TemplateBody)
	if err != nil {
		return fail(err)
	}
	plan, err := t.Resolve(JITPParameters(leaf, id))
	if err != nil {
		return fail(err)
	}
	status := StatusActive // no certificate resource: the flow completes all the same
	if c := plan.Certificate; c != nil {
		if c.ID != id {
			return fail(provisioningError("the certificate resource's CertificateId is %q, not the device's certificate; set it to {\"Ref\": %q}.", c.ID, ParamCertificateID))
		}
		status = c.Status
	}
	scope := ca.Scope
	c := r.newCertificate(scope, leaf, StatusPendingActivation, ca.Mode, now)
	c.CACertificateID = ca.ID
	if err := r.insert(ctx, tx, c); err != nil {
		return nil, "", err
	}
	registered := *c
	if th := plan.Thing; th != nil {
		if err := r.provisionThingIn(ctx, tx, scope, th); err != nil {
			return fail(err)
		}
		if err := r.attachThingPrincipalIn(ctx, tx, scope, th.Name, c.ARN(), NonExclusiveThing); err != nil {
			return fail(registrationFailure(err, "attach the certificate to thing %s", th.Name))
		}
	}
	target := PolicyTarget{Kind: TargetCertificate, Name: id, ARN: c.ARN()}
	for _, p := range plan.Policies {
		_, err := loadPolicy(ctx, tx, scope, p.Name)
		switch {
		case ErrorCode(err) == EResourceNotFound && p.Document != "":
			// provision-template.html: a policy given by its document is
			// created; one given by name "must already be created".
			if _, err := r.createPolicyIn(ctx, tx, scope, p.Name, p.Document, nil); err != nil {
				return fail(registrationFailure(err, "create policy %s", p.Name))
			}
		case err != nil:
			return fail(registrationFailure(err, "policy %s", p.Name))
		}
		if err := r.attachPolicyIn(ctx, tx, scope, p.Name, target); err != nil {
			return fail(registrationFailure(err, "attach policy %s", p.Name))
		}
	}
	if err := r.updateCertificateIn(ctx, tx, c, status); err != nil {
		return fail(err)
	}
	return &registered, c.Status, nil
}

// provisionThingIn creates the template's thing, or applies the template
// to the thing of that name by its OverrideSettings
// (https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html,
// "Override settings": "If a template specifies a resource that already
// exists, the OverrideSettings section allows you to specify the action to
// take"). Without a setting the existing thing's property is left as is
// (DO_NOTHING); FAIL refuses only a property the template would change.
func (r *Registry) provisionThingIn(ctx context.Context, tx Tx, scope Scope, th *PlannedThing) error {
	old, err := r.thing(ctx, tx, scope, th.Name)
	if ErrorCode(err) == EResourceNotFound {
		in := CreateThingInput{Name: th.Name, TypeName: th.TypeName}
		if th.HasAttributes {
			in.AttributePayload = &AttributePayload{Attributes: th.Attributes}
		}
		if _, err := r.createThingIn(ctx, tx, scope, in); err != nil {
			return registrationFailure(err, "create thing %s", th.Name)
		}
		for _, g := range th.Groups {
			if err := r.addThingToGroupIn(ctx, tx, scope, g, th.Name); err != nil {
				return registrationFailure(err, "add thing %s to thing group %s", th.Name, g)
			}
		}
		return nil
	} else if err != nil {
		return err
	}
	conflict := func(prop string) error {
		return Errorf(EResourceConflicts, "Thing %s exists with another %s, and the template's OverrideSettings say FAIL.", th.Name, prop)
	}
	update := UpdateThingInput{Name: th.Name}
	changed := false
	if th.HasAttributes && !maps.Equal(old.Attributes, applyAttributes(nil, &AttributePayload{Attributes: th.Attributes})) {
		switch th.Overrides["AttributePayload"] {
		case OverrideReplace, OverrideMerge:
			p := &AttributePayload{Attributes: maps.Clone(th.Attributes), Merge: th.Overrides["AttributePayload"] == OverrideMerge}
			if !p.Merge {
				// Replacing: the attributes the template does not name go.
				for k := range old.Attributes {
					if _, ok := p.Attributes[k]; !ok {
						p.Attributes[k] = ""
					}
				}
			}
			update.AttributePayload, changed = p, true
		case OverrideFail:
			return conflict("AttributePayload")
		}
	}
	if th.HasType && old.TypeName != th.TypeName {
		switch th.Overrides["ThingTypeName"] {
		case OverrideReplace:
			update.TypeName, update.RemoveThingType, changed = th.TypeName, th.TypeName == "", true
		case OverrideFail:
			return conflict("ThingTypeName")
		}
	}
	if changed {
		if err := r.updateThingIn(ctx, tx, scope, update); err != nil {
			return registrationFailure(err, "update thing %s", th.Name)
		}
	}
	if !th.HasGroups {
		return nil
	}
	links, err := allLinks(ctx, tx, LinkQuery{Scope: scope, Kind: LinkThingGroup, From: th.Name})
	if err != nil {
		return err
	}
	var current []string
	for _, l := range links {
		current = append(current, l.To)
	}
	want := slices.Clone(th.Groups)
	slices.Sort(current)
	slices.Sort(want)
	if slices.Equal(current, want) {
		return nil
	}
	switch th.Overrides["ThingGroups"] {
	case OverrideFail:
		return conflict("ThingGroups")
	case OverrideReplace:
		for _, g := range current {
			if !slices.Contains(want, g) {
				if err := r.removeThingFromGroupIn(ctx, tx, scope, g, th.Name); err != nil {
					return registrationFailure(err, "remove thing %s from thing group %s", th.Name, g)
				}
			}
		}
		fallthrough
	case OverrideMerge:
		for _, g := range th.Groups {
			if err := r.addThingToGroupIn(ctx, tx, scope, g, th.Name); err != nil {
				return registrationFailure(err, "add thing %s to thing group %s", th.Name, g)
			}
		}
	}
	return nil
}
