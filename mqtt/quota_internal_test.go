package mqtt

import (
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestPublishChecksDoNotAllocate: the quota checks on each publish are
// counters on the connection: no allocation, no lookup.
func TestPublishChecksDoNotAllocate(t *testing.T) {
	g := &Gateway{}
	g.resolveLimits()
	g.limits.publishesPerSecond = 1e12 // never refuse here
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cl := srv.NewClient(tls.Server(&deviceConn{Conn: a, g: g}, &tls.Config{}), "t", "dev", false)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName: "fleet/thermostats/7/temperature", Payload: []byte("21.5")}
	if n := testing.AllocsPerRun(1000, func() {
		if g.refusePublish(cl, pk) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per publish", n)
	}
}

// TestBucket: a second's worth at the start, then the rate.
func TestBucket(t *testing.T) {
	var b bucket
	now := time.Duration(0)
	for i := range 10 {
		if !b.take(now, 10) {
			t.Fatalf("take %d refused within the first second's worth", i)
		}
	}
	if b.take(now, 10) {
		t.Fatal("an 11th at once")
	}
	if !b.take(now+100*time.Millisecond, 10) || b.take(now+100*time.Millisecond, 10) {
		t.Fatal("not one more after a tenth of a second")
	}
	var bytes bucket
	if wait := bytes.spend(1000, 0, 1000); wait != 0 {
		t.Fatalf("the first second's worth waits %s", wait)
	}
	if wait := bytes.spend(500, 0, 1000); wait != 500*time.Millisecond {
		t.Fatalf("500 more wait %s, want 500ms", wait)
	}
}
