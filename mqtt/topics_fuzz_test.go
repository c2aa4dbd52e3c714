package mqtt

import (
	"fmt"
	"strings"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
)

// The topic rewrite's promises (topics.go), checked against mochi's own
// matching (its TopicsIndex, as the broker uses it):
//
//   - isolation: no topic published in one scope (account, region) is
//     delivered to, or retained for, a filter subscribed in another, for any
//     topic and filter, wildcards, shared subscriptions, $ topics, empty
//     levels and odd bytes included;
//   - fidelity: within one scope, a filter matches a topic after the
//     rewrite exactly when it does before, as MQTT says (a filter whose
//     first level is a wildcard matches no $ topic [MQTT-4.7.1-1], shared
//     subscriptions and retained messages included, where mochi alone
//     would match);
//   - round trip: the topic a subscriber receives (OnPacketEncode) is the
//     one the publisher sent, and the scope read back is the publisher's.
//
// Scopes are what the registry holds: 12-digit accounts, regions of
// lowercase letters, digits and hyphens (fleetcert.ValidAccountID,
// ValidRegion); any other input is mapped to one.

var fuzzRegions = []string{"us-east-1", "us-east-10", "eu-west-1", "us-gov-west-1", "a", "us-east-1-"}

func fuzzScope(account uint64, region string) fleetcert.Scope {
	if !fleetcert.ValidRegion(region) {
		region = fuzzRegions[len(region)%len(fuzzRegions)]
		if !fleetcert.ValidRegion(region) {
			region = "us-east-1"
		}
	}
	return fleetcert.Scope{AccountID: fmt.Sprintf("%012d", account%1_000_000_000_000), Region: region}
}

// matches reports whether a subscription to filter receives a message
// published to topic, and whether a message retained on topic is sent to
// a new subscription to filter, as mochi decides. A filter mochi refuses
// (IsValidFilter, checked on the filter the hooks hand it) subscribes
// nothing.
func matches(filter, topic string) (live, retained bool) {
	if !mochi.IsValidFilter(filter, false) {
		return false, false
	}
	idx := mochi.NewTopicsIndex()
	idx.Subscribe("device", packets.Subscription{Filter: filter, Qos: 1})
	s := idx.Subscribers(topic)
	live = len(s.Subscriptions) > 0 || len(s.Shared) > 0
	if len(topic) > 0 && !mochi.IsSharedFilter(filter) { // no retained messages for shared subscriptions
		idx.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName: topic, Payload: []byte("r")})
		retained = len(idx.Messages(filter)) > 0
	}
	return live, retained
}

func addTopicSeeds(f *testing.F) {
	for _, s := range []struct{ topic, filter string }{
		{"a/b", "#"},
		{"a/b", "+/b"},
		{"a/b", "a/+"},
		{"a/b", "$share/g/a/b"},
		{"a/b", "$share/g/#"},
		{"$aws/events/presence/connected/x", "$aws/events/presence/+/x"},
		{"$aws/events/presence/connected/x", "#"},
		{"$aws/events/presence/connected/x", "+/events/#"},
		{"$aws/x", "$share/g/#"},
		{"$aws/x", "$share/g/$aws/#"},
		{"a//b", "a/+/b"},
		{"/", "+/+"},
		{"", "#"},
		{"a/b", ""},
		{"a/b", "$share/g/"},
		{"a/b", "$share//a/b"},
		{"a\x00b", "a\x00b"},
		{"\xff\xfe/x", "+/x"},
		{"$fc/111111111111/us-east-1/a", "$fc/111111111111/us-east-1/a"},
		{"a", "$fc/+/+/a"},
		{"a", "$share/g/$fc/+/+/#"},
		{"111111111111/us-east-1/a", "+/+/a"},
	} {
		f.Add(uint64(111111111111), "us-east-1", uint64(222222222222), "us-east-1", s.topic, s.filter)
		f.Add(uint64(111111111111), "us-east-1", uint64(111111111111), "us-east-10", s.topic, s.filter)
		f.Add(uint64(111111111111), "us-east-1", uint64(111111111111), "us-east-1", s.topic, s.filter)
	}
}

// FuzzTopicIsolation checks isolation across scopes and fidelity within
// one.
func FuzzTopicIsolation(f *testing.F) {
	addTopicSeeds(f)
	f.Fuzz(func(t *testing.T, pubAccount uint64, pubRegion string, subAccount uint64, subRegion string, topic, filter string) {
		pub, sub := fuzzScope(pubAccount, pubRegion), fuzzScope(subAccount, subRegion)
		internal := internalTopic(pub, topic)
		live, retained := matches(internalFilter(sub, filter), internal)
		if pub != sub {
			if live || retained {
				t.Fatalf("%q published in %v reaches %q subscribed in %v (live %v, retained %v)",
					topic, pub, filter, sub, live, retained)
			}
			return
		}
		// Fidelity, for what a device may publish (mochi refuses
		// wildcards and $SYS, the gateway an empty topic).
		if topic == "" || !mochi.IsValidFilter(topic, true) {
			return
		}
		wantLive, wantRetained := matches(filter, topic)
		if _, rest, _ := splitShared(filter); strings.HasPrefix(topic, "$") &&
			(strings.HasPrefix(rest, "+") || strings.HasPrefix(rest, "#")) {
			// mochi applies [MQTT-4.7.1-1] to live messages of plain
			// subscriptions only; the rewrite applies it to shared
			// subscriptions and retained messages too, as MQTT says.
			wantLive, wantRetained = false, false
		}
		if live != wantLive || retained != wantRetained {
			t.Fatalf("in one scope, %q and %q: live %v retained %v after the rewrite, %v %v before",
				filter, topic, live, retained, wantLive, wantRetained)
		}
	})
}

// FuzzTopicRoundTrip checks that a topic (or plain filter) read back from
// its internal form is the device's, in the device's scope, and that
// nothing a device can send reads as internal.
func FuzzTopicRoundTrip(f *testing.F) {
	addTopicSeeds(f)
	f.Fuzz(func(t *testing.T, account uint64, region string, _ uint64, _ string, topic, filter string) {
		scope := fuzzScope(account, region)
		gotScope, got, ok := deviceTopic(internalTopic(scope, topic))
		if !ok || gotScope != scope || got != topic {
			t.Fatalf("%q in %v reads back as %q in %v (ok %v)", topic, scope, got, gotScope, ok)
		}
		if _, _, shared := splitShared(filter); !shared && filter != "" {
			gotScope, got, ok := deviceTopic(internalFilter(scope, filter))
			if !ok || gotScope != scope || got != filter {
				t.Fatalf("filter %q in %v reads back as %q in %v (ok %v)", filter, scope, got, gotScope, ok)
			}
		}
		// What a device publishes is checked by mochi on its own name and
		// rewritten after: a device topic that reads as internal could
		// only come from the gateway's rewrite. Devices may not publish
		// to $ topics at all (OnACLCheck), so none does.
		if _, _, ok := deviceTopic(topic); ok && !strings.HasPrefix(topic, "$") {
			t.Fatalf("the device topic %q reads as internal", topic)
		}
	})
}
