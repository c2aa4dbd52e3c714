package mqtt_test

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// sendQuotaHook lets every client in and gives each the send quota
// (outbound QoS 1 and 2 messages unacknowledged) window, as the gateway
// does for MQTT 3.1.1 devices (quota.go, OnConnect).
type sendQuotaHook struct {
	mochi.HookBase
	window int32
	// unacked counts the QoS 1 publishes written to "sub" and not yet
	// acknowledged; most is its highest value.
	unacked, most atomic.Int32
}

func (h *sendQuotaHook) ID() string { return "send-quota" }

func (h *sendQuotaHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck || b == mochi.OnConnect ||
		b == mochi.OnPacketRead || b == mochi.OnPacketSent
}

// OnPacketSent counts the QoS 1 publishes the subscriber has not
// acknowledged. (It runs once the packet is written, so the subscriber's
// PUBACK may be read first: the count can only be low, never high.)
func (h *sendQuotaHook) OnPacketSent(cl *mochi.Client, pk packets.Packet, _ []byte) {
	if cl.ID == "sub" && pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 {
		n := h.unacked.Add(1)
		for m := h.most.Load(); n > m && !h.most.CompareAndSwap(m, n); m = h.most.Load() {
		}
	}
}

// OnPacketRead counts the subscriber's acknowledgements.
func (h *sendQuotaHook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.ID == "sub" && pk.FixedHeader.Type == packets.Puback {
		h.unacked.Add(-1)
	}
	return pk, nil
}

func (h *sendQuotaHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *sendQuotaHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *sendQuotaHook) OnConnect(cl *mochi.Client, _ packets.Packet) error {
	cl.Properties.Props.ReceiveMaximum = uint16(h.window)
	cl.State.Inflight.ResetSendQuota(h.window)
	return nil
}

// startMochi starts a bare mochi broker on a loopback port whose clients
// each get a send quota of window and an outbound queue of pending
// packets, and returns it, its address and its hook.
func startMochi(t *testing.T, window int32, pending int32) (*mochi.Server, string, *sendQuotaHook) {
	t.Helper()
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumInflight = 65535              // every message held, none dropped for a full session
	caps.MaximumClientWritesPending = pending // the gateway's DefaultMaxPendingWrites is 128
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Capabilities: caps})
	h := &sendQuotaHook{window: window}
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, l.Address(), h
}

// pahoClient connects a paho MQTT 3.1.1 client to addr.
// configure, when given, changes the options before connecting. onLost
// hears of a connection lost before the test's end: paho's Disconnect(0)
// at the end returns before it has disconnected, so the broker's Close
// right after may end the connection first, which is no loss.
func pahoClient(t *testing.T, addr, id string, onLost func(error), configure ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	var ending atomic.Bool
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			if onLost != nil && !ending.Load() {
				onLost(err)
			}
		})
	for _, f := range configure {
		f(o)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() {
		ending.Store(true)
		c.Disconnect(0)
	})
	return c
}

// waitAll waits until got() reaches want, and fails once it has not
// moved for stall: a stalled session, not a slow one (under the race
// detector on a loaded machine, deliveries still come many a second).
func waitAll(t *testing.T, what string, want int, got func() int, state func() string) {
	t.Helper()
	const stall = 15 * time.Second
	last, since := -1, time.Now()
	for deadline := testwait.Deadline(); ; time.Sleep(testwait.Poll) {
		n := got()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) > stall || time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d, none for %s (%s)", what, n, want, time.Since(since).Round(time.Millisecond), state())
		}
	}
}

// waitGroup waits for wg, failing t after testwait.Hang.
func waitGroup(t *testing.T, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(testwait.Hang):
		t.Fatalf("waited %s for %s", testwait.Hang, what)
	}
}

// TestMochiSendQuotaConcurrentPublishers is issue 16's QoS 1 stall on
// one broker: many publishers deliver at once to a QoS 1 subscriber
// whose send quota (MQTT 5 Receive Maximum, the gateway's inflight quota
// for MQTT 3.1.1 devices) is small. Every message must arrive, once, in
// each publisher's order, while the subscriber acknowledges each as it
// comes.
func TestMochiSendQuotaConcurrentPublishers(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		window               int32
		publishers, messages int
		pending              int32 // the outbound queue; 128 when 0
	}{
		{"ok/window-1", 1, 10, 100, 0},
		{"ok/window-4", 4, 50, 40, 0},
		{"ok/window-100", 100, 50, 60, 0},
		// A publish that finds the subscriber's outbound queue full
		// waits, as for quota (mochi v2.7.9 dropped it).
		{"ok/outbound-queue-4", 100, 20, 50, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pending == 0 {
				tt.pending = 128
			}
			s, addr, hook := startMochi(t, tt.window, tt.pending)
			got := newPublisherOrder(tt.publishers)
			sub := pahoClient(t, addr, "sub", func(err error) { t.Errorf("subscriber lost: %v", err) })
			tok := sub.Subscribe("q/#", 1, got.receive)
			if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			pubs := make([]paho.Client, tt.publishers)
			for i := range pubs {
				pubs[i] = pahoClient(t, addr, fmt.Sprint("pub-", i), nil)
			}
			var wg sync.WaitGroup
			for i, c := range pubs {
				wg.Go(func() {
					var last paho.Token
					for j := range tt.messages {
						last = c.Publish("q/m", 1, false, fmt.Sprint(i, "-", j))
					}
					last.WaitTimeout(testwait.Hang)
				})
			}
			// Delivery is watched while the publishers publish: a stalled
			// session also blocks them (mochi stops reading a publisher
			// whose message waits for the subscriber's quota, and each
			// paho Publish then waits up to 30 s), which must fail as a
			// stall, naming the session's state, not hang the test.
			total := tt.publishers * tt.messages
			waitAll(t, "delivered to the QoS 1 subscriber", total, got.count, func() string {
				cl, _ := s.Clients.Get("sub")
				return fmt.Sprintf("session holds %d inflight, %d of them waiting for send quota",
					cl.State.Inflight.Len(), cl.State.Inflight.Waiting())
			})
			waitGroup(t, "the publishers' last acknowledgements", &wg)
			// Nothing more (a duplicate) comes once the session is idle.
			testwait.For(t, "the session idle", func() bool {
				cl, _ := s.Clients.Get("sub")
				return cl.State.Inflight.Len() == 0
			})
			got.check(t, total)
			if most := hook.most.Load(); most > tt.window {
				t.Errorf("%d QoS 1 publishes unacknowledged at once, over the send quota of %d", most, tt.window)
			}
		})
	}
}

// TestGatewayQoS1ManyPublishers is issue 16's stall through the gateway:
// devices publishing at once to a QoS 1 subscriber with a small inflight
// quota (the gateway's MaxInflightMessages, its send quota for MQTT 3.1.1
// devices). Every message arrives, once, in each publisher's order.
func TestGatewayQoS1ManyPublishers(t *testing.T) {
	const window, publishers, messages = 3, 20, 30
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.MaxInflightMessages = window
		gw.MaxPublishesPerSecond = -1
		gw.MaxInboundBytesPerSecond = -1
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	got := newPublisherOrder(publishers)
	sub := e.mustDial(c, dialOptions{clientID: "sub"})
	tok := sub.Subscribe("many/#", 1, got.receive)
	if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pubs := make([]*device, publishers)
	for i := range pubs {
		pubs[i] = e.mustDial(c, dialOptions{clientID: fmt.Sprint("pub-", i)})
	}
	var wg sync.WaitGroup
	for i, d := range pubs {
		wg.Go(func() {
			var last paho.Token
			for j := range messages {
				last = d.Publish("many/m", 1, false, fmt.Sprint(i, "-", j))
			}
			last.WaitTimeout(testwait.Hang)
		})
	}
	waitAll(t, "delivered through the gateway", publishers*messages, got.count,
		func() string { return fmt.Sprintf("queues full: %d", e.quotaCount(mqtt.QuotaQueuedMessages)) })
	waitGroup(t, "the publishers' last acknowledgements", &wg)
	sub.Disconnect(100) // after its PUBACKs: nothing more was coming
	got.check(t, publishers*messages)
}

// publisherOrder receives messages "{publisher}-{n}" and notes any that
// come out of their publisher's order or twice.
type publisherOrder struct {
	mu       sync.Mutex
	next     []int // the next message expected of each publisher
	problems []string
	n        atomic.Int64
}

func newPublisherOrder(publishers int) *publisherOrder {
	return &publisherOrder{next: make([]int, publishers)}
}

func (o *publisherOrder) receive(_ paho.Client, m paho.Message) {
	p, j, _ := strings.Cut(string(m.Payload()), "-")
	pi, _ := strconv.Atoi(p)
	ji, _ := strconv.Atoi(j)
	o.mu.Lock()
	if ji != o.next[pi] && len(o.problems) < 10 {
		o.problems = append(o.problems, fmt.Sprintf("publisher %d: message %d after %d", pi, ji, o.next[pi]-1))
	}
	o.next[pi] = ji + 1
	o.mu.Unlock()
	o.n.Add(1)
}

func (o *publisherOrder) count() int { return int(o.n.Load()) }

// check fails t unless want messages came, each once and in order.
func (o *publisherOrder) check(t *testing.T, want int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if got := o.count(); got != want {
		t.Errorf("%d delivered, want %d", got, want)
	}
	if len(o.problems) > 0 {
		t.Errorf("out of order or duplicated:\n%s", strings.Join(o.problems, "\n"))
	}
}

// TestMochiSendQuotaReconnect: messages held for a persistent session
// while its device is away, more than its send quota, reach it when it
// comes back, once each and in order: those counted as sent are resent
// first (in the order they were sent), then those that waited for quota.
func TestMochiSendQuotaReconnect(t *testing.T) {
	const window, messages = 3, 40
	s, addr, _ := startMochi(t, window, 128)
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	away := pahoClient(t, addr, "sub", nil, persistent)
	if tok := away.Subscribe("q/#", 1, nil); !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	away.Disconnect(100)
	testwait.For(t, "the session offline", func() bool {
		cl, ok := s.Clients.Get("sub")
		return ok && cl.Closed()
	})
	pub := pahoClient(t, addr, "pub", nil)
	for j := range messages {
		if tok := pub.Publish("q/m", 1, false, strconv.Itoa(j)); !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// mochi acknowledges a publish before it delivers it: a session taken
	// over meanwhile may lose it (upstream, not this test's subject).
	testwait.For(t, "the session holding every message", func() bool {
		cl, _ := s.Clients.Get("sub")
		return cl.State.Inflight.Len() == messages
	})
	var (
		mu  sync.Mutex
		got []int
	)
	pahoClient(t, addr, "sub", nil, persistent, func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			j, _ := strconv.Atoi(string(m.Payload()))
			mu.Lock()
			got = append(got, j)
			mu.Unlock()
		})
	})
	waitAll(t, "delivered after reconnection", messages, func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}, func() string {
		cl, _ := s.Clients.Get("sub")
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("got %v; session holds %d inflight, %d waiting", got, cl.State.Inflight.Len(), cl.State.Inflight.Waiting())
	})
	testwait.For(t, "the session idle", func() bool {
		cl, _ := s.Clients.Get("sub")
		return cl.State.Inflight.Len() == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for i, j := range got {
		if i != j {
			t.Fatalf("got %v, want 0 to %d in order, once each", got, messages-1)
		}
	}
}
