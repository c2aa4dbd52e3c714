package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Certificate expiry: AWS IoT publishes no event when a registered
// certificate's validity ends (its lifecycle events are presence,
// subscriptions and just-in-time registration:
// https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html),
// so fleetcert has one of its own, in a namespace of its own beside $aws:
// $fleetcert/events/certificates/expired/{certificateId}, in the account
// and Region of the registration, published when an ACTIVE registration's
// certificate expires while the gateway runs. Devices (and operators'
// listeners) subscribe to it as to $aws/events/…, with iot:Subscribe and
// iot:Receive on it; nobody but the gateway publishes there.

// TopicExpiredPrefix is the expired event's topic, + certificateId.
const TopicExpiredPrefix = "$fleetcert/events/certificates/expired/"

// isEventTopic reports whether topic is one of the event namespaces devices
// may read and not write.
func isEventTopic(topic string) bool {
	return strings.HasPrefix(topic, "$aws/events/") || strings.HasPrefix(topic, "$fleetcert/events/")
}

// expiryWindows are the metric's windows: ACTIVE registrations expiring
// within a day, a week, 30 and 90 days.
var expiryWindows = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour, 90 * 24 * time.Hour}

var expiryWindowDays = []string{"1", "7", "30", "90"}

// expiredEventClaim is how long the claim on one expiry's event is kept:
// long past the time any node's scan can take to reach it.
const expiredEventClaim = 24 * time.Hour

// expiredEvent is the expired event's payload, in the shape of AWS's
// certificate events: timestamps in milliseconds.
type expiredEvent struct {
	CertificateID     string `json:"certificateId"`
	AWSAccountID      string `json:"awsAccountId"`
	Region            string `json:"region"`
	CertificateStatus string `json:"certificateStatus"`
	NotAfter          int64  `json:"notAfter"`
	Timestamp         int64  `json:"timestamp"`
}

// watchExpiry scans the admission view every ExpiryInterval: it publishes
// the expired event for each ACTIVE registration whose certificate expired
// since the previous scan, and keeps the counts the metrics report.
// Expiries before the gateway started are not announced: they happened
// while nobody could hear them (the expiring listing of the API and the
// console shows them).
func (g *Gateway) watchExpiry(ctx context.Context) {
	defer g.watched.Done()
	t := time.NewTicker(g.ExpiryInterval)
	defer t.Stop()
	last := g.view.Load().Now()
	g.scanExpiry(ctx, last, last)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := g.view.Load().Now()
		if now.After(last) {
			g.scanExpiry(ctx, last, now)
			last = now
		}
	}
}

func (g *Gateway) scanExpiry(ctx context.Context, from, to time.Time) {
	scan := g.view.Load().ScanExpiry(from, to, expiryWindows, func(e fleetcert.ExpiredRegistration) {
		if e.Active {
			g.publishExpired(ctx, e, to)
		}
	})
	g.expiry.Store(&scan)
}

// publishExpired publishes e's event. In a cluster whose messages are
// routed (cluster.go) every node sees the expiry and one publishes, the
// one that claims it first in the store; otherwise each node publishes to
// its own subscribers.
func (g *Gateway) publishExpired(ctx context.Context, e fleetcert.ExpiredRegistration, now time.Time) {
	topic := TopicExpiredPrefix + e.CertificateID
	internal := internalTopic(e.Scope, topic)
	if g.routed() {
		key := fmt.Sprintf("expired-event/%s/%s/%s/%d", e.Scope.AccountID, e.Scope.Region, e.CertificateID, e.NotAfter.UnixMicro())
		first, err := g.Registry.ClaimOnce(ctx, key, expiredEventClaim)
		if err != nil {
			g.Logger.Warn("claim expired event", "certificateId", e.CertificateID, "err", err)
			return
		}
		if !first {
			return
		}
	} else if !g.subscribed(internal) {
		return
	}
	g.metrics.expiredEvents.Add(1)
	g.publish(e.Scope, topic, func() []byte {
		b, _ := json.Marshal(expiredEvent{
			CertificateID: e.CertificateID, AWSAccountID: e.Scope.AccountID, Region: e.Scope.Region,
			CertificateStatus: string(fleetcert.StatusActive), NotAfter: e.NotAfter.UnixMilli(), Timestamp: now.UnixMilli(),
		})
		return b
	})
}

// appendExpiryMetrics writes the counts of the last scan.
func (g *Gateway) appendExpiryMetrics(b []byte) []byte {
	scan := g.expiry.Load()
	if scan == nil {
		return b
	}
	b = append(b, "# HELP fleetcert_certificates_expiring ACTIVE certificate registrations still valid whose validity ends within the given days.\n"+
		"# TYPE fleetcert_certificates_expiring gauge\n"...)
	for i, d := range expiryWindowDays {
		b = fmt.Appendf(b, "fleetcert_certificates_expiring{within_days=%q} %d\n", d, scan.Within[i])
	}
	b = append(b, "# HELP fleetcert_certificates_expired_active ACTIVE certificate registrations whose validity has ended (their devices cannot connect).\n"+
		"# TYPE fleetcert_certificates_expired_active gauge\n"...)
	b = fmt.Appendf(b, "fleetcert_certificates_expired_active %d\n", scan.Expired)
	b = append(b, "# HELP fleetcert_mqtt_expired_events_total Certificate expired events this node published.\n"+
		"# TYPE fleetcert_mqtt_expired_events_total counter\n"...)
	return fmt.Appendf(b, "fleetcert_mqtt_expired_events_total %d\n", g.metrics.expiredEvents.Load())
}
