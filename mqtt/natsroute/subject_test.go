package natsroute_test

import (
	"fmt"
	"strings"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/mqtt/natsroute"
)

// The mapping's promises (subject.go), checked against mochi's own
// matching (its TopicsIndex, as the broker uses it) and NATS's own
// (server.SubjectMatchesFilter, IsValidSubject):
//
//   - every topic's subject is a valid literal NATS subject, every filter's
//     subjects valid subjects;
//   - round trip: ParseSubject gives back the scope and topic;
//   - fidelity: within one scope, a topic's subject matches one of a
//     filter's subjects exactly when mochi delivers the topic to the filter
//     ($ topics, "a/#" against "a", empty levels, ".", "*", ">", spaces and
//     odd bytes included); the shared filter "$share/g/f" as f;
//   - isolation: no topic of one scope matches a filter of another;
//   - queue groups differ by scope, group and filter.

const prefix = "fleetcert"

var scopes = []fleetcert.Scope{
	{AccountID: "111122223333", Region: "eu-west-1"},
	{AccountID: "111122223333", Region: "eu-west-10"},
	{AccountID: "444455556666", Region: "eu-west-1"},
}

func mochiMatches(filter, topic string) bool {
	idx := mochi.NewTopicsIndex()
	idx.Subscribe("device", packets.Subscription{Filter: filter, Qos: 1})
	s := idx.Subscribers(topic)
	return len(s.Subscriptions) > 0 || len(s.Shared) > 0
}

func natsMatches(subject string, filters []string) bool {
	for _, f := range filters {
		if server.SubjectMatchesFilter(subject, f) {
			return true
		}
	}
	return false
}

func checkMapping(t *testing.T, topic, filter string, scopeA, scopeB uint8) {
	if topic == "" || !mochi.IsValidFilter(topic, true) || strings.ContainsAny(topic, "+#") {
		return
	}
	a, b := scopes[int(scopeA)%len(scopes)], scopes[int(scopeB)%len(scopes)]
	subject := natsroute.TopicSubject(prefix, a, topic)
	if !server.IsValidLiteralSubject(subject) {
		t.Fatalf("topic %q: subject %q is not a valid literal subject", topic, subject)
	}
	scope, back, ok := natsroute.ParseSubject(prefix, subject)
	if !ok || back != topic || scope != a {
		t.Fatalf("topic %q → %q → %v %q %v", topic, subject, scope, back, ok)
	}

	if filter == "" || !mochi.IsValidFilter(filter, false) {
		return
	}
	f := filter
	if mochi.IsSharedFilter(filter) {
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) < 3 || parts[2] == "" {
			return
		}
		f = parts[2]
	}
	subjects := natsroute.FilterSubjects(prefix, a, f)
	for _, s := range subjects {
		if !server.IsValidSubject(s) {
			t.Fatalf("filter %q: subject %q is not valid", f, s)
		}
	}
	if want, got := mochiMatches(filter, topic), natsMatches(subject, subjects); got != want {
		t.Fatalf("topic %q (%s) against filter %q (%q): NATS matches %v, mochi %v", topic, subject, filter, subjects, got, want)
	}
	if a != b && natsMatches(subject, natsroute.FilterSubjects(prefix, b, f)) {
		t.Fatalf("topic %q of %v matches filter %q of %v", topic, a, f, b)
	}
}

var seeds = []struct{ topic, filter string }{
	{"a", "a/#"}, {"a/b", "a/#"}, {"a", "#"}, {"a", "+"}, {"a/b", "+"}, {"a/b", "+/+"}, {"a/b/c", "a/+/c"},
	{"$aws/events/presence/connected/x", "#"}, {"$aws/events/presence/connected/x", "+/events/#"},
	{"$aws/events/presence/connected/x", "$aws/events/presence/connected/+"}, {"$aws/events/x", "$aws/#"},
	{"/", "/"}, {"/", "+/+"}, {"/", "#"}, {"a//b", "a/+/b"}, {"a//b", "a//b"}, {"a/", "a/+"}, {"a/", "a/#"}, {"/a", "+/a"},
	{"a.b", "a.b"}, {"a.b", "a/b"}, {"a/b", "a.b"}, {"*", "*"}, {"*", "+"}, {">", ">"}, {">", "#"}, {"a b", "a b"},
	{"a_b", "a_b"}, {"_", "_"}, {"_", "+"}, {"a_2Eb", "a.b"}, {"a.b", "a_2Eb"}, {"$", "$"}, {"$", "#"}, {"x/$", "x/+"},
	{"é/ü", "é/#"}, {"\x00", "+"}, {"fleet/x", "$share/g/fleet/#"}, {"fleet", "$share/g/fleet/#"}, {"a\tb", "a\tb"},
	{"-", "-"}, {"a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g/h"},
}

func TestSubjects(t *testing.T) {
	for _, s := range seeds {
		for a := range uint8(len(scopes)) {
			for b := range uint8(len(scopes)) {
				checkMapping(t, s.topic, s.filter, a, b)
			}
		}
	}
}

func FuzzSubjects(f *testing.F) {
	for i, s := range seeds {
		f.Add(s.topic, s.filter, uint8(i), uint8(i+1))
	}
	f.Fuzz(checkMapping)
}

func TestQueueName(t *testing.T) {
	seen := map[string]string{}
	for _, s := range scopes {
		for _, g := range []string{"g", "h", "g/h"} {
			for _, f := range []string{"a/#", "a/+", "#", "a"} {
				q := natsroute.QueueName(prefix, s, g, f)
				what := fmt.Sprint(s, g, f)
				if other, ok := seen[q]; ok {
					t.Fatalf("%s and %s share queue %s", what, other, q)
				}
				if !server.IsValidLiteralSubject(q) {
					t.Fatalf("queue name %q is not a valid token", q)
				}
				seen[q] = what
			}
		}
	}
}

func TestParseSubjectRefusesOthers(t *testing.T) {
	for _, s := range []string{"fleetcert", "fleetcert.t.1.2", "fleetcert.x.1.2.a", "other.t.1.2.a", "fleetcert.t.1.2.a_2e",
		"fleetcert.t.1.2.a_61", "fleetcert.t.1.2._24aws", "fleetcert.s.1.2.aws", "fleetcert.t.1.2.a__", "fleetcert.t._.2.a"} {
		if scope, topic, ok := natsroute.ParseSubject(prefix, s); ok {
			t.Errorf("ParseSubject(%q) = %v %q, want not ok", s, scope, topic)
		}
	}
}
