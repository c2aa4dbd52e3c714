package mqtt_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// hugeHeader is the fixed header of a packet of type typ (shifted) that
// declares the largest remaining length MQTT can say: 256 MiB - 1.
func hugeHeader(typ byte) []byte { return []byte{typ << 4, 0xff, 0xff, 0xff, 0x7f} }

// allocatedDuring returns the bytes the process allocated while fn ran.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestPacketSizeQuota: a packet that declares more than MaxPacketSize is
// refused on its fixed header: the connection is closed without the
// gateway waiting for, or allocating, the body.
func TestPacketSizeQuota(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) { gw.HandshakeTimeout = testwait.Hang })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	const limit = 32 << 20 // far below the 256 MiB declared, far above the test's own allocations

	t.Run("fail/connect-declaring-256MiB", func(t *testing.T) {
		conn := e.rawTLS(t, c, "", nil)
		var err error
		n := allocatedDuring(func() {
			conn.Write(hugeHeader(packets.Connect))
			_, err = io.ReadAll(conn)
		})
		if err != nil {
			t.Fatalf("the connection was not closed: %v", err)
		}
		if n > limit {
			t.Fatalf("the gateway allocated %d MiB for the declared body", n>>20)
		}
		testwait.For(t, "the refusal counted", func() bool { return e.quotaCount(mqtt.QuotaPacketSize) == 1 })
	})
	t.Run("fail/publish-declaring-256MiB", func(t *testing.T) {
		r, ack := e.connectRaw(t, c, "", "big-publisher", 5)
		if ack.ReasonCode != 0 || ack.Properties.MaximumPacketSize != mqtt.DefaultMaxPacketSize {
			t.Fatalf("CONNACK reason %#x, maximum packet size %d", ack.ReasonCode, ack.Properties.MaximumPacketSize)
		}
		var err error
		n := allocatedDuring(func() {
			r.c.Write(hugeHeader(packets.Publish))
			err = r.waitClosed()
		})
		if !errors.Is(err, io.EOF) {
			t.Fatalf("the connection was not closed: %v", err)
		}
		if n > limit {
			t.Fatalf("the gateway allocated %d MiB for the declared body", n>>20)
		}
		testwait.For(t, "the refusal counted", func() bool { return e.quotaCount(mqtt.QuotaPacketSize) == 2 })
		// The counter moves before the log line is written: wait for both.
		line := "quota=packet_size certificateId=" + fleetcert.CertificateID(c.Cert.Raw) + " clientId=big-publisher account=" + accountA
		testwait.For(t, "a log line naming the device and the quota", func() bool { return strings.Contains(e.logs.String(), line) })
	})
	t.Run("ok/publish-under-the-quota", func(t *testing.T) {
		r, _ := e.connectRaw(t, c, "", "", 5)
		if code := r.publish("fleet/big", make([]byte, 100<<10), false); code != 0 {
			t.Fatalf("PUBACK reason %#x", code)
		}
	})
}

func TestClientIDQuota(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	long := strings.Repeat("x", mqtt.DefaultMaxClientIDLength+1)

	_, ack := e.connectRaw(t, c, "", long, 5)
	if ack.ReasonCode != packets.ErrClientIdentifierNotValid.Code {
		t.Fatalf("MQTT 5: CONNACK reason %#x, want 0x85", ack.ReasonCode)
	}
	if _, err := e.dial(c, dialOptions{clientID: long}); err == nil || !strings.Contains(err.Error(), "identifier rejected") {
		t.Fatalf("MQTT 3.1.1: %v, want identifier rejected", err)
	}
	if got := e.quotaCount(mqtt.QuotaClientIDLength); got != 2 {
		t.Fatalf("client_id_length refusals = %d", got)
	}
	if !strings.Contains(e.logs.String(), "quota=client_id_length certificateId="+fleetcert.CertificateID(c.Cert.Raw)) {
		t.Fatalf("no log line:\n%s", e.logs)
	}
	e.mustDial(c, dialOptions{clientID: long[:mqtt.DefaultMaxClientIDLength]})
}

func TestSubscribeQuotas(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	const quotaExceeded = 0x97

	t.Run("fail/too-many-filters-in-one-subscribe", func(t *testing.T) {
		r, _ := e.connectRaw(t, c, "", "", 5)
		var filters []string
		for i := range mqtt.DefaultMaxFiltersPerSubscribe + 1 {
			filters = append(filters, "f/"+string(rune('a'+i)))
		}
		for i, code := range r.subscribe(filters...) {
			if code != quotaExceeded {
				t.Errorf("filter %d: reason %#x", i, code)
			}
		}
		if codes := r.subscribe(filters[:mqtt.DefaultMaxFiltersPerSubscribe]...); !bytes.Equal(codes, bytes.Repeat([]byte{1}, 8)) {
			t.Fatalf("8 filters: %x", codes)
		}
	})
	t.Run("fail/topic-quotas", func(t *testing.T) {
		r, _ := e.connectRaw(t, c, "", "", 5)
		deep := "a/b/c/d/e/f/g/h" // 7 slashes
		long := strings.Repeat("l", mqtt.DefaultMaxTopicLength)
		codes := r.subscribe(deep, deep+"/i", long, long+"x", "$share/g/"+deep)
		if want := []byte{1, quotaExceeded, 1, quotaExceeded, 1}; !bytes.Equal(codes, want) {
			t.Fatalf("reason codes %x, want %x", codes, want)
		}
	})
	t.Run("fail/subscriptions-per-connection", func(t *testing.T) {
		r, _ := e.connectRaw(t, c, "", "", 5)
		for i := 0; i < mqtt.DefaultMaxSubscriptionsPerConnection; i += 5 {
			var filters []string
			for j := i; j < i+5; j++ {
				filters = append(filters, "s/"+strings.Repeat("n", j+1))
			}
			if codes := r.subscribe(filters...); !bytes.Equal(codes, bytes.Repeat([]byte{1}, 5)) {
				t.Fatalf("subscriptions %d-%d: %x", i, i+4, codes)
			}
		}
		// Resubscribing replaces; a new filter is one too many.
		if codes := r.subscribe("s/n", "s/new"); !bytes.Equal(codes, []byte{1, quotaExceeded}) {
			t.Fatalf("at the quota: %x", codes)
		}
	})
	t.Run("fail/mqtt3-failure-code", func(t *testing.T) {
		r, _ := e.connectRaw(t, c, "", "v3-sub", 4)
		codes := r.subscribe("a/b/c/d/e/f/g/h/i")
		if !bytes.Equal(codes, []byte{0x80}) {
			t.Fatalf("MQTT 3.1.1 SUBACK %x, want 80", codes)
		}
	})
	for _, q := range []string{mqtt.QuotaFiltersPerSubscribe, mqtt.QuotaTopicSlashes, mqtt.QuotaTopicLength, mqtt.QuotaSubscriptionsPerConnection} {
		if e.quotaCount(q) == 0 {
			t.Errorf("no refusal counted for %s", q)
		}
	}
}

func TestPublishQuotas(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) { gw.MaxPublishesPerSecond = 10 })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)

	t.Run("fail/topic-too-deep", func(t *testing.T) {
		sub := e.mustDial(c, dialOptions{})
		sub.mustSubscribe(t, "#", 1)
		r, _ := e.connectRaw(t, c, "", "", 5)
		if code := r.publish("a/b/c/d/e/f/g/h/i", []byte("deep"), false); code != packets.ErrQuotaExceeded.Code {
			t.Fatalf("PUBACK reason %#x, want 0x97", code)
		}
		r.publish("a/b", []byte("shallow"), false)
		if m := sub.next(t, "a/b"); string(m.Payload()) != "shallow" {
			t.Fatalf("got %q", m.Payload())
		}
		sub.quiet(t)
	})
	t.Run("fail/publishes-per-second", func(t *testing.T) {
		r, _ := e.connectRaw(t, c, "", "fast", 5)
		const n = 40
		start := time.Now()
		for range n {
			r.publishAsync("fleet/rate", []byte("x"), false)
		}
		accepted, refused := 0, 0
		for range n {
			switch code := r.readType(packets.Puback).ReasonCode; code {
			case 0:
				accepted++
			case packets.ErrMessageRateTooHigh.Code:
				refused++
			default:
				t.Fatalf("PUBACK reason %#x", code)
			}
		}
		elapsed := time.Since(start)
		if max := 10 + int(10*elapsed.Seconds()) + 1; accepted > max {
			t.Fatalf("%d publishes accepted in %s, at most %d allowed", accepted, elapsed, max)
		}
		// Sent faster than the bucket refills (a second's worth, then 10
		// a second), some must be refused; a machine so slow that the 40
		// took 3 s or more may have had room for all.
		if refused == 0 && elapsed < 3*time.Second {
			t.Fatalf("none of %d publishes in %s refused", n, elapsed)
		}
		if got := e.quotaCount(mqtt.QuotaPublishesPerSecond); got != refused {
			t.Fatalf("publishes_per_second refusals = %d, want %d", got, refused)
		}
		if n := strings.Count(e.logs.String(), "quota=publishes_per_second"); n != 1 {
			t.Fatalf("%d log lines, want one per connection", n)
		}
	})
}

// TestInboundBytesQuota: a device that sends faster than its byte rate
// is read more slowly.
func TestInboundBytesQuota(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) { gw.MaxInboundBytesPerSecond = 32 << 10 })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	r, _ := e.connectRaw(t, c, "", "", 5)
	start := time.Now()
	for range 3 {
		if code := r.publish("fleet/bulk", make([]byte, 30<<10), false); code != 0 {
			t.Fatalf("PUBACK %#x", code)
		}
	}
	// 90 KiB at 32 KiB a second, with a second's worth at the start,
	// take 1.8 s at least; sent any faster, the reads were throttled
	// (a machine that slow by itself would not need to be).
	elapsed := time.Since(start)
	if elapsed < 1500*time.Millisecond {
		t.Fatalf("90 KiB read in %s", elapsed)
	}
	if e.quotaCount(mqtt.QuotaInboundBytesPerSecond) == 0 && elapsed < 2500*time.Millisecond {
		t.Fatal("throttling not counted")
	}
}

// TestInflightQuota: the gateway sends a device at most
// MaxInflightMessages unacknowledged QoS 1 messages, and tells an MQTT 5
// device its own Receive Maximum.
func TestInflightQuota(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) { gw.MaxInflightMessages = 5 })
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	sub, connack := e.connectRaw(t, c, "", "slow-reader", 5)
	if connack.Properties.ReceiveMaximum != 5 {
		t.Fatalf("CONNACK receive maximum %d, want 5", connack.Properties.ReceiveMaximum)
	}
	if codes := sub.subscribe("q/#"); !bytes.Equal(codes, []byte{1}) {
		t.Fatalf("SUBACK %x", codes)
	}
	pub := e.mustDial(c, dialOptions{})
	for i := range 20 {
		pub.mustPublish(t, "q/m", 1, false, string(rune('0'+i)))
	}
	var got []packets.Packet
	for range 5 {
		got = append(got, sub.readType(packets.Publish))
	}
	// No sixth until one is acknowledged.
	sub.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if pk, err := sub.read(); err == nil {
		t.Fatalf("a sixth message in flight: %q", pk.Payload)
	}
	sub.c.SetReadDeadline(testwait.Deadline())
	ack := func(pk packets.Packet) {
		sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	ack(got[0])
	got = append(got, sub.readType(packets.Publish))
	// Acknowledging each message as it comes, the device gets them all:
	// the messages that waited give their place back too. (Not in order:
	// mochi sends waiting messages in no set order, and AWS IoT does not
	// promise order either.)
	for _, pk := range got[1:] {
		ack(pk)
	}
	for len(got) < 20 {
		pk := sub.readType(packets.Publish)
		got = append(got, pk)
		ack(pk)
	}
	seen := map[string]bool{}
	for _, pk := range got {
		seen[string(pk.Payload)] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct messages of 20", len(seen))
	}
}

// TestQueuedMessagesQuota: a persistent session holds at most
// MaxQueuedMessages for its device while it is away; the rest are
// dropped, counted, and logged once.
func TestQueuedMessagesQuota(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.MaxInflightMessages = 5
		gw.MaxQueuedMessages = 10
	})
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	persistent := false
	away := e.mustDial(c, dialOptions{clientID: "away-1", clean: &persistent})
	away.mustSubscribe(t, "fleet/queued", 1)
	away.Disconnect(100)
	testwait.For(t, "the session offline", func() bool { return len(e.gw.Sessions(scopeA)) == 0 })
	pub := e.mustDial(c, dialOptions{})
	for i := range 15 {
		pub.mustPublish(t, "fleet/queued", 1, false, string(rune('a'+i)))
	}
	testwait.For(t, "5 messages dropped", func() bool { return e.quotaCount(mqtt.QuotaQueuedMessages) == 5 })
	back := e.mustDial(c, dialOptions{clientID: "away-1", clean: &persistent})
	for range 10 {
		back.next(t, "fleet/queued")
	}
	back.quiet(t)
	if n := strings.Count(e.logs.String(), "quota=queued_messages"); n != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", n, e.logs)
	}
	if !strings.Contains(e.logs.String(), "quota=queued_messages certificateId="+fleetcert.CertificateID(c.Cert.Raw)+" clientId=away-1 account="+accountA) {
		t.Fatalf("the log line does not name the session:\n%s", e.logs)
	}
}

// TestRetainedQuotas: each account and region has its own retained
// message count and bytes.
func TestRetainedQuotas(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.MaxRetainedMessages = 3
		gw.MaxRetainedBytes = 100
	})
	shared := testpki.Leaf(t)
	e.register(shared, scopeA, fleetcert.StatusActive)
	e.register(shared, scopeB, fleetcert.StatusActive)
	epA, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
	epB, _ := mqtt.EndpointAddress("localhost", scopeB, mqtt.EndpointDataATS)
	a, _ := e.connectRaw(t, shared, epA, "", 5)
	b, _ := e.connectRaw(t, shared, epB, "", 5)
	small := []byte("0123456789")
	const quotaExceeded = 0x97

	for _, tt := range []struct {
		name    string
		r       *raw
		topic   string
		payload []byte
		want    byte
	}{
		{"ok/1", a, "r/1", small, 0},
		{"ok/2", a, "r/2", small, 0},
		{"ok/3", a, "r/3", small, 0},
		{"fail/4th-message", a, "r/4", small, quotaExceeded},
		{"ok/replace", a, "r/1", small, 0},
		{"ok/other-account", b, "r/4", small, 0},
		{"ok/delete", a, "r/2", nil, 0},
		{"ok/4th-after-delete", a, "r/4", small, 0},
		{"fail/bytes", a, "r/3", make([]byte, 81), quotaExceeded},
		{"ok/bytes-at-the-quota", a, "r/3", make([]byte, 80), 0},
	} {
		if code := tt.r.publish(tt.topic, tt.payload, true); code != tt.want {
			t.Fatalf("%s: PUBACK %#x, want %#x", tt.name, code, tt.want)
		}
	}
	// What a subscriber of A finds retained: r/1, r/3 (80 bytes) and r/4.
	sub, _ := e.connectRaw(t, shared, epA, "", 5)
	sub.subscribe("r/#")
	got := map[string]int{}
	for range 3 {
		pk := sub.readType(packets.Publish)
		got[pk.TopicName] = len(pk.Payload)
	}
	if got["r/1"] != 10 || got["r/3"] != 80 || got["r/4"] != 10 {
		t.Fatalf("retained in A: %v", got)
	}
	if e.quotaCount(mqtt.QuotaRetainedMessages) != 1 || e.quotaCount(mqtt.QuotaRetainedBytes) != 1 {
		t.Fatalf("refusals: messages %d, bytes %d", e.quotaCount(mqtt.QuotaRetainedMessages), e.quotaCount(mqtt.QuotaRetainedBytes))
	}
}

// TestAutoRegistrationRate: just-in-time registrations are paced per CA
// and per account; a device over the pace is refused as not yet
// registered, and another CA or account is not held up.
func TestAutoRegistrationRate(t *testing.T) {
	e := newEnv(t)
	e.startGatewayWith(func(gw *mqtt.Gateway) {
		gw.AutoRegistrationsPerSecondPerCA = 0.001 // no refill within the test
		gw.AutoRegistrationBurstPerCA = 3
		gw.AutoRegistrationsPerSecondPerAccount = 0.001
		gw.AutoRegistrationBurstPerAccount = 5
	})
	epA, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
	epB, _ := mqtt.EndpointAddress("localhost", scopeB, mqtt.EndpointDataATS)
	// burst connects n new devices of ca at once and returns how many were
	// registered.
	burst := func(ca *testpki.Cert, scope fleetcert.Scope, serverName string, n int) int {
		t.Helper()
		leaves := make([]*testpki.Cert, n)
		for i := range leaves {
			leaves[i] = testpki.New(t, testpki.Options{Parent: ca})
		}
		var wg sync.WaitGroup
		for _, leaf := range leaves {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.dial(leaf, dialOptions{serverName: serverName, chain: []*testpki.Cert{ca}}); err == nil {
					t.Error("admitted before activation")
				}
			}()
		}
		wg.Wait()
		registered := 0
		for _, leaf := range leaves {
			if _, err := e.reg.DescribeCertificate(t.Context(), scope, fleetcert.CertificateID(leaf.Cert.Raw)); err == nil {
				registered++
			}
		}
		return registered
	}
	ca1 := testpki.New(t, testpki.Options{IsCA: true})
	e.registerCA(ca1, scopeA, true, true)
	if got := burst(ca1, scopeA, epA, 6); got != 3 {
		t.Fatalf("CA 1: %d of 6 registered, want 3 (its burst)", got)
	}
	ca2 := testpki.New(t, testpki.Options{IsCA: true})
	e.registerCA(ca2, scopeA, true, true)
	if got := burst(ca2, scopeA, epA, 3); got != 2 {
		t.Fatalf("CA 2: %d of 3 registered, want 2 (what is left of account A's burst)", got)
	}
	ca3 := testpki.New(t, testpki.Options{IsCA: true})
	e.registerCA(ca3, scopeB, true, true)
	if got := burst(ca3, scopeB, epB, 3); got != 3 {
		t.Fatalf("CA 3 in account B: %d of 3 registered", got)
	}
	if e.quotaCount(mqtt.QuotaAutoRegistrationsPerCA) != 3 || e.quotaCount(mqtt.QuotaAutoRegistrationsPerAcct) != 1 {
		t.Fatalf("refusals: per CA %d, per account %d", e.quotaCount(mqtt.QuotaAutoRegistrationsPerCA), e.quotaCount(mqtt.QuotaAutoRegistrationsPerAcct))
	}
	if !strings.Contains(e.logs.String(), "quota=auto_registrations_per_ca") {
		t.Fatalf("no log line:\n%s", e.logs)
	}
}
