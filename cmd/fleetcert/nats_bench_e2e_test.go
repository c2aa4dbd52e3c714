package main_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// TestClusterNATSBench measures, on three nodes and one nats-server
// (BENCHMARKS.md, "Messages across a cluster"): publish→deliver latency
// and QoS 1 throughput to a subscriber on the publisher's node and to one
// on another node, from the same publications; and the fan-out of one
// message to 1,000 subscribers spread over the three nodes. It runs only
// with FLEETCERT_NATS_BENCH=1 (ROUNDS, MESSAGES, PUBLISHERS, FANOUT tune
// it).
func TestClusterNATSBench(t *testing.T) {
	if os.Getenv("FLEETCERT_NATS_BENCH") != "1" {
		t.Skip("set FLEETCERT_NATS_BENCH=1 to run the cluster messaging benchmark")
	}
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	rounds, messages, fanout := env("ROUNDS", 2000), env("MESSAGES", 10000), env("FANOUT", 1000)
	var ns *natsServer

	// NO_NATS=1: the same nodes without NATS, for the same-node figures
	// of a cluster that routes nothing (cross-node and fan-out skipped).
	noNATS := os.Getenv("NO_NATS") == "1"
	dbURL := testpg.NewDatabase(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		env := []string{"FLEETCERT_MQTT_MAX_PUBLISHES_PER_SECOND=-1", "FLEETCERT_MQTT_MAX_INBOUND_BYTES_PER_SECOND=-1",
			"FLEETCERT_MQTT_MAX_QUEUED=-1"}
		if !noNATS {
			if i == 0 {
				ns = startNATS(t)
			}
			env = append(env, "FLEETCERT_NATS_URL="+ns.url())
		}
		nodes[i] = startNode(t, dbURL, env...)
	}
	dev, _ := registerDevice(t, nodes[0].defaultClient(), types.CertificateStatusActive)
	t.Cleanup(func() {
		if dump := os.Getenv("DUMP_DIR"); t.Failed() && dump != "" {
			for i, n := range nodes {
				n.cmd.Process.Signal(syscall.SIGQUIT)
				<-n.exited
				os.WriteFile(fmt.Sprintf("%s/node%d.log", dump, i), []byte(n.stderr.String()), 0o644)
			}
		}
	})

	// Arrival times by payload, for a subscriber on node 0 (same) and
	// one on node 1 (cross).
	// A payload is a stream's name and a number ("t12", "m3-12": stream
	// "m3" is publisher 3); disorder counts the messages whose number is
	// not above the last of their stream: repeated or out of order.
	type arrivals struct {
		mu       sync.Mutex
		at       map[string]time.Time
		last     map[string]int
		n        atomic.Int64
		disorder atomic.Int64
	}
	sub := func(n *node, id, filter string, qos byte) *arrivals {
		a := &arrivals{at: map[string]time.Time{}, last: map[string]int{}}
		c, _, err := n.connectDevice(t, dev, id)
		if err != nil {
			t.Fatal(err)
		}
		tok := c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) {
			now := time.Now()
			p := string(m.Payload())
			stream, num := p[:1], p[1:]
			if i := strings.LastIndexByte(p, '-'); i >= 0 {
				stream, num = p[:i], p[i+1:]
			}
			seq, _ := strconv.Atoi(num)
			a.mu.Lock()
			a.at[p] = now
			if last, ok := a.last[stream]; ok && seq <= last {
				a.disorder.Add(1)
			}
			a.last[stream] = seq
			a.mu.Unlock()
			a.n.Add(1)
		})
		if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		return a
	}
	crossNode := nodes[1]
	if noNATS {
		crossNode = nodes[0] // nothing crosses: a second subscriber on the same node
	}
	same, cross := sub(nodes[0], "same", "lat/#", 1), sub(crossNode, "cross", "lat/#", 1)
	pub, _, err := nodes[0].connectDevice(t, dev, "bench-pub")
	if err != nil {
		t.Fatal(err)
	}

	// Latency: one QoS 0 message at a time, until both have it.
	sent := make([]time.Time, rounds)
	for i := range rounds {
		p := "l" + strconv.Itoa(i)
		sent[i] = time.Now()
		pub.Publish("lat/x", 0, false, p)
		testwait.For(t, "latency message", func() bool { return same.n.Load() > int64(i) && cross.n.Load() > int64(i) })
	}
	lat := func(a *arrivals) (p50, p99 time.Duration) {
		a.mu.Lock()
		defer a.mu.Unlock()
		var d []time.Duration
		for i := range rounds {
			if at, ok := a.at["l"+strconv.Itoa(i)]; ok {
				d = append(d, at.Sub(sent[i]))
			}
		}
		slices.Sort(d)
		return d[len(d)/2], d[len(d)*99/100]
	}
	s50, s99 := lat(same)
	c50, c99 := lat(cross)
	t.Logf("latency, %d QoS 0 messages one at a time: same node p50 %s p99 %s; cross node p50 %s p99 %s",
		rounds, s50.Round(time.Microsecond), s99.Round(time.Microsecond), c50.Round(time.Microsecond), c99.Round(time.Microsecond))

	roundTrips := func() int {
		if noNATS {
			return 0
		}
		return metric(t, nodes[0], "fleetcert_mqtt_cluster_confirm_round_trips_total")
	}
	// Throughput: QoS 1, at most 64 unacknowledged publishes.
	rtBase := roundTrips()
	base := same.n.Load()
	baseX := cross.n.Load()
	start := time.Now()
	window := make(chan paho.Token, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tok := range window {
			tok.WaitTimeout(testwait.Hang)
		}
	}()
	for i := range messages {
		window <- pub.Publish("lat/t", 1, false, "t"+strconv.Itoa(i))
	}
	close(window)
	<-done
	published := time.Since(start)
	// Until both have every message, or neither has had one for a second
	// (a subscriber's queue overflowing drops messages, on one node too).
	var sameAt, crossAt time.Duration
	lastN, lastChange := int64(-1), time.Now()
	for deadline := testwait.Deadline(); time.Now().Before(deadline); time.Sleep(testwait.Poll) {
		s, x := same.n.Load()-base, cross.n.Load()-baseX
		if sameAt == 0 && s >= int64(messages) {
			sameAt = time.Since(start)
		}
		if crossAt == 0 && x >= int64(messages) {
			crossAt = time.Since(start)
		}
		if sameAt > 0 && crossAt > 0 {
			break
		}
		if s+x != lastN {
			lastN, lastChange = s+x, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break
		}
	}
	report := func(at time.Duration, got int64) string {
		if at == 0 {
			return fmt.Sprintf("%d of %d delivered, then none for 1 s", got, messages)
		}
		return fmt.Sprintf("all delivered in %s (%.0f msg/s)", at.Round(time.Millisecond), float64(messages)/at.Seconds())
	}
	t.Logf("throughput, %d QoS 1 messages from one publisher (acknowledged in %s, %.0f msg/s; %d confirmation round trips): same node %s; cross node %s",
		messages, published.Round(time.Millisecond), float64(messages)/published.Seconds(), roundTrips()-rtBase,
		report(sameAt, same.n.Load()-base), report(crossAt, cross.n.Load()-baseX))
	if d, x := same.disorder.Load(), cross.disorder.Load(); d+x > 0 {
		t.Errorf("one publisher: %d messages repeated or out of order at the same-node subscriber, %d cross node", d, x)
	}

	// Many publishers: PUBLISHERS devices on node 0 at once, each with at
	// most 8 unacknowledged QoS 1 messages, MESSAGES in all; their
	// confirmations share round trips to NATS. The two subscribers take
	// them at QoS 1, which mochi v2.7.9 deadlocked with several publishers
	// writing to the session at once, and whose send quota (the inflight
	// quota, 100) it then drained away, stalling or reordering deliveries
	// (both fixed in third_party/mochi-mqtt-server, FLEETCERT.md).
	publishers := env("PUBLISHERS", 50)
	same, cross = sub(nodes[0], "same-q1", "many/#", 1), sub(crossNode, "cross-q1", "many/#", 1)
	pubs := make([]paho.Client, publishers)
	for i := range pubs {
		if pubs[i], _, err = nodes[0].connectDevice(t, dev, fmt.Sprint("bench-pub-", i)); err != nil {
			t.Fatal(err)
		}
	}
	base, baseX = same.n.Load(), cross.n.Load()
	rtBase = roundTrips()
	cpu0, cpu1 := cpuTime(t, nodes[0]), cpuTime(t, crossNode)
	start = time.Now()
	var pwg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for i, c := range pubs {
		pwg.Go(func() {
			window := make(chan paho.Token, 8)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for tok := range window {
					if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprint(tok.Error()))
					}
				}
			}()
			for j := range messages / publishers {
				window <- c.Publish("many/m", 1, false, fmt.Sprint("m", i, "-", j))
			}
			close(window)
			<-done
		})
	}
	pwg.Wait()
	published = time.Since(start)
	total := messages / publishers * publishers
	sameAt, crossAt = 0, 0
	lastN, lastChange = -1, time.Now()
	for deadline := testwait.Deadline(); time.Now().Before(deadline); time.Sleep(testwait.Poll) {
		s, x := same.n.Load()-base, cross.n.Load()-baseX
		if sameAt == 0 && s >= int64(total) {
			sameAt = time.Since(start)
		}
		if crossAt == 0 && x >= int64(total) {
			crossAt = time.Since(start)
		}
		if sameAt > 0 && crossAt > 0 {
			break
		}
		if s+x != lastN {
			lastN, lastChange = s+x, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break
		}
	}
	report = func(at time.Duration, got int64) string {
		if at == 0 {
			return fmt.Sprintf("%d of %d delivered, then none for 1 s", got, total)
		}
		return fmt.Sprintf("all delivered in %s (%.0f msg/s)", at.Round(time.Millisecond), float64(total)/at.Seconds())
	}
	t.Logf("throughput, %d QoS 1 messages from %d publishers at once (acknowledged in %s, %.0f msg/s; %d confirmation round trips): same node %s; cross node %s",
		total, publishers, published.Round(time.Millisecond), float64(total)/published.Seconds(), roundTrips()-rtBase,
		report(sameAt, same.n.Load()-base), report(crossAt, cross.n.Load()-baseX))
	// CPU time is less noisy than rates on a shared machine.
	if !noNATS {
		t.Logf("CPU per message published: node 0 (publishers, same-node subscriber) %s, node 1 (cross-node subscriber) %s; load average %s",
			((cpuTime(t, nodes[0]) - cpu0) / time.Duration(total)).Round(100*time.Nanosecond),
			((cpuTime(t, crossNode) - cpu1) / time.Duration(total)).Round(100*time.Nanosecond), loadAverage())
	} else {
		t.Logf("CPU per message published: node 0 %s; load average %s",
			((cpuTime(t, nodes[0]) - cpu0) / time.Duration(total)).Round(100*time.Nanosecond), loadAverage())
	}
	if n := failed.Load(); n > 0 {
		t.Logf("%d publishes not acknowledged (first: %v)", n, firstErr.Load())
	}
	// QoS 1 keeps each publisher's order and delivers once (issue 16:
	// mochi's flow control reordered them).
	for _, a := range []struct {
		name string
		a    *arrivals
	}{{"same node", same}, {"cross node", cross}} {
		a.a.mu.Lock()
		distinct := len(a.a.at)
		a.a.mu.Unlock()
		t.Logf("%s: %d distinct messages, %d repeated or out of a publisher's order", a.name, distinct, a.a.disorder.Load())
		if a.a.disorder.Load() > 0 {
			t.Errorf("%s: %d QoS 1 messages repeated or out of their publisher's order", a.name, a.a.disorder.Load())
		}
	}
	// What did not arrive: dropped by mochi from a full session queue (on
	// one broker too), or lost to routing.
	queueFull := regexp.QuoteMeta(`fleetcert_mqtt_quota_exceeded_total{quota="queued_messages"}`)
	t.Logf("sessions' queues full (mochi drops): node 0 %d, node 1 %d", metric(t, nodes[0], queueFull), metric(t, nodes[1], queueFull))
	if !noNATS {
		t.Logf("node 0: %d messages routed, %d acknowledged unconfirmed, %d unroutable; node 1: %d received, %d dropped by NATS's client",
			metric(t, nodes[0], "fleetcert_mqtt_cluster_routed_total"), metric(t, nodes[0], "fleetcert_mqtt_cluster_unconfirmed_total"),
			metric(t, nodes[0], "fleetcert_mqtt_cluster_unroutable_total"), metric(t, nodes[1], "fleetcert_mqtt_cluster_received_total"),
			metric(t, nodes[1], "fleetcert_mqtt_cluster_dropped_total"))
	}
	for _, c := range pubs {
		c.Disconnect(0)
	}

	if noNATS {
		return
	}
	// Fan-out: FANOUT subscribers over the three nodes.
	var got atomic.Int64
	var last atomic.Int64
	connectStart := time.Now()
	var wg sync.WaitGroup
	ids := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				c, _, err := nodes[i%3].connectDevice(t, dev, fmt.Sprint("fan-", i))
				if err != nil {
					t.Error(err)
					continue
				}
				tok := c.Subscribe("fan/x", 1, func(paho.Client, paho.Message) {
					got.Add(1)
					last.Store(time.Now().UnixNano())
				})
				if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
					t.Error(tok.Error())
				}
			}
		})
	}
	for i := range fanout {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d subscribers connected and subscribed in %s", fanout, time.Since(connectStart).Round(time.Millisecond))
	var fan []time.Duration
	for r := range 5 {
		before := got.Load()
		start := time.Now()
		publish(t, pub, "fan/x", 1, false, strconv.Itoa(r))
		testwait.For(t, "fan-out to every subscriber", func() bool { return got.Load()-before >= int64(fanout) })
		fan = append(fan, time.Unix(0, last.Load()).Sub(start))
	}
	slices.Sort(fan)
	t.Logf("fan-out of one QoS 1 message to %d subscribers on 3 nodes, 5 rounds: median %s, worst %s (publish to last delivery)",
		fanout, fan[2].Round(time.Millisecond), fan[4].Round(time.Millisecond))
}

// cpuTime returns the CPU time (user and system) n's process has used,
// from /proc (clock ticks of 10 ms, Linux's USER_HZ).
func cpuTime(t *testing.T, n *node) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
	if err != nil {
		t.Logf("CPU time: %v", err)
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:])) // fields from the 3rd on
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// loadAverage returns the 1-minute load average.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
