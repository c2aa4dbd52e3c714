package mqtt_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
)

// TestExpiredEvent: when an ACTIVE registration's certificate expires, a
// listener of the account gets fleetcert's expired event, and the metrics
// count the registrations by time to expiry; devices cannot publish there,
// and another account hears nothing.
func TestExpiredEvent(t *testing.T) {
	e := newEnvWith(t, func(g *mqtt.Gateway) { g.ExpiryInterval = 20 * time.Millisecond })
	now := time.Now()
	short := testpki.New(t, testpki.Options{CommonName: "short", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(3 * time.Hour)})
	expiring := e.register(short, scopeA, fleetcert.StatusActive)
	// Another account registers the same certificate: its listener hears
	// its own event, not scopeA's.
	e.register(short, scopeB, fleetcert.StatusActive)
	a, b := testpki.Leaf(t), testpki.Leaf(t)
	e.register(a, scopeA, fleetcert.StatusActive)
	e.register(b, scopeB, fleetcert.StatusActive)
	epB, _ := mqtt.EndpointAddress("localhost", scopeB, mqtt.EndpointDataATS)
	listenerA := e.mustDial(a, dialOptions{clientID: "listener"})
	listenerB := e.mustDial(b, dialOptions{clientID: "listener", serverName: epB})
	listenerA.mustSubscribe(t, mqtt.TopicExpiredPrefix+"+", 1)
	listenerB.mustSubscribe(t, mqtt.TopicExpiredPrefix+"+", 1)
	// Nobody but the gateway publishes there: QoS 0 is dropped, and the
	// first message the listener gets is the gateway's.
	listenerA.mustPublish(t, mqtt.TopicExpiredPrefix+expiring.ID, 0, false, "forged")

	// Within a day: counted, not announced.
	testwait.For(t, "the expiry metric", func() bool {
		return strings.Contains(e.metrics(), `fleetcert_certificates_expiring{within_days="1"} 2`+"\n")
	})
	if m := e.metrics(); !strings.Contains(m, "fleetcert_certificates_expired_active 0\n") {
		t.Fatalf("metrics:\n%s", m)
	}

	e.offset.Store(int64(4 * time.Hour)) // the registry's clock passes notAfter
	for _, l := range []struct {
		d     *device
		scope fleetcert.Scope
	}{{listenerA, scopeA}, {listenerB, scopeB}} {
		var m paho.Message
		select {
		case m = <-l.d.messages:
		case <-time.After(testwait.Hang):
			t.Fatalf("%s: no expired event", l.scope.AccountID)
		}
		var ev struct {
			CertificateID, AWSAccountID, Region, CertificateStatus string
			NotAfter, Timestamp                                    int64
		}
		if err := json.Unmarshal(m.Payload(), &ev); err != nil {
			t.Fatalf("%s: %s: %v", m.Topic(), m.Payload(), err)
		}
		if m.Topic() != mqtt.TopicExpiredPrefix+expiring.ID || ev.CertificateID != expiring.ID || ev.AWSAccountID != l.scope.AccountID ||
			ev.Region != region || ev.CertificateStatus != "ACTIVE" || ev.NotAfter != short.Cert.NotAfter.UnixMilli() || ev.Timestamp < ev.NotAfter {
			t.Fatalf("%s got %s %s", l.scope.AccountID, m.Topic(), m.Payload())
		}
	}
	testwait.For(t, "the expired count", func() bool {
		return strings.Contains(e.metrics(), "fleetcert_certificates_expired_active 2\n")
	})
	// One event per expiry: the scans after it announce nothing more.
	e.offset.Store(int64(5 * time.Hour))
	listenerA.mustSubscribe(t, "done", 0)
	listenerA.mustPublish(t, "done", 0, false, "")
	select {
	case m := <-listenerA.messages:
		if m.Topic() != "done" {
			t.Fatalf("then got %s %s", m.Topic(), m.Payload())
		}
	case <-time.After(testwait.Hang):
		t.Fatal("no message on done")
	}
	if m := e.metrics(); !strings.Contains(m, "fleetcert_mqtt_expired_events_total 2\n") {
		t.Fatalf("metrics:\n%s", m)
	}
}
