package mqtt

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dropBuckets are the upper bounds, in seconds, of the revocation drop
// latency histogram: fleetcert's target is tens of milliseconds on one node
// and under a second across nodes.
var dropBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metrics are the gateway's counters, written in the Prometheus text
// format by WriteMetrics.
type metrics struct {
	admitted       atomic.Uint64
	autoRegistered atomic.Uint64
	expiredEvents  atomic.Uint64
	// provisioned counts just-in-time provisioning by outcome, as AWS's
	// ProvisionThing.Success and .ClientErrors
	// (https://docs.aws.amazon.com/iot/latest/developerguide/metrics_dimensions.html#provisioning-metrics);
	// a store failure is logged as a registration's.
	provisioned [2]atomic.Uint64
	quotas      [numQuotas]atomic.Uint64 // refusals, by quota
	denied      [4]atomic.Uint64         // policy denials, by deniedActions

	mu      sync.Mutex
	refused map[string]uint64 // by reason
	drops   [13]uint64        // per bucket of dropBuckets, then +Inf
	dropSum float64
	dropN   uint64
}

func (m *metrics) refuse(reason string) {
	m.mu.Lock()
	if m.refused == nil {
		m.refused = map[string]uint64{}
	}
	m.refused[reason]++
	m.mu.Unlock()
}

// deniedActions are the actions whose policy denials are counted.
var deniedActions = [4]string{"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}

func (m *metrics) policyDenied(action string) {
	for i, a := range deniedActions {
		if a == action {
			m.denied[i].Add(1)
		}
	}
}

func (m *metrics) observeDrop(d time.Duration) {
	s := d.Seconds()
	if s < 0 {
		s = 0 // clocks of other nodes
	}
	i, _ := slices.BinarySearch(dropBuckets, s)
	m.mu.Lock()
	m.drops[i]++
	m.dropSum += s
	m.dropN++
	m.mu.Unlock()
}

// WriteMetrics writes the gateway's metrics in the Prometheus text
// exposition format (version 0.0.4): connected devices, connections
// admitted, refused by reason, certificates auto-registered, and the
// latency from a certificate leaving ACTIVE (the change's commit time) to
// its devices' disconnection.
func (g *Gateway) WriteMetrics(w io.Writer) error {
	m := &g.metrics
	connected := int64(0)
	if g.server != nil {
		connected = atomic.LoadInt64(&g.server.Info.ClientsConnected)
	}
	m.mu.Lock()
	reasons := make([]string, 0, len(m.refused))
	for r := range m.refused {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	refused := make([]uint64, len(reasons))
	for i, r := range reasons {
		refused[i] = m.refused[r]
	}
	drops, sum, n := m.drops, m.dropSum, m.dropN
	m.mu.Unlock()

	b := make([]byte, 0, 2048)
	b = append(b, "# HELP fleetcert_mqtt_connected_devices Devices connected to the MQTT gateway.\n"+
		"# TYPE fleetcert_mqtt_connected_devices gauge\n"...)
	b = fmt.Appendf(b, "fleetcert_mqtt_connected_devices %d\n", connected)
	b = append(b, "# HELP fleetcert_mqtt_connections_admitted_total Device connections admitted.\n"+
		"# TYPE fleetcert_mqtt_connections_admitted_total counter\n"...)
	b = fmt.Appendf(b, "fleetcert_mqtt_connections_admitted_total %d\n", m.admitted.Load())
	b = append(b, "# HELP fleetcert_mqtt_connections_refused_total Device connections refused, by reason.\n"+
		"# TYPE fleetcert_mqtt_connections_refused_total counter\n"...)
	for i, r := range reasons {
		b = fmt.Appendf(b, "fleetcert_mqtt_connections_refused_total{reason=%q} %d\n", r, refused[i])
	}
	b = append(b, "# HELP fleetcert_mqtt_certificates_auto_registered_total Just-in-time registrations announced.\n"+
		"# TYPE fleetcert_mqtt_certificates_auto_registered_total counter\n"...)
	b = fmt.Appendf(b, "fleetcert_mqtt_certificates_auto_registered_total %d\n", m.autoRegistered.Load())
	b = append(b, "# HELP fleetcert_mqtt_provision_thing_total Just-in-time provisioning by outcome (AWS's ProvisionThing.Success and ClientErrors).\n"+
		"# TYPE fleetcert_mqtt_provision_thing_total counter\n"...)
	for i, r := range provisionResults {
		b = fmt.Appendf(b, "fleetcert_mqtt_provision_thing_total{result=%q} %d\n", r, m.provisioned[i].Load())
	}
	b = append(b, "# HELP fleetcert_mqtt_revocation_drop_seconds Time from a certificate leaving ACTIVE to its device's disconnection.\n"+
		"# TYPE fleetcert_mqtt_revocation_drop_seconds histogram\n"...)
	var cum uint64
	for i, le := range dropBuckets {
		cum += drops[i]
		b = fmt.Appendf(b, "fleetcert_mqtt_revocation_drop_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += drops[len(dropBuckets)]
	b = fmt.Appendf(b, "fleetcert_mqtt_revocation_drop_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	b = fmt.Appendf(b, "fleetcert_mqtt_revocation_drop_seconds_sum %s\n", strconv.FormatFloat(sum, 'g', -1, 64))
	b = fmt.Appendf(b, "fleetcert_mqtt_revocation_drop_seconds_count %d\n", n)
	b = append(b, "# HELP fleetcert_mqtt_policy_denials_total Device actions their AWS IoT policies denied, by action.\n"+
		"# TYPE fleetcert_mqtt_policy_denials_total counter\n"...)
	for i, a := range deniedActions {
		b = fmt.Appendf(b, "fleetcert_mqtt_policy_denials_total{action=%q} %d\n", a, m.denied[i].Load())
	}
	b = g.appendLimitMetrics(b)
	b = g.appendExpiryMetrics(b)  // expiry.go
	b = g.appendClusterMetrics(b) // cluster.go
	_, err := w.Write(b)
	return err
}

// Just-in-time provisioning outcomes, indexes of metrics.provisioned.
const (
	provisionSuccess = iota
	provisionClientError
)

var provisionResults = [...]string{"success", "client_error"}
