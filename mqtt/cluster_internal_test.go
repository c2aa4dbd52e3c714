package mqtt

import (
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

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

// mochi v2.7.9's Inflight.NextImmediate read-locks a session's inflight
// messages and then calls GetAll, which read-locks them again. A writer
// (Set: a publisher's goroutine delivering a QoS 1 message to the
// session) that comes between the two waits for the first read lock, and
// the second waits for the writer: the session's reader (it calls
// NextImmediate after each packet) and every publisher writing to the
// session hang, and their devices are dropped by their keepalive. Seen in
// the cluster benchmark with 50 publishers (and with NO_NATS=1): the
// stall issue 16 reported. It is mochi's, on one node too: fleetcert
// builds with a copy of mochi that fixes it (third_party/mochi-mqtt-server,
// FLEETCERT.md); this test fails, once the two have hung for 10 s, on
// mochi v2.7.9 itself.
func TestMochiInflightDeadlock(t *testing.T) {
	in := mochi.NewInflights()
	in.Set(packets.Packet{PacketID: 1, Expiry: -1})
	mustProgress(t, "Inflight.NextImmediate and a concurrent Set",
		func() { in.Set(packets.Packet{PacketID: 2}) }, func() { in.NextImmediate() })
}

// mochi v2.7.9's Clients.GetByListener read-locks the clients and then
// calls Len, which read-locks them again (mochi issue #488): a writer (Add
// or Delete, a device connecting or leaving) that comes between the two
// hangs both for good, and every later connection and disconnection
// behind them. The gateway's Close calls it (mochi's closeListenerClients)
// while devices come and go: it hung TestMessaging's cleanup in CI, and a
// `go test -race -count=5 ./mqtt/` run here, with every client goroutine
// waiting in Clients.Delete. This test fails on mochi v2.7.9 itself.
func TestMochiClientsGetByListenerDeadlock(t *testing.T) {
	clients := mochi.NewClients()
	cl := &mochi.Client{ID: "device"}
	cl.Net.Listener = "mtls"
	mustProgress(t, "Clients.GetByListener and a concurrent Add and Delete",
		func() { clients.Add(cl); clients.Delete(cl.ID) }, func() { clients.GetByListener("mtls") })
}

// mustProgress calls call 200,000 times on one goroutine while another
// calls writer over and over, and fails t when the calls make no progress
// for 5 s: hung (with the race detector and a loaded machine the calls are
// slow, not stopped).
func mustProgress(t *testing.T, what string, writer, call func()) {
	t.Helper()
	const calls = 200_000
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				writer()
			}
		}
	}()
	var done atomic.Int64
	go func() {
		for range calls {
			call()
			done.Add(1)
		}
	}()
	last, since := int64(-1), time.Now()
	for {
		n := done.Load()
		if n == calls {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 5*time.Second {
			t.Fatalf("%s hung after %d calls", what, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
