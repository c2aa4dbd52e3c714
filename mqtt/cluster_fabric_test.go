package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// fakeFabric is a cluster's message fabric as the gateway sees it: it
// answers Publish with err for a device's topics (not the gateway's
// events, published when devices connect) and keeps the receiver, so that
// a test can deliver as NATS would.
type fakeFabric struct {
	mu     sync.Mutex
	err    error
	recv   mqtt.FabricReceiver
	shared []mqtt.SharedSubscription
}

func (f *fakeFabric) Start(ctx context.Context, r mqtt.FabricReceiver) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recv = r
	return nil
}

func (f *fakeFabric) Publish(m *mqtt.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(m.Topic, "$") {
		return nil
	}
	return f.err
}

func (f *fakeFabric) Retain(m *mqtt.Message) error { return nil }

func (f *fakeFabric) JoinShared(s mqtt.SharedSubscription) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shared = append(f.shared, s)
	return nil
}

func (f *fakeFabric) LeaveShared(s mqtt.SharedSubscription) error { return nil }
func (f *fakeFabric) Connected() bool                             { return true }
func (f *fakeFabric) Close() error                                { return nil }

func (f *fakeFabric) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeFabric) joined() []mqtt.SharedSubscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mqtt.SharedSubscription(nil), f.shared...)
}

// A message the fabric could not take at all reaches this node's member
// of a shared subscription from the gateway; one the fabric took but
// could not confirm in time (ErrUnconfirmed) does not: NATS may still give
// it to a member, here or elsewhere, and the member would get it twice.
// Both are counted.
func TestClusterPublishNotRouted(t *testing.T) {
	f := &fakeFabric{}
	e := newEnv(t)
	e.startGatewayWith(func(g *mqtt.Gateway) { g.Cluster = f })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	member := e.mustDial(c, dialOptions{clientID: "member"})
	member.mustSubscribe(t, "$share/g/fleet/job", 1)
	testwait.For(t, "the gateway to join the group", func() bool { return len(f.joined()) == 1 })
	if s := f.joined()[0]; s.Scope != scopeA || s.Group != "g" || s.Filter != "fleet/job" {
		t.Fatalf("joined %+v", s)
	}
	pub := e.mustDial(c, dialOptions{clientID: "publisher"})

	for _, tt := range []struct {
		name    string
		err     error
		metric  string
		locally bool
	}{
		{"ok/routed", nil, "fleetcert_mqtt_cluster_routed_total", false},
		{"ok/unconfirmed-not-delivered-twice", mqtt.ErrUnconfirmed, "fleetcert_mqtt_cluster_unconfirmed_total", false},
		{"ok/unroutable-delivered-here", errors.New("not connected to NATS"), "fleetcert_mqtt_cluster_unroutable_total", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.set(tt.err)
			before := e.metric(tt.metric)
			pub.mustPublish(t, "fleet/job", 1, false, tt.name)
			// (routed also counts the gateway's events)
			if got := e.metric(tt.metric); got != before+1 && (tt.err != nil || got < before+1) {
				t.Fatalf("%s went from %d to %d, want one more", tt.metric, before, got)
			}
			if tt.locally {
				member.expect(t, "fleet/job", tt.name)
				member.quiet(t)
				return
			}
			member.quiet(t)
			// NATS gives it to this node's group member.
			f.recv.DeliverShared(mqtt.SharedSubscription{Scope: scopeA, Group: "g", Filter: "fleet/job"},
				&mqtt.Message{Scope: scopeA, Topic: "fleet/job", Payload: []byte(tt.name), QoS: 1, Created: time.Now().Unix()})
			member.expect(t, "fleet/job", tt.name)
			member.quiet(t)
		})
	}
}
