package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert/internal/connlimit"
	"github.com/fleetcert/fleetcert/mqtt"
)

// Limits are serve's caps on what clients and devices may hold or send.
// Their defaults, and where they come from, are in SECURITY.md.
type Limits struct {
	// TrustedProxies may speak for clients: PROXY protocol v2 on both
	// ports, X-Forwarded-For and -Proto to the console.
	TrustedProxies []netip.Prefix

	// The API port: API clients are few, so both caps are on.
	APIMaxConnections           int
	APIMaxConnectionsPerAddress int
	APIIdleTimeout              time.Duration

	// The MQTT port: devices behind carrier NAT or a load balancer share
	// one address, so the per-address cap is off by default.
	MQTTMaxConnections           int // 0: the open-file limit less the API's share
	MQTTMaxConnectionsPerAddress int
	MQTTConnectTimeout           time.Duration

	// AWS IoT Core's message-broker quotas (mqtt.Gateway's fields; 0 is
	// AWS's default, negative is off).
	MQTTMaxPacketSize                 int
	MQTTMaxClientIDLength             int
	MQTTMaxSubscriptionsPerConnection int
	MQTTMaxFiltersPerSubscribe        int
	MQTTMaxTopicLength                int
	MQTTMaxTopicSlashes               int
	MQTTMaxPublishesPerSecond         int
	MQTTMaxInboundBytesPerSecond      int
	MQTTMaxInflightMessages           int
	MQTTMaxQueuedMessages             int
	MQTTMaxRetainedMessages           int
	MQTTMaxRetainedBytes              int64

	// Throttle is --throttle: per-account, per-operation rates on the
	// API (awsapi.ParseThrottle's grammar); off by default.
	Throttle string

	// Just-in-time registrations per second (and burst) per CA and per
	// account.
	JITRRatePerCA, JITRRatePerAccount   float64
	JITRBurstPerCA, JITRBurstPerAccount int
}

// Defaults of the limits serve sets itself (the MQTT quotas' are mqtt's).
const (
	defaultAPIMaxConnections           = 1024
	defaultAPIMaxConnectionsPerAddress = 64
	// defaultAPIIdleTimeout is short: an idle keep-alive connection holds a
	// descriptor, and API clients reconnect cheaply.
	defaultAPIIdleTimeout = 30 * time.Second
	// reservedFiles are descriptors neither listener may take: the store
	// and its WAL, the data dir's files, logs.
	reservedFiles = 256
)

// addLimitFlags defines the flags of l on fs.
func addLimitFlags(fs *flagSet, l *Limits) {
	fs.Var(&prefixList{prefixes: &l.TrustedProxies}, "trusted-proxy",
		"address or CIDR of a proxy or load balancer that may speak for clients (repeatable or\ncomma-separated): PROXY protocol v2 on the API and MQTT ports, X-Forwarded-For and\nX-Forwarded-Proto to the console; from anyone else they are refused or ignored")
	fs.StringVar(&l.Throttle, "throttle", "", "API rates per account, region and operation, over which calls answer\nThrottlingException: off; aws (AWS IoT Core's default rates); Op=rate[/burst],...; or\naws,Op=rate[/burst],... to change some (empty: off; a self-hosted registry sets its own)")
	fs.IntVar(&l.APIMaxConnections, "api-max-connections", defaultAPIMaxConnections, "connections open at once on the API port; more are closed at once")
	fs.IntVar(&l.APIMaxConnectionsPerAddress, "api-max-connections-per-address", defaultAPIMaxConnectionsPerAddress, "connections open at once on the API port from one client address (0: no cap)")
	fs.DurationVar(&l.APIIdleTimeout, "api-idle-timeout", defaultAPIIdleTimeout, "how long an idle keep-alive connection to the API stays open")
	fs.IntVar(&l.MQTTMaxConnections, "mqtt-max-connections", 0, "device connections open at once; more are closed at once (0: the open-file limit less\nthe API's connections and 256; -1: no cap)")
	fs.IntVar(&l.MQTTMaxConnectionsPerAddress, "mqtt-max-connections-per-address", 0, "device connections open at once from one address (0: no cap; devices behind NAT share\none)")
	fs.DurationVar(&l.MQTTConnectTimeout, "mqtt-connect-timeout", mqtt.DefaultConnectTimeout, "time from a device's TLS handshake to its MQTT CONNECT")

	quota := func(p *int, name string, def int, usage string) {
		fs.IntVar(p, name, def, usage+" (AWS IoT Core's default; -1: no limit)")
	}
	quota(&l.MQTTMaxPacketSize, "mqtt-max-packet-size", mqtt.DefaultMaxPacketSize, "largest MQTT packet in bytes, refused from its header")
	quota(&l.MQTTMaxClientIDLength, "mqtt-max-client-id-length", mqtt.DefaultMaxClientIDLength, "longest client id in bytes")
	quota(&l.MQTTMaxSubscriptionsPerConnection, "mqtt-max-subscriptions", mqtt.DefaultMaxSubscriptionsPerConnection, "subscriptions per connection")
	quota(&l.MQTTMaxFiltersPerSubscribe, "mqtt-max-filters-per-subscribe", mqtt.DefaultMaxFiltersPerSubscribe, "topic filters per SUBSCRIBE")
	quota(&l.MQTTMaxTopicLength, "mqtt-max-topic-length", mqtt.DefaultMaxTopicLength, "longest topic or filter in bytes")
	quota(&l.MQTTMaxTopicSlashes, "mqtt-max-topic-slashes", mqtt.DefaultMaxTopicSlashes, "most forward slashes in a topic or filter")
	quota(&l.MQTTMaxPublishesPerSecond, "mqtt-max-publishes-per-second", mqtt.DefaultMaxPublishesPerSecond, "inbound publishes per second per connection")
	quota(&l.MQTTMaxInboundBytesPerSecond, "mqtt-max-inbound-bytes-per-second", mqtt.DefaultMaxInboundBytesPerSecond, "inbound bytes per second per connection")
	quota(&l.MQTTMaxInflightMessages, "mqtt-max-inflight", mqtt.DefaultMaxInflightMessages, "unacknowledged QoS 1 and 2 messages in flight, each way, per connection")
	fs.IntVar(&l.MQTTMaxQueuedMessages, "mqtt-max-queued", mqtt.DefaultMaxQueuedMessages, "QoS 1 and 2 messages a session holds for its device, online or offline (-1: 65535)")
	fs.IntVar(&l.MQTTMaxRetainedMessages, "mqtt-max-retained-messages", mqtt.DefaultMaxRetainedMessages, "retained messages per account and region (-1: no limit)")
	fs.Int64Var(&l.MQTTMaxRetainedBytes, "mqtt-max-retained-bytes", mqtt.DefaultMaxRetainedBytes, "payload bytes of the retained messages per account and region (-1: no limit)")
	fs.Float64Var(&l.JITRRatePerCA, "jitr-rate-per-ca", mqtt.DefaultAutoRegistrationsPerSecondPerCA, "just-in-time registrations per second per CA (-1: no limit)")
	fs.IntVar(&l.JITRBurstPerCA, "jitr-burst-per-ca", mqtt.DefaultAutoRegistrationBurstPerCA, "just-in-time registrations a CA may make at once before its rate applies")
	fs.Float64Var(&l.JITRRatePerAccount, "jitr-rate-per-account", mqtt.DefaultAutoRegistrationsPerSecondPerAccount, "just-in-time registrations per second per account (-1: no limit)")
	fs.IntVar(&l.JITRBurstPerAccount, "jitr-burst-per-account", mqtt.DefaultAutoRegistrationBurstPerAccount, "just-in-time registrations an account may make at once before its rate applies")
}

// configureGateway gives g the limits of l.
func (l *Limits) configureGateway(g *mqtt.Gateway) {
	g.TrustedProxies = l.TrustedProxies
	g.MaxConnections = l.mqttMaxConnections()
	g.MaxConnectionsPerAddress = l.MQTTMaxConnectionsPerAddress
	g.ConnectTimeout = l.MQTTConnectTimeout
	g.MaxPacketSize = l.MQTTMaxPacketSize
	g.MaxClientIDLength = l.MQTTMaxClientIDLength
	g.MaxSubscriptionsPerConnection = l.MQTTMaxSubscriptionsPerConnection
	g.MaxFiltersPerSubscribe = l.MQTTMaxFiltersPerSubscribe
	g.MaxTopicLength = l.MQTTMaxTopicLength
	g.MaxTopicSlashes = l.MQTTMaxTopicSlashes
	g.MaxPublishesPerSecond = l.MQTTMaxPublishesPerSecond
	g.MaxInboundBytesPerSecond = l.MQTTMaxInboundBytesPerSecond
	g.MaxInflightMessages = l.MQTTMaxInflightMessages
	g.MaxQueuedMessages = l.MQTTMaxQueuedMessages
	g.MaxRetainedMessages = l.MQTTMaxRetainedMessages
	g.MaxRetainedBytes = l.MQTTMaxRetainedBytes
	g.AutoRegistrationsPerSecondPerCA = l.JITRRatePerCA
	g.AutoRegistrationBurstPerCA = l.JITRBurstPerCA
	g.AutoRegistrationsPerSecondPerAccount = l.JITRRatePerAccount
	g.AutoRegistrationBurstPerAccount = l.JITRBurstPerAccount
}

// mqttMaxConnections is the device connection cap: below the open-file
// limit by the API's cap and reservedFiles, so that neither door can take
// the descriptors the other needs.
func (l *Limits) mqttMaxConnections() int {
	if l.MQTTMaxConnections != 0 {
		return l.MQTTMaxConnections
	}
	if n := connlimit.MaxConnectionsLeaving(max(l.APIMaxConnections, 0) + reservedFiles); n > 0 {
		return n
	}
	return -1 // the limit is unknown or unlimited: no cap
}

// apiListener caps the API port's connections.
func (l *Limits) apiListener(ln net.Listener, m *Main) *connlimit.Listener {
	cl := connlimit.NewListener(ln)
	cl.MaxConnections = l.APIMaxConnections
	cl.MaxConnectionsPerAddress = l.APIMaxConnectionsPerAddress
	cl.TrustedProxies = l.TrustedProxies
	cl.Logger = m.Logger
	return cl
}

// writeAPIMetrics writes the API listener's counters.
func writeAPIMetrics(w io.Writer, ln *connlimit.Listener) {
	st := ln.Stats()
	fmt.Fprintf(w, "# HELP fleetcert_api_connections_open Connections open on the API port.\n# TYPE fleetcert_api_connections_open gauge\nfleetcert_api_connections_open %d\n", st.Open)
	fmt.Fprint(w, "# HELP fleetcert_api_connections_limited_total Connections to the API port closed at once by a cap, by reason.\n# TYPE fleetcert_api_connections_limited_total counter\n")
	for _, reason := range []string{connlimit.ReasonMaxConnections, connlimit.ReasonMaxConnectionsPerAddress, connlimit.ReasonProxyHeader} {
		fmt.Fprintf(w, "fleetcert_api_connections_limited_total{reason=%q} %d\n", reason, st.Refused[reason])
	}
}

// prefixList is a flag.Value of addresses and CIDR prefixes, repeatable or
// comma-separated; a bare address is a prefix of its full length.
type prefixList struct{ prefixes *[]netip.Prefix }

func (p *prefixList) String() string {
	if p.prefixes == nil {
		return ""
	}
	var s []string
	for _, x := range *p.prefixes {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(item)
		if err != nil {
			addr, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", item)
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		*p.prefixes = append(*p.prefixes, prefix.Masked())
	}
	return nil
}
