package mqtt

import (
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/fleetcert/fleetcert"
)

// A retained message fed from the fabric keeps the time it was published:
// mochi's sweep drops a retained message MaximumMessageExpiryInterval
// after its Created time, so one without it (1970) went within a second.
func TestClusterRetainedKeepsCreated(t *testing.T) {
	g := &Gateway{server: mochi.New(&mochi.Options{InlineClient: true})}
	r := clusterReceiver{&cluster{g: g}}
	scope := fleetcert.Scope{AccountID: "111122223333", Region: "eu-west-1"}
	now := time.Now().Unix()
	for _, tt := range []struct {
		name    string
		m       Message
		created int64
		expiry  int64
	}{
		{"ok/published-time", Message{Scope: scope, Topic: "a", Payload: []byte("x"), Created: now - 60}, now - 60, 0},
		{"ok/no-time-is-now", Message{Scope: scope, Topic: "b", Payload: []byte("x")}, now, 0},
		{"ok/expiry", Message{Scope: scope, Topic: "c", Payload: []byte("x"), Created: now - 10, MessageExpiry: 30}, now - 10, now + 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.Retained(&tt.m)
			pk, ok := g.server.Topics.Retained.Get(internalTopic(scope, tt.m.Topic))
			if !ok {
				t.Fatal("not retained")
			}
			if pk.Created < tt.created || pk.Created > tt.created+1 || pk.Expiry != tt.expiry {
				t.Fatalf("Created %d Expiry %d, want %d and %d", pk.Created, pk.Expiry, tt.created, tt.expiry)
			}
		})
	}
	r.Retained(&Message{Scope: scope, Topic: "a"})
	if _, ok := g.server.Topics.Retained.Get(internalTopic(scope, "a")); ok {
		t.Fatal("an empty payload did not remove the retained message")
	}
}
