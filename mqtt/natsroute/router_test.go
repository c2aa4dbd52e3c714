package natsroute_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
	"github.com/fleetcert/fleetcert/mqtt/natsroute"
)

var scope = fleetcert.Scope{AccountID: "111122223333", Region: "eu-west-1"}

// startNATS starts a nats-server with JetStream on a loopback port and
// returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, ServerName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(testwait.Hang) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}

// proxy forwards loopback connections to a NATS server; frozen, it holds
// what the server sends (PONGs included) while what clients send still
// reaches the server: a node whose link to NATS stalls one way, as on a
// starved machine.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(target, "nats://")}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() {
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					p.mu.Lock()
					for p.frozen {
						p.cond.Wait()
					}
					p.mu.Unlock()
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *proxy) freeze(frozen bool) {
	p.mu.Lock()
	p.frozen = frozen
	p.mu.Unlock()
	p.cond.Broadcast()
}

// cut closes the connections made so far: their clients reconnect.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) close() {
	p.ln.Close()
	p.freeze(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// recorder is a node's gateway as a Router delivers to it.
type recorder struct {
	mu        sync.Mutex
	delivered []string          // payloads, in order
	shared    []string          // payloads given to a shared subscription
	retained  map[string]string // topic → payload of its retained message
	ever      map[string]bool   // topics that have had one
	maxAge    time.Duration
}

func (r *recorder) Deliver(m *mqtt.Message) {
	r.mu.Lock()
	r.delivered = append(r.delivered, string(m.Payload))
	r.mu.Unlock()
}

func (r *recorder) DeliverShared(s mqtt.SharedSubscription, m *mqtt.Message) {
	r.mu.Lock()
	r.shared = append(r.shared, string(m.Payload))
	r.mu.Unlock()
}

func (r *recorder) Retained(m *mqtt.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Payload) == 0 {
		delete(r.retained, m.Topic)
		return
	}
	r.retained[m.Topic] = string(m.Payload)
	r.ever[m.Topic] = true
}

func (r *recorder) MaxMessageExpiry() time.Duration { return r.maxAge }

func (r *recorder) deliveries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.delivered...)
}

func (r *recorder) hadRetained(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ever[topic]
}

func (r *recorder) retainedOf(topic string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.retained[topic]
	return p, ok
}

// startRouter starts a Router on url delivering to a new recorder.
func startRouter(t *testing.T, url string, configure func(*natsroute.Router)) (*natsroute.Router, *recorder) {
	t.Helper()
	rt := natsroute.New(url)
	rt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if configure != nil {
		configure(rt)
	}
	r := &recorder{retained: map[string]string{}, ever: map[string]bool{}, maxAge: 24 * time.Hour}
	if err := rt.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	if !rt.Connected() {
		t.Fatal("not connected")
	}
	return rt, r
}

func message(topic, payload string, qos byte) *mqtt.Message {
	return &mqtt.Message{Scope: scope, Topic: topic, Payload: []byte(payload), QoS: qos, Created: time.Now().Unix()}
}

// waitRouted publishes from one router until the other receives: both
// routers' subscriptions are in place.
func waitRouted(t *testing.T, from *natsroute.Router, to *recorder) {
	t.Helper()
	// A probe published before the other router's subscription reaches
	// NATS is lost, so another is published while the last has not
	// arrived for a while. It returns once the last one published has:
	// the earlier ones arrived before it or never will, so none arrives
	// after it to disturb what the test counts.
	i := 0
	var sent time.Time
	testwait.For(t, "routing between the two routers", func() bool {
		if i > 0 && slices.Contains(to.deliveries(), "probe-"+strconv.Itoa(i)) {
			return true
		}
		if i == 0 || time.Since(sent) > 50*time.Millisecond {
			i++
			sent = time.Now()
			if err := from.Publish(message("probe", "probe-"+strconv.Itoa(i), 0)); err != nil {
				t.Fatal(err)
			}
		}
		return false
	})
}

// Publishes that wait for a confirmation at the same time share one
// round trip to NATS: N publishes queued behind a round trip that NATS
// does not answer yet are confirmed by at most one more.
func TestPublishConfirmsInGroups(t *testing.T) {
	url := startNATS(t)
	p := startProxy(t, url)
	a, _ := startRouter(t, p.url(), func(rt *natsroute.Router) { rt.ConfirmTimeout = testwait.Hang })
	_, b := startRouter(t, url, nil)
	waitRouted(t, a, b)
	before := a.RoundTrips()

	const n = 50
	p.freeze(true)
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- a.Publish(message("group", strconv.Itoa(i), 1)) }()
	}
	testwait.For(t, "every publish to wait for its confirmation", func() bool { return a.Waiting() == n })
	p.freeze(false)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if rts := a.RoundTrips() - before; rts > 2 {
		t.Fatalf("%d publishes confirmed with %d round trips, want 2 at most", n, rts)
	}
	testwait.For(t, "the other node to get every message", func() bool { return len(b.deliveries()) >= n+1 })
}

// A stalled link to NATS stalls a publisher for one confirmation timeout,
// not one per message: mochi reads a device's publishes one at a time and
// waits for Publish before reading the next (and the device's PINGREQ).
// The messages still reach the other node, once each and in order, and
// confirmations resume when NATS answers again.
func TestPublishStalledNATS(t *testing.T) {
	url := startNATS(t)
	p := startProxy(t, url)
	const timeout = 200 * time.Millisecond
	a, _ := startRouter(t, p.url(), func(rt *natsroute.Router) { rt.ConfirmTimeout = timeout })
	_, b := startRouter(t, url, nil)
	waitRouted(t, a, b)
	seen := len(b.deliveries())

	const n = 20
	p.freeze(true)
	start := time.Now()
	for i := range n {
		err := a.Publish(message("stall", strconv.Itoa(i), 1))
		if !errors.Is(err, mqtt.ErrUnconfirmed) {
			t.Fatalf("publish %d while NATS does not answer: %v, want ErrUnconfirmed", i, err)
		}
	}
	stalled := time.Since(start)
	t.Logf("%d QoS 1 publishes, one after the other, while NATS did not answer: %s (confirmation timeout %s)", n, stalled.Round(time.Millisecond), timeout)
	if stalled > n/2*timeout {
		t.Fatalf("%d publishes took %s with a %s confirmation timeout: the publisher waited for each", n, stalled, timeout)
	}
	testwait.For(t, "the other node to get the unconfirmed messages", func() bool { return len(b.deliveries()) >= seen+n })
	p.freeze(false)
	testwait.For(t, "confirmations to resume", func() bool { return a.Publish(message("stall", "after", 1)) == nil })
	got := b.deliveries()[seen:]
	for i := range n {
		if got[i] != strconv.Itoa(i) {
			t.Fatalf("the other node got %q: not each message once, in order", got)
		}
	}
	for _, p := range got[n:] {
		if p != "after" {
			t.Fatalf("the other node got %q after the unconfirmed messages: a message twice", got)
		}
	}
}

// Retained messages expire in the bucket as mochi expires them on one
// broker: at their MQTT 5 message expiry interval, and at the receiver's
// MaxMessageExpiry (MaximumMessageExpiryInterval) at most; a node that
// starts after gets none of them, and the nodes that had one drop it.
func TestRetainedExpiry(t *testing.T) {
	url := startNATS(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// The bucket as the routers of the release before created it, without
	// TTL: the routers update it.
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: natsroute.DefaultBucket,
		History: 1, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	const maxAge = 4 * time.Second
	short := func(rt *natsroute.Router) { rt.RetainedMaxAge = maxAge }
	a, _ := startRouter(t, url, short)
	_, b := startRouter(t, url, short)

	old := time.Now().Add(-time.Minute).Unix()
	for _, tt := range []struct {
		name, topic string
		m           *mqtt.Message
	}{
		{"expiry", "e", &mqtt.Message{MessageExpiry: 2}},
		{"max-age", "m", &mqtt.Message{}},
		{"expired-when-stored", "x", &mqtt.Message{MessageExpiry: 5, Created: old}},
		{"too-old-when-stored", "o", &mqtt.Message{Created: old}},
	} {
		m := tt.m
		m.Scope, m.Topic, m.Payload, m.Retain = scope, tt.topic, []byte(tt.name), true
		if m.Created == 0 {
			m.Created = time.Now().Unix()
		}
		if err := a.Retain(m); err != nil {
			t.Fatalf("%s: Retain: %v", tt.name, err)
		}
	}
	// A value written by a node that kept it while NATS was unreachable,
	// long after it was published: the bucket's TTL runs from the write.
	kv, err := js.KeyValue(context.Background(), natsroute.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), natsroute.RetainedKey(scope, "late"), []byte(fmt.Sprintf(`{"q":1,"p":"bGF0ZQ==","c":%d}`, old))); err != nil {
		t.Fatal(err)
	}
	if err := a.Retain(&mqtt.Message{Scope: scope, Topic: "kept", Payload: []byte("kept"), Retain: true, Created: time.Now().Unix()}); err != nil {
		t.Fatal(err)
	}

	for _, topic := range []string{"e", "m", "kept"} {
		testwait.For(t, "node B to get retained message "+topic, func() bool { return b.hadRetained(topic) })
	}
	_, c := startRouter(t, url, short) // reads the bucket in full before Start returns
	for _, topic := range []string{"x", "o", "late"} {
		if p, ok := c.retainedOf(topic); ok {
			t.Errorf("a node started later got retained message %q, expired when stored", p)
		}
	}
	if p, ok := c.retainedOf("kept"); !ok || p != "kept" {
		t.Errorf("a node started later got %q for the retained message within its lifetime", p)
	}

	// The bucket removes each at its time and every node hears of it.
	for _, topic := range []string{"e", "m", "kept"} {
		testwait.For(t, "retained message "+topic+" to expire on every node", func() bool {
			_, inB := b.retainedOf(topic)
			_, inC := c.retainedOf(topic)
			return !inB && !inC
		})
		if _, err := kv.Get(context.Background(), natsroute.RetainedKey(scope, topic)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("retained message %s expired on the nodes but the bucket has it: %v", topic, err)
		}
	}
	_, d := startRouter(t, url, short)
	for _, topic := range []string{"e", "m", "kept", "late"} {
		if p, ok := d.retainedOf(topic); ok {
			t.Errorf("a node started after expiry got retained message %q", p)
		}
	}
}

// A retained message kept because NATS did not answer in time does not
// replace a later one of its topic when it is stored after a reconnect.
func TestRetainedPendingNotStale(t *testing.T) {
	url := startNATS(t)
	p := startProxy(t, url)
	a, _ := startRouter(t, p.url(), func(rt *natsroute.Router) { rt.ConfirmTimeout = 200 * time.Millisecond })
	_, b := startRouter(t, url, nil)
	retain := func(payload string) error {
		return a.Retain(&mqtt.Message{Scope: scope, Topic: "state", Payload: []byte(payload), Retain: true, Created: time.Now().Unix()})
	}
	p.freeze(true)
	if err := retain("old"); err == nil {
		t.Fatal("Retain confirmed while NATS does not answer")
	}
	p.freeze(false)
	if err := retain("new"); err != nil {
		t.Fatal(err)
	}
	p.cut() // a reconnect stores what was kept
	testwait.For(t, "the router to reconnect and store what it kept", func() bool { return a.Connected() && a.Pending() == 0 })
	marker := 0
	testwait.For(t, "node B to have read the bucket after the reconnect", func() bool {
		marker++
		m := fmt.Sprint("m", marker)
		if err := a.Retain(&mqtt.Message{Scope: scope, Topic: "marker", Payload: []byte(m), Retain: true, Created: time.Now().Unix()}); err != nil {
			return false
		}
		testwait.For(t, "the marker", func() bool { p, _ := b.retainedOf("marker"); return p == m })
		return true
	})
	if p, _ := b.retainedOf("state"); p != "new" {
		t.Fatalf("retained message %q after the reconnect, want the later one", p)
	}
}

// A retained message NATS did not store in time is stored once NATS
// answers again, without waiting for a reconnect; while a stall lasts,
// retained publishes do not wait for it.
func TestRetainedStoredAfterStall(t *testing.T) {
	url := startNATS(t)
	p := startProxy(t, url)
	const timeout = 200 * time.Millisecond
	a, _ := startRouter(t, p.url(), func(rt *natsroute.Router) { rt.ConfirmTimeout = timeout })
	_, b := startRouter(t, url, nil)
	waitRouted(t, a, b)
	p.freeze(true)
	if err := a.Publish(message("stall", "q1", 1)); !errors.Is(err, mqtt.ErrUnconfirmed) {
		t.Fatalf("Publish while NATS does not answer: %v", err)
	}
	start := time.Now()
	for i := range 10 {
		if err := a.Retain(&mqtt.Message{Scope: scope, Topic: fmt.Sprint("r", i), Payload: []byte("kept"), Retain: true, Created: time.Now().Unix()}); err == nil {
			t.Fatal("Retain confirmed while NATS does not answer")
		}
	}
	if d := time.Since(start); d > 5*timeout {
		t.Fatalf("10 retained publishes during a stall took %s (timeout %s): each waited", d, timeout)
	}
	p.freeze(false)
	for i := range 10 {
		testwait.For(t, "node B to get the retained messages of the stall", func() bool { return b.hadRetained(fmt.Sprint("r", i)) })
	}
	if n := a.Pending(); n != 0 {
		t.Fatalf("%d retained messages still pending", n)
	}
}
