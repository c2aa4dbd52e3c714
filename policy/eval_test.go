package policy_test

import (
	"crypto/x509/pkix"
	"reflect"
	"testing"

	"github.com/fleetcert/fleetcert/policy"
)

const (
	region  = "us-east-1"
	account = "123456789012"
)

func mustParse(tb testing.TB, doc string) *policy.Document {
	tb.Helper()
	d, err := policy.Parse(doc)
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return d
}

func compile(tb testing.TB, ctx policy.Context, docs ...string) *policy.Set {
	tb.Helper()
	var named []policy.Named
	for i, d := range docs {
		name := string(rune('A' + i))
		named = append(named, policy.Named{Name: name, ARN: "arn:aws:iot:us-east-1:123456789012:policy/" + name, Doc: mustParse(tb, d)})
	}
	if ctx.Region == "" {
		ctx.Region, ctx.AccountID = region, account
	}
	return policy.Compile(named, ctx)
}

type request struct {
	action, resource string
	want             policy.Effect
}

func client(id string) string { return policy.ClientARN(region, account, id) }
func topic(t string) string   { return policy.TopicARN(region, account, t) }
func filter(f string) string  { return policy.TopicFilterARN(region, account, f) }
func thing(ctx string) policy.Context {
	return policy.Context{ClientID: ctx, ThingName: ctx, ThingAttached: true}
}

func check(t *testing.T, s *policy.Set, reqs []request) {
	t.Helper()
	for _, r := range reqs {
		d := s.Decide(r.action, r.resource)
		if d.Effect != r.want {
			t.Errorf("Decide(%s, %s) = %v, want %v (%+v)", r.action, r.resource, d.Effect, r.want, d)
		}
		if got := s.Allowed(r.action, r.resource); got != (r.want == policy.Allowed) {
			t.Errorf("Allowed(%s, %s) = %v, want %v", r.action, r.resource, got, r.want == policy.Allowed)
		}
	}
}

// Registered devices (5) and (6) of
// https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html:
// connect as the thing name, publish under it, subscribe and receive under
// "<thing>/room*".
const thingScoped = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]},
    {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/*"]},
    {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/${iot:Connection.Thing.ThingName}/room*"]},
    {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/room*"]}
  ]
}`

func TestThingScopedPolicy(t *testing.T) {
	// https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
	// "a device allowed only its own topics cannot publish/subscribe/receive another's"
	s := compile(t, thing("thing1"), thingScoped)
	check(t, s, []request{
		{"iot:Connect", client("thing1"), policy.Allowed},
		{"iot:Connect", client("thing2"), policy.ImplicitDeny},
		{"iot:Publish", topic("thing1/temp"), policy.Allowed},
		{"iot:Publish", topic("thing1/a/b/c"), policy.Allowed}, // * spans "/"
		{"iot:Publish", topic("thing2/temp"), policy.ImplicitDeny},
		{"iot:Publish", topic("thing1"), policy.ImplicitDeny},
		{"iot:Publish", topic("Thing1/temp"), policy.ImplicitDeny}, // resources are case-sensitive
		{"iot:Subscribe", filter("thing1/room1"), policy.Allowed},
		{"iot:Subscribe", filter("thing1/room/#"), policy.Allowed},
		{"iot:Subscribe", filter("thing2/room1"), policy.ImplicitDeny},
		{"iot:Subscribe", filter("+/room1"), policy.ImplicitDeny},
		{"iot:Receive", topic("thing1/room2"), policy.Allowed},
		{"iot:Receive", topic("thing2/room2"), policy.ImplicitDeny},
		{"iot:Subscribe", topic("thing1/room1"), policy.ImplicitDeny}, // subscribe takes a topicfilter ARN
		{"iot:publish", topic("thing1/x"), policy.Allowed},            // action names are case-insensitive
	})
}

func TestThingNotAttached(t *testing.T) {
	// The thing variables resolve only when the certificate is attached to the
	// thing the client id names; otherwise "this variable won't be resolved and
	// will result in an access denied error"
	// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html).
	s := compile(t, policy.Context{ClientID: "thing1", ThingName: "thing1", ThingAttached: false}, thingScoped)
	check(t, s, []request{
		{"iot:Connect", client("thing1"), policy.ImplicitDeny},
		{"iot:Publish", topic("thing1/temp"), policy.ImplicitDeny},
	})
	d := s.Decide("iot:Publish", topic("thing1/temp"))
	if want := []string{"iot:Connection.Thing.ThingName"}; !reflect.DeepEqual(d.MissingContextValues, want) {
		t.Fatalf("MissingContextValues = %q, want %q", d.MissingContextValues, want)
	}
	// The left-over text never matches: a topic literally named after the
	// variable is no way in.
	check(t, s, []request{{"iot:Publish", topic("${iot:Connection.Thing.ThingName}/x"), policy.ImplicitDeny}})
}

func TestClientIDPolicies(t *testing.T) {
	// Unregistered devices (5) and (9) of
	// https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html:
	// publish under the client id except "<client>/bar" (Deny wins).
	doc := `{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["arn:aws:iot:us-east-1:123456789012:client/client1", "arn:aws:iot:us-east-1:123456789012:client/client2"]},
	    {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"]},
	    {"Effect": "Deny", "Action": ["iot:Publish"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/bar"]}
	  ]
	}`
	s := compile(t, policy.Context{ClientID: "client1"}, doc)
	check(t, s, []request{
		{"iot:Connect", client("client1"), policy.Allowed},
		{"iot:Connect", client("client3"), policy.ImplicitDeny},
		{"iot:Publish", topic("client1/foo"), policy.Allowed},
		{"iot:Publish", topic("client1/bar"), policy.ExplicitDeny},
		{"iot:Publish", topic("client2/foo"), policy.ImplicitDeny},
	})
	d := s.Decide("iot:Publish", topic("client1/bar"))
	if !reflect.DeepEqual(d.Denying, []string{"A"}) || !reflect.DeepEqual(d.Allowing, []string{"A"}) {
		t.Fatalf("Decision = %+v", d)
	}

	// Connect and publish, unregistered devices: ${iot:clientId} in lower
	// camel case still resolves
	// (https://docs.aws.amazon.com/iot/latest/developerguide/connect-and-pub.html).
	s = compile(t, policy.Context{ClientID: "client1"}, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/${iot:clientId}"]},
	  {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/client1"]}]}`)
	check(t, s, []request{
		{"iot:Publish", topic("client1"), policy.Allowed},
		{"iot:Publish", topic("client2"), policy.ImplicitDeny},
	})

	// A client id is substituted literally: "*" is not a wildcard.
	s = compile(t, policy.Context{ClientID: "*"}, doc)
	check(t, s, []request{{"iot:Publish", topic("client1/foo"), policy.ImplicitDeny}})
}

func TestConnectDenyOverridesAllow(t *testing.T) {
	// https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html:
	// deny client1 and client2, allow a client id naming a registered thing.
	doc := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Deny","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/client1","arn:aws:iot:us-east-1:123456789012:client/client2"]},
	  {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]}]}`
	check(t, compile(t, thing("client1"), doc), []request{{"iot:Connect", client("client1"), policy.ExplicitDeny}})
	check(t, compile(t, thing("lamp"), doc), []request{{"iot:Connect", client("lamp"), policy.Allowed}})

	// A Deny in one policy overrides an Allow in another
	// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html).
	s := compile(t, thing("lamp"),
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:Pub*","Resource":"arn:aws:iot:us-east-1:123456789012:topic/secret/*"}}`)
	check(t, s, []request{
		{"iot:Publish", topic("secret/x"), policy.ExplicitDeny},
		{"iot:Publish", topic("open/x"), policy.Allowed},
		{"iot:Subscribe", filter("secret/x"), policy.Allowed},
	})
	if d := s.Decide("iot:Publish", topic("secret/x")); !reflect.DeepEqual(d.Denying, []string{"B"}) || !reflect.DeepEqual(d.Allowing, []string{"A"}) {
		t.Fatalf("Decision = %+v", d)
	}
}

func TestWildcards(t *testing.T) {
	// https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html:
	// + and # are literal in a topicfilter resource.
	s := compile(t, policy.Context{ClientID: "client1"}, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["iot:Subscribe"],"Resource":["arn:aws:iot:us-east-1:123456789012:topicfilter/some/+/topic"]},
	  {"Effect":"Allow","Action":["iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/dev/?/x"]},
	  {"Effect":"Allow","Action":["iot:Rec*ve", "IOT:GETTHINGSHADOW"],"Resource":["arn:aws:iot:us-east-1:123456789012:*"]}]}`)
	check(t, s, []request{
		{"iot:Subscribe", filter("some/+/topic"), policy.Allowed},
		{"iot:Subscribe", filter("some/a/topic"), policy.ImplicitDeny},
		{"iot:Subscribe", filter("some/#"), policy.ImplicitDeny},
		{"iot:Publish", topic("dev/a/x"), policy.Allowed},
		{"iot:Publish", topic("dev/é/x"), policy.Allowed}, // ? is one character, not one byte
		{"iot:Publish", topic("dev/ab/x"), policy.ImplicitDeny},
		{"iot:Publish", topic("dev//x"), policy.ImplicitDeny},
		{"iot:Receive", topic("any/thing"), policy.Allowed},
		{"iot:GetThingShadow", policy.ThingARN(region, account, "t"), policy.Allowed},
		{"iot:Receive", "arn:aws:iot:eu-west-1:123456789012:topic/x", policy.ImplicitDeny},
	})
}

func TestSpecialCharacters(t *testing.T) {
	// ${*}, ${?} and ${$} stand for the literal characters
	// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-variables.html;
	// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
	s := compile(t, policy.Context{ClientID: "c"}, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/a/${*}/b${?}/${$}aws/*"}]}`)
	check(t, s, []request{
		{"iot:Publish", topic("a/*/b?/$aws/x"), policy.Allowed},
		{"iot:Publish", topic("a/x/b?/$aws/x"), policy.ImplicitDeny},
		{"iot:Publish", topic("a/*/bx/$aws/x"), policy.ImplicitDeny},
	})
	// Without Version 2012-10-17, ${…} is literal text
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
	s = compile(t, policy.Context{ClientID: "c"}, `{"Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}"}}`)
	check(t, s, []request{
		{"iot:Publish", topic("c"), policy.ImplicitDeny},
		{"iot:Publish", topic("${iot:ClientId}"), policy.Allowed},
	})
}

func TestUnresolvedVariables(t *testing.T) {
	// An entry with an unknown variable matches nothing; the statement's other
	// entries still do (https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html:
	// the variable "is not replaced … This might cause authorization failure").
	s := compile(t, policy.Context{ClientID: "c"}, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Publish","Resource":["arn:aws:iot:us-east-1:123456789012:topic/${iot:Nope}/x","arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/x"]},
	  {"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.CommonName}/x"}]}`)
	check(t, s, []request{
		{"iot:Publish", topic("c/x"), policy.Allowed},
		{"iot:Publish", topic("/x"), policy.ImplicitDeny},
	})
	d := s.Decide("iot:Publish", topic("c/x"))
	if want := []string{"iot:Certificate.Subject.CommonName", "iot:Nope"}; !reflect.DeepEqual(d.MissingContextValues, want) {
		t.Fatalf("MissingContextValues = %q, want %q", d.MissingContextValues, want)
	}
	if d := s.Decide("iot:Connect", client("c")); len(d.MissingContextValues) != 0 {
		t.Fatalf("Connect names no statement with a missing value: %+v", d)
	}
}

func TestConditions(t *testing.T) {
	// https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html
	isAttached := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"],
	  "Condition":{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}}]}`
	check(t, compile(t, thing("lamp"), isAttached), []request{{"iot:Connect", client("lamp"), policy.Allowed}})
	check(t, compile(t, policy.Context{ClientID: "lamp"}, isAttached), []request{{"iot:Connect", client("lamp"), policy.ImplicitDeny}})

	typed := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish"],"Resource":"arn:aws:iot:us-east-1:123456789012:topic/device/stats",
	  "Condition":{"StringEquals":{"iot:Connection.Thing.Attributes[attributeName]":"attributeValue","iot:Connection.Thing.ThingTypeName":"Thing_Type_Name"},
	  "Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]}`
	ctx := thing("lamp")
	ctx.ThingTypeName = "Thing_Type_Name"
	ctx.ThingAttributes = map[string]string{"attributeName": "attributeValue"}
	check(t, compile(t, ctx, typed), []request{{"iot:Publish", topic("device/stats"), policy.Allowed}})
	ctx.ThingAttributes = map[string]string{"attributeName": "other"}
	check(t, compile(t, ctx, typed), []request{{"iot:Publish", topic("device/stats"), policy.ImplicitDeny}})

	// https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html:
	// allow everything but PersistentConnect; the CONNECT keys exist only for iot:Connect.
	noPersistent := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["iot:Connect"],"Resource":"*"},
	  {"Effect":"Deny","Action":["iot:*"],"Resource":"*","Condition":{"ForAnyValue:StringEquals":{"iot:ConnectAttributes":["PersistentConnect"]}}}]}`
	ctx = policy.Context{ClientID: "c", ConnectAttributes: []string{"PersistentConnect", "LastWill"}}
	s := compile(t, ctx, noPersistent, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"*"}}`)
	check(t, s, []request{
		{"iot:Connect", client("c"), policy.ExplicitDeny},
		{"iot:Publish", topic("x"), policy.Allowed},
	})
	check(t, compile(t, policy.Context{ClientID: "c", ConnectAttributes: []string{"LastWill"}}, noPersistent),
		[]request{{"iot:Connect", client("c"), policy.Allowed}})

	// Only default features: ForAllValues with an empty list.
	defaults := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":"*","Condition":{"ForAllValues:StringEquals":{"iot:ConnectAttributes":[]}}}]}`
	check(t, compile(t, policy.Context{ClientID: "c"}, defaults), []request{{"iot:Connect", client("c"), policy.Allowed}})
	check(t, compile(t, policy.Context{ClientID: "c", ConnectAttributes: []string{"LastWill"}}, defaults), []request{{"iot:Connect", client("c"), policy.ImplicitDeny}})

	// Last will topic as an ARN.
	will := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":"*","Condition":{"ArnEquals":{"iot:LastWillTopic":"arn:aws:iot:*:*:topic/my/lastwill/*"}}}]}`
	check(t, compile(t, policy.Context{ClientID: "c", LastWillTopic: "my/lastwill/topicName"}, will), []request{{"iot:Connect", client("c"), policy.Allowed}})
	check(t, compile(t, policy.Context{ClientID: "c", LastWillTopic: "other"}, will), []request{{"iot:Connect", client("c"), policy.ImplicitDeny}})
	check(t, compile(t, policy.Context{ClientID: "c"}, will), []request{{"iot:Connect", client("c"), policy.ImplicitDeny}})

	// https://docs.aws.amazon.com/iot/latest/developerguide/basic-policy-variables.html
	ip := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:ClientId}"],
	  "Condition":{"IpAddress":{"aws:SourceIp":"123.45.167.89"}}}]}`
	check(t, compile(t, policy.Context{ClientID: "c", SourceIP: "123.45.167.89"}, ip), []request{{"iot:Publish", topic("my/topic/c"), policy.Allowed}})
	check(t, compile(t, policy.Context{ClientID: "c", SourceIP: "10.0.0.1"}, ip), []request{{"iot:Publish", topic("my/topic/c"), policy.ImplicitDeny}})

	// An absent key: a negated operator holds, a positive one does not
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
	neg := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"StringNotEquals":{"iot:DomainName":"a.example"}}}]}`
	check(t, compile(t, policy.Context{ClientID: "c"}, neg), []request{{"iot:Publish", topic("x"), policy.Allowed}})
	check(t, compile(t, policy.Context{ClientID: "c", DomainName: "a.example"}, neg), []request{{"iot:Publish", topic("x"), policy.ImplicitDeny}})
	ifExists := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"StringEqualsIfExists":{"iot:DomainName":"a.example"}}}]}`
	check(t, compile(t, policy.Context{ClientID: "c"}, ifExists), []request{{"iot:Publish", topic("x"), policy.Allowed}})
	null := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"Null":{"iot:DomainName":"true"}}}]}`
	check(t, compile(t, policy.Context{ClientID: "c"}, null), []request{{"iot:Publish", topic("x"), policy.Allowed}})
	check(t, compile(t, policy.Context{ClientID: "c", DomainName: "d"}, null), []request{{"iot:Publish", topic("x"), policy.ImplicitDeny}})

	// A condition value with a variable that cannot be resolved drops the statement.
	unres := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"StringNotEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}}]}`
	s = compile(t, policy.Context{ClientID: "c"}, unres)
	check(t, s, []request{{"iot:Publish", topic("x"), policy.ImplicitDeny}})
	if d := s.Decide("iot:Publish", topic("x")); len(d.MissingContextValues) != 1 {
		t.Fatalf("MissingContextValues = %q", d.MissingContextValues)
	}
}

func TestNotActionNotResource(t *testing.T) {
	s := compile(t, policy.Context{ClientID: "c"}, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","NotAction":"iot:Subscribe","Resource":"*"},
	  {"Effect":"Deny","Action":"iot:Publish","NotResource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"}]}`)
	check(t, s, []request{
		{"iot:Publish", topic("c/x"), policy.Allowed},
		{"iot:Publish", topic("d/x"), policy.ExplicitDeny},
		{"iot:Subscribe", filter("c/x"), policy.ImplicitDeny},
		{"iot:Receive", topic("d/x"), policy.Allowed},
	})
	// A NotResource that cannot be resolved drops its statement rather than
	// covering every resource.
	s = compile(t, policy.Context{ClientID: "c"}, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","NotAction":"iot:Subscribe","Resource":"*"},
	  {"Effect":"Allow","Action":"iot:Subscribe","NotResource":"arn:aws:iot:us-east-1:123456789012:topicfilter/${iot:Connection.Thing.ThingName}/*"}]}`)
	check(t, s, []request{{"iot:Subscribe", filter("x"), policy.ImplicitDeny}})
}

func TestNothingMatches(t *testing.T) {
	check(t, policy.Compile(nil, policy.Context{}), []request{{"iot:Connect", client("c"), policy.ImplicitDeny}})
}

func BenchmarkAllowed(b *testing.B) {
	s := compile(b, thing("thermostat-0042"), thingScoped)
	pub := topic("thermostat-0042/telemetry/temperature")
	other := topic("thermostat-0043/telemetry/temperature")
	sub := filter("thermostat-0042/room7")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if !s.Allowed("iot:Publish", pub) || s.Allowed("iot:Publish", other) || !s.Allowed("iot:Subscribe", sub) {
			b.Fatal("wrong decision")
		}
	}
}

func TestAllowedDoesNotAllocate(t *testing.T) {
	s := compile(t, thing("thermostat-0042"), thingScoped)
	pub := topic("thermostat-0042/telemetry/temperature")
	if n := testing.AllocsPerRun(100, func() { s.Allowed("iot:Publish", pub) }); n != 0 {
		t.Fatalf("Allowed allocates %v times", n)
	}
}

// BenchmarkCompile is what a device's connection costs before its first
// check: the AWS thing-name policy compiled with a real certificate's
// variables (which that policy does not use).
func BenchmarkCompile(b *testing.B) {
	leaf := newCertificate(b, pkix.Name{CommonName: "thermostat-0042", Organization: []string{"Example Corp"}, Country: []string{"US"}}, []string{"thermostat-0042.example.com"}, nil)
	named := []policy.Named{{Name: "thing", ARN: "arn:aws:iot:us-east-1:123456789012:policy/thing", Doc: mustParse(b, thingScoped)}}
	ctx := thing("thermostat-0042")
	ctx.Region, ctx.AccountID = region, account
	ctx.Leaf = leaf
	b.ReportAllocs()
	for b.Loop() {
		if s := policy.Compile(named, ctx); !s.Allowed("iot:Connect", client("thermostat-0042")) {
			b.Fatal("wrong decision")
		}
	}
}
