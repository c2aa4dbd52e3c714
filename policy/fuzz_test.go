package policy_test

import (
	"testing"

	"github.com/fleetcert/fleetcert/policy"
)

// FuzzParse checks that Parse never panics, and that a document it accepts can
// be compiled and decided without panicking.
func FuzzParse(f *testing.F) {
	f.Add(thingScoped)
	f.Add(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotAction":"iot:*","NotResource":"arn:aws:iot:*:*:topic/${*}${?}${$}${","Condition":{"ForAnyValue:StringLike":{"iot:Certificate.Subject.Organization.List":"*"},"Null":{"iot:DomainName":"false"}}}}`)
	f.Add(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"NumericLessThan":{"iot:X":1}}}]}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, doc string) {
		d, err := policy.Parse(doc)
		if err != nil {
			return
		}
		ctx := policy.Context{
			ClientID: "c*?", Region: region, AccountID: account, SourceIP: "10.1.2.3",
			ThingName: "c*?", ThingAttached: true, ThingAttributes: map[string]string{"a": "b"},
			Certificate:       map[string][]string{"Subject.Organization": {"x", "y"}},
			ConnectAttributes: []string{"LastWill"}, LastWillTopic: "w",
		}
		s := policy.Compile([]policy.Named{{Name: "p", Doc: d}}, ctx)
		for _, r := range []struct{ action, resource string }{
			{"iot:Connect", client("c*?")},
			{"iot:Publish", topic("a/b")},
			{"iot:Subscribe", filter("#")},
			{"", ""},
		} {
			dec := s.Decide(r.action, r.resource)
			if (dec.Effect == policy.Allowed) != s.Allowed(r.action, r.resource) {
				t.Fatalf("Decide and Allowed disagree on %v: %+v", r, dec)
			}
		}
	})
}
