package policy

// Effect is the outcome of evaluating policies for one request.
type Effect int

// The outcomes, as IAM names them: "By default, all policies are implicitly
// denied. An explicit allow … overrides this default behavior. An explicit deny
// in any policy overrides any allows"
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html).
const (
	ImplicitDeny Effect = iota
	Allowed
	ExplicitDeny
)

func (e Effect) String() string {
	switch e {
	case Allowed:
		return "Allowed"
	case ExplicitDeny:
		return "ExplicitDeny"
	}
	return "ImplicitDeny"
}

// Named is a policy with its name, ARN and parsed default version.
type Named struct {
	Name, ARN string
	Doc       *Document
}

// Decision is the outcome of Decide with the policies that led to it.
type Decision struct {
	Effect Effect
	// Allowing and Denying name the policies with a statement that allowed or
	// denied the request, each once, in the order given to Compile.
	Allowing, Denying []string
	// MissingContextValues lists, sorted, the policy variables and condition
	// keys that could not be resolved in statements naming the action: the
	// statements, or resources in them, that could therefore not match.
	MissingContextValues []string
}

// Set is a group of policies compiled for one connection. It is safe for
// concurrent use.
type Set struct {
	statements []compiled
}

type compiled struct {
	policy    string
	deny      bool
	actions   []pattern
	notAction bool
	resources []pattern
	notRes    bool
	// applies reports whether the statement's conditions hold, and whether its
	// NotResource and condition values resolved, for iot:Connect and for every
	// other action: the CONNECT packet's keys exist only for iot:Connect.
	applies        [2]bool
	missing        []string
	missingConnect []string
}

// The actions a device's MQTT connection is checked for
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html).
const (
	ActionConnect       = "iot:Connect"
	ActionPublish       = "iot:Publish"
	ActionSubscribe     = "iot:Subscribe"
	ActionReceive       = "iot:Receive"
	ActionRetainPublish = "iot:RetainPublish"
)

const connectAction = ActionConnect

// Compile substitutes ctx into the policies once; the result is used for every
// packet of the connection. Policies with a nil Doc are skipped.
func Compile(policies []Named, ctx Context) *Set {
	s := &Set{}
	r := newResolver(&ctx)
	for _, np := range policies {
		if np.Doc == nil {
			continue
		}
		for _, st := range np.Doc.Statements {
			c := compiled{policy: np.Name, deny: st.Deny, notAction: st.NotAction, notRes: st.NotResource,
				actions: st.actions, resources: make([]pattern, 0, len(st.resources))}
			var resMissing []string
			resolved := true
			for _, t := range st.resources {
				p, m := t.compile(r)
				resMissing = append(resMissing, m...)
				if len(m) > 0 && st.NotResource {
					// Every other resource would match a NotResource entry that
					// cannot be resolved; IAM drops the statement instead
					// ("causes the statement to be invalid",
					// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
					resolved = false
				}
				c.resources = append(c.resources, p)
			}
			for i, connect := range []bool{false, true} {
				r.connect = connect
				ok, missing := resolved, append([]string(nil), resMissing...)
				for j := range st.Conditions {
					holds, m := st.Conditions[j].eval(r)
					missing = append(missing, m...)
					if !holds || len(m) > 0 {
						ok = false
					}
				}
				c.applies[i] = ok
				if connect {
					c.missingConnect = missing
				} else {
					c.missing = missing
				}
			}
			r.connect = false
			s.statements = append(s.statements, c)
		}
	}
	return s
}

// matches reports whether the statement covers the request; it does not allocate.
func (c *compiled) matches(action, resource string, connect bool) bool {
	i := 0
	if connect {
		i = 1
	}
	if !c.applies[i] {
		return false
	}
	return c.matchesAction(action) && c.matchesResource(resource)
}

func (c *compiled) matchesAction(action string) bool {
	found := false
	for i := range c.actions {
		if c.actions[i].match(action, true) {
			found = true
			break
		}
	}
	return found != c.notAction
}

func (c *compiled) matchesResource(resource string) bool {
	found := false
	for i := range c.resources {
		// Resources match case-sensitively: ARNs are case-sensitive, and AWS IoT
		// topic names are ("Topic names … are case sensitive",
		// https://docs.aws.amazon.com/iot/latest/developerguide/topics.html).
		if c.resources[i].match(resource, false) {
			found = true
			break
		}
	}
	return found != c.notRes
}

// Decide evaluates the request: action is the action name, as "iot:Publish";
// resource is the full ARN, as "arn:aws:iot:us-east-1:123456789012:topic/a/b".
func (s *Set) Decide(action, resource string) Decision {
	var d Decision
	connect := equalFoldASCII(action, connectAction)
	for i := range s.statements {
		c := &s.statements[i]
		if c.matchesAction(action) {
			if connect {
				d.MissingContextValues = append(d.MissingContextValues, c.missingConnect...)
			} else {
				d.MissingContextValues = append(d.MissingContextValues, c.missing...)
			}
		}
		if !c.matches(action, resource, connect) {
			continue
		}
		if c.deny {
			d.Denying = appendOnce(d.Denying, c.policy)
		} else {
			d.Allowing = appendOnce(d.Allowing, c.policy)
		}
	}
	switch {
	case len(d.Denying) > 0:
		d.Effect = ExplicitDeny
	case len(d.Allowing) > 0:
		d.Effect = Allowed
	}
	if len(d.MissingContextValues) > 0 {
		d.MissingContextValues = sortedUnique(d.MissingContextValues)
	}
	return d
}

// Allowed reports whether the request is allowed: some statement allows it and
// none denies it. It is Decide without the explanation, and does not allocate.
func (s *Set) Allowed(action, resource string) bool {
	connect := equalFoldASCII(action, connectAction)
	allowed := false
	for i := range s.statements {
		c := &s.statements[i]
		if (allowed && !c.deny) || !c.matches(action, resource, connect) {
			continue
		}
		if c.deny {
			return false
		}
		allowed = true
	}
	return allowed
}

func appendOnce(list []string, name string) []string {
	for _, n := range list {
		if n == name {
			return list
		}
	}
	return append(list, name)
}

// Resource ARNs of the MQTT actions: iot:Connect takes a client, iot:Publish,
// iot:Receive and iot:RetainPublish a topic, iot:Subscribe a topic filter
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-action-resources.html).

// ClientARN is the resource of iot:Connect.
func ClientARN(region, accountID, clientID string) string {
	return "arn:aws:iot:" + region + ":" + accountID + ":client/" + clientID
}

// TopicARN is the resource of iot:Publish, iot:Receive and iot:RetainPublish.
func TopicARN(region, accountID, topic string) string {
	return "arn:aws:iot:" + region + ":" + accountID + ":topic/" + topic
}

// TopicFilterARN is the resource of iot:Subscribe. The filter is written as the
// client sent it: + and # are literal characters in a policy
// (https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html).
func TopicFilterARN(region, accountID, filter string) string {
	return "arn:aws:iot:" + region + ":" + accountID + ":topicfilter/" + filter
}

// ThingARN is the resource of the Device Shadow and job execution actions.
func ThingARN(region, accountID, thingName string) string {
	return "arn:aws:iot:" + region + ":" + accountID + ":thing/" + thingName
}
