package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/connlimit"
)

// Message broker quotas. The defaults are AWS IoT Core's published quotas
// ("AWS IoT Core endpoints and quotas", message broker and protocol limits
// and quotas: https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits)
// where AWS publishes one, so that a fleet that works against AWS works
// here, and one that would be throttled there is throttled here. Where
// AWS's quota is of a service that stores on disk across a fleet of
// brokers (retained messages, queued messages) the default is what one
// process that keeps everything in memory can afford; each says why.
const (
	// DefaultMaxPacketSize: AWS "Message size: the payload for every
	// publish request can be no larger than 128 KB. AWS IoT Core rejects
	// publish and connect requests larger than this size." It bounds the
	// whole MQTT packet (a few bytes more than its payload), as MQTT 5's
	// Maximum Packet Size does, and is checked on the fixed header, before
	// the body is read.
	DefaultMaxPacketSize = 128 * 1024
	// DefaultMaxClientIDLength: AWS "Client ID size: 128 bytes of UTF-8
	// encoded characters".
	DefaultMaxClientIDLength = 128
	// DefaultMaxSubscriptionsPerConnection: AWS "Subscriptions per
	// connection: 50".
	DefaultMaxSubscriptionsPerConnection = 50
	// DefaultMaxFiltersPerSubscribe: AWS "Maximum subscriptions per
	// subscribe request: a single SUBSCRIBE request has a quota of 8
	// subscriptions".
	DefaultMaxFiltersPerSubscribe = 8
	// DefaultMaxTopicLength: AWS "Topic size: the topic passed to the
	// message broker when publishing a message cannot exceed 256 bytes of
	// UTF-8 encoded characters" (applied to filters too).
	DefaultMaxTopicLength = 256
	// DefaultMaxTopicSlashes: AWS "Maximum number of slashes in topic and
	// topic filter: 7".
	DefaultMaxTopicSlashes = 7
	// DefaultMaxPublishesPerSecond: AWS "Publish requests per second per
	// connection: 100"; publishes over it are discarded.
	DefaultMaxPublishesPerSecond = 100
	// DefaultMaxInboundBytesPerSecond: AWS "Throughput per connection:
	// 512 KiB/s"; a connection sending faster is throttled (read more
	// slowly), not closed.
	DefaultMaxInboundBytesPerSecond = 512 * 1024
	// DefaultMaxInflightMessages: AWS "Maximum inbound unacknowledged
	// messages: 100" and "Maximum outbound unacknowledged messages: 100"
	// per client: MQTT 5's Receive Maximum the gateway announces, and the
	// QoS 1 and 2 messages it sends a device before waiting for its acks.
	DefaultMaxInflightMessages = 100
	// DefaultMaxQueuedMessages bounds the QoS 1 and 2 messages a session
	// holds for its device, in flight or waiting (for a persistent session
	// while it is offline). AWS stores them durably and limits the rate at
	// which they are queued per account, not their count per session (its
	// quota page; the number could not be checked here, so none is quoted);
	// here they are in memory, up to DefaultMaxPacketSize each, so a session
	// keeps at most this many (128 MiB at worst) and drops the rest:
	// fleetcert's choice, sized for memory.
	DefaultMaxQueuedMessages = 1000
	// DefaultMaxRetainedMessages bounds the retained messages of one
	// account and region. AWS has a per-account quota for retained
	// messages, for a durable, distributed store (its figure could not be
	// checked here, so none is quoted); here they are in one process's
	// memory, so the default is fleetcert's own, and
	// DefaultMaxRetainedBytes bounds their size.
	DefaultMaxRetainedMessages = 10000
	// DefaultMaxRetainedBytes bounds the payload bytes of one account and
	// region's retained messages: 64 MiB, so that one account cannot fill
	// the process's memory.
	DefaultMaxRetainedBytes = 64 << 20
	// DefaultConnectTimeout bounds the wait for CONNECT after the TLS
	// handshake: a connection that sends nothing is closed.
	DefaultConnectTimeout = 10 * time.Second
)

// Quota names, as the metrics and logs call them.
const (
	QuotaPacketSize                 = "packet_size"
	QuotaClientIDLength             = "client_id_length"
	QuotaSubscriptionsPerConnection = "subscriptions_per_connection"
	QuotaFiltersPerSubscribe        = "filters_per_subscribe"
	QuotaTopicLength                = "topic_length"
	QuotaTopicSlashes               = "topic_slashes"
	QuotaPublishesPerSecond         = "publishes_per_second"
	QuotaInboundBytesPerSecond      = "inbound_bytes_per_second"
	QuotaInflightMessages           = "inflight_messages"
	QuotaQueuedMessages             = "queued_messages"
	QuotaRetainedMessages           = "retained_messages"
	QuotaRetainedBytes              = "retained_bytes"
	QuotaAutoRegistrationsPerCA     = "auto_registrations_per_ca"
	QuotaAutoRegistrationsPerAcct   = "auto_registrations_per_account"
)

// quota indexes the gateway's quotas (counters, per-connection log bits).
type quota uint8

const (
	quotaPacketSize quota = iota
	quotaClientIDLength
	quotaSubscriptionsPerConnection
	quotaFiltersPerSubscribe
	quotaTopicLength
	quotaTopicSlashes
	quotaPublishesPerSecond
	quotaInboundBytesPerSecond
	quotaInflightMessages
	quotaQueuedMessages
	quotaRetainedMessages
	quotaRetainedBytes
	quotaAutoRegistrationsPerCA
	quotaAutoRegistrationsPerAccount
	numQuotas
)

var quotaNames = [numQuotas]string{
	QuotaPacketSize, QuotaClientIDLength, QuotaSubscriptionsPerConnection, QuotaFiltersPerSubscribe,
	QuotaTopicLength, QuotaTopicSlashes, QuotaPublishesPerSecond, QuotaInboundBytesPerSecond,
	QuotaInflightMessages, QuotaQueuedMessages, QuotaRetainedMessages, QuotaRetainedBytes,
	QuotaAutoRegistrationsPerCA, QuotaAutoRegistrationsPerAcct,
}

// limits are the quotas in force, resolved from the Gateway's fields at
// Start: 0 is off.
type limits struct {
	packetSize, clientIDLength       int
	subscriptions, filtersPerSub     int
	topicLength, topicSlashes        int
	publishesPerSecond, bytesPerSec  float64
	inflight, queued                 int
	retainedMessages                 int
	retainedBytes                    int64
	connectTimeout                   time.Duration
	autoRegPerCA, autoRegPerAccount  float64
	autoRegBurstCA, autoRegBurstAcct int
	maxConnections, maxConnsPerAddr  int
}

// orDefault resolves a quota field: 0 is def, negative is off (0).
func orDefault[T int | int64 | float64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// resolveLimits reads the quota fields, filling in their defaults.
func (g *Gateway) resolveLimits() {
	l := &g.limits
	l.packetSize = orDefault(g.MaxPacketSize, DefaultMaxPacketSize)
	l.clientIDLength = orDefault(g.MaxClientIDLength, DefaultMaxClientIDLength)
	l.subscriptions = orDefault(g.MaxSubscriptionsPerConnection, DefaultMaxSubscriptionsPerConnection)
	l.filtersPerSub = orDefault(g.MaxFiltersPerSubscribe, DefaultMaxFiltersPerSubscribe)
	l.topicLength = orDefault(g.MaxTopicLength, DefaultMaxTopicLength)
	l.topicSlashes = orDefault(g.MaxTopicSlashes, DefaultMaxTopicSlashes)
	l.publishesPerSecond = float64(orDefault(g.MaxPublishesPerSecond, DefaultMaxPublishesPerSecond))
	l.bytesPerSec = float64(orDefault(g.MaxInboundBytesPerSecond, DefaultMaxInboundBytesPerSecond))
	// MQTT carries both as 16-bit numbers; "off" is the most mochi keeps.
	l.inflight = min(orDefault(g.MaxInflightMessages, DefaultMaxInflightMessages), 65535)
	l.queued = min(orDefault(g.MaxQueuedMessages, DefaultMaxQueuedMessages), 65535)
	if l.queued == 0 {
		l.queued = 65535
	}
	if l.inflight > 0 && l.queued < l.inflight {
		l.queued = l.inflight // the messages in flight are queued too
	}
	l.retainedMessages = orDefault(g.MaxRetainedMessages, DefaultMaxRetainedMessages)
	l.retainedBytes = orDefault(g.MaxRetainedBytes, DefaultMaxRetainedBytes)
	l.connectTimeout = g.ConnectTimeout
	if l.connectTimeout <= 0 {
		l.connectTimeout = DefaultConnectTimeout
	}
	l.autoRegPerCA = orDefault(g.AutoRegistrationsPerSecondPerCA, DefaultAutoRegistrationsPerSecondPerCA)
	l.autoRegBurstCA = max(orDefault(g.AutoRegistrationBurstPerCA, DefaultAutoRegistrationBurstPerCA), 1)
	l.autoRegPerAccount = orDefault(g.AutoRegistrationsPerSecondPerAccount, DefaultAutoRegistrationsPerSecondPerAccount)
	l.autoRegBurstAcct = max(orDefault(g.AutoRegistrationBurstPerAccount, DefaultAutoRegistrationBurstPerAccount), 1)
	l.maxConnections = orDefault(g.MaxConnections, connlimit.DefaultMaxConnections())
	l.maxConnsPerAddr = max(g.MaxConnectionsPerAddress, 0)
}

// maxMQTTPacket is the largest packet MQTT can frame: a 4-byte remaining
// length of at most 268,435,455, and the fixed header.
const maxMQTTPacket = 268435455 + 5

// applyCapabilities sets the quotas mochi enforces itself.
func (l *limits) applyCapabilities(caps *mochi.Capabilities) {
	// Checked on each packet's fixed header: a packet declaring more is
	// refused before its body is read or buffered (mochi Client.ReadFixedHeader).
	caps.MaximumPacketSize = uint32(min(l.packetSize, maxMQTTPacket))
	// Announced to MQTT 5 devices as Receive Maximum; mochi disconnects a
	// device with more QoS 2 publishes unacknowledged (0x93).
	caps.ReceiveMaximum = uint16(l.inflight)
	if l.inflight == 0 {
		caps.ReceiveMaximum = 65535
	}
	// Messages a session holds in flight and waiting; mochi drops those
	// over it (and says so in a log line the gateway turns into a count).
	caps.MaximumInflight = uint16(l.queued)
}

// monoStart anchors monotonic time for the rate limiters.
var monoStart = time.Now()

func monoNow() time.Duration { return time.Since(monoStart) }

// bucket is a token bucket holding at most one second of its rate. It is
// used by one goroutine only (a connection's reader).
type bucket struct {
	tokens float64
	last   time.Duration
	primed bool
}

func (b *bucket) refill(now time.Duration, rate float64) {
	if !b.primed {
		b.tokens, b.last, b.primed = rate, now, true
		return
	}
	b.tokens = min(rate, b.tokens+(now-b.last).Seconds()*rate)
	b.last = now
}

// take takes one token, reporting false when there is none.
func (b *bucket) take(now time.Duration, rate float64) bool {
	b.refill(now, rate)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// spend takes n tokens, going into debt, and returns how long to wait for
// the debt to be paid.
func (b *bucket) spend(n int, now time.Duration, rate float64) time.Duration {
	b.refill(now, rate)
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / rate * float64(time.Second))
}

// deviceConn is a device's connection under TLS: it throttles what the
// device sends and keeps the connection's quota state, which hooks reach
// from the mochi Client without a lookup (tls.Conn.NetConn).
type deviceConn struct {
	net.Conn
	g      *Gateway
	client atomic.Pointer[mochi.Client] // once CONNECT is read
	logged atomic.Uint32                // a bit per quota already logged for this connection

	// Used by the connection's reader only.
	bytes, publishes bucket
	// The filters of the SUBSCRIBE being answered that a quota refused
	// (mochi answers them 0x8F; OnPacketEncode makes that 0x97).
	subRefused  []bool
	subPacketID uint16
}

// Read reads from the device, sleeping once it has sent more than its
// byte rate allows: TCP then slows the device down, as AWS throttles.
func (c *deviceConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if rate := c.g.limits.bytesPerSec; n > 0 && rate > 0 {
		if wait := c.bytes.spend(n, monoNow(), rate); wait > 0 {
			c.g.quotaExceeded(quotaInboundBytesPerSecond, c.client.Load(), c)
			time.Sleep(wait)
		}
	}
	return n, err
}

// deviceConnOf returns the deviceConn of a device's client.
func deviceConnOf(cl *mochi.Client) *deviceConn {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	dc, _ := tc.NetConn().(*deviceConn)
	return dc
}

// firstLog reports whether q is logged for the first time on c.
func (c *deviceConn) firstLog(q quota) bool {
	bit := uint32(1) << q
	for {
		old := c.logged.Load()
		if old&bit != 0 {
			return false
		}
		if c.logged.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// quotaExceeded counts a refusal by quota q and logs it, once per
// connection and quota, naming the device.
func (g *Gateway) quotaExceeded(q quota, cl *mochi.Client, dc *deviceConn) {
	g.metrics.quotas[q].Add(1)
	if dc == nil && cl != nil && cl.Net.Conn != nil {
		dc = deviceConnOf(cl)
	}
	if dc != nil && !dc.firstLog(q) {
		return
	}
	g.logQuota(q, g.subjectOf(cl, dc), "")
}

func (g *Gateway) logQuota(q quota, s quotaSubject, stage string) {
	attrs := []slog.Attr{slog.String("quota", quotaNames[q]), slog.String("certificateId", s.certificateID),
		slog.String("clientId", s.clientID), slog.String("account", s.scope.AccountID), slog.String("region", s.scope.Region)}
	if stage != "" {
		attrs = append(attrs, slog.String("stage", stage))
	}
	if s.remote != "" {
		attrs = append(attrs, slog.String("remote", s.remote))
	}
	g.Logger.LogAttrs(context.Background(), slog.LevelInfo, "quota exceeded", attrs...)
}

// quotaSubject is who a quota refused.
type quotaSubject struct {
	certificateID, clientID, remote string
	scope                           fleetcert.Scope
}

// subjectOf names the device of cl (or, before CONNECT, of dc) for a log
// line. It runs only for a line to be logged.
func (g *Gateway) subjectOf(cl *mochi.Client, dc *deviceConn) quotaSubject {
	var s quotaSubject
	if cl != nil {
		if sess := g.sessions.get(cl); sess != nil {
			s.certificateID, s.clientID = sess.certificateID, sess.clientID
			s.scope, _ = sess.state()
		} else {
			// Not (or no longer) indexed: an offline session keeps its
			// internal client id, account/region/clientId.
			s.clientID = cl.ID
			if parts := strings.SplitN(cl.ID, "/", 3); len(parts) == 3 && fleetcert.ValidAccountID(parts[0]) {
				s.scope, s.clientID = fleetcert.Scope{AccountID: parts[0], Region: parts[1]}, parts[2]
			}
		}
		s.remote = cl.Net.Remote
	}
	if s.certificateID == "" && dc != nil {
		if tc, ok := dc.tlsConn(); ok {
			if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
				s.certificateID = fleetcert.CertificateID(cs.PeerCertificates[0].Raw)
			}
		}
	}
	if s.remote == "" && dc != nil {
		s.remote = dc.RemoteAddr().String()
	}
	return s
}

// tlsConn returns the TLS connection over c, once its client is known.
func (c *deviceConn) tlsConn() (*tls.Conn, bool) {
	cl := c.client.Load()
	if cl == nil {
		return nil, false
	}
	tc, ok := cl.Net.Conn.(*tls.Conn)
	return tc, ok
}

// OnConnect refuses a client id over its quota (CONNACK 0x85, MQTT 3.1.1
// return code 2, "identifier rejected") and bounds the messages the
// gateway sends the device unacknowledged. It runs before admission.
func (h *authHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	g := h.g
	dc := deviceConnOf(cl)
	if dc != nil {
		dc.client.Store(cl)
	}
	if max := g.limits.clientIDLength; max > 0 && len(pk.Connect.ClientIdentifier) > max {
		// Not admitted yet: the account is the handshake's, if it decided.
		s := quotaSubject{clientID: pk.Connect.ClientIdentifier[:max] + "…", remote: cl.Net.Remote}
		if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
			if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
				s.certificateID = fleetcert.CertificateID(cs.PeerCertificates[0].Raw)
				s.scope = g.handshakes.peekScope(cs)
			}
		}
		g.refusedByQuota(quotaClientIDLength, s)
		g.server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	if max := g.limits.inflight; max > 0 {
		// MQTT 5's Receive Maximum the device sent, at most the quota; an
		// MQTT 3.1.1 device gets the quota. mochi queues what is over it
		// until the device acknowledges (Inflight send quota).
		rm := cl.Properties.Props.ReceiveMaximum
		if rm == 0 || int(rm) > max {
			rm = uint16(max)
		}
		cl.Properties.Props.ReceiveMaximum = rm
		cl.State.Inflight.ResetSendQuota(int32(rm))
	}
	return nil
}

// refusedByQuota logs and counts a connection refused by a quota.
func (g *Gateway) refusedByQuota(q quota, s quotaSubject) {
	g.metrics.quotas[q].Add(1)
	g.metrics.refuse("quota_exceeded")
	g.logQuota(q, s, "connect")
}

// topicQuota checks a topic or filter against the topic quotas. The
// "$share/{group}/" of a shared subscription is not counted.
func (l *limits) topicQuota(topic string) (quota, bool) {
	if _, rest, ok := splitShared(topic); ok {
		topic = rest
	}
	if l.topicLength > 0 && len(topic) > l.topicLength {
		return quotaTopicLength, true
	}
	if l.topicSlashes > 0 && strings.Count(topic, "/") > l.topicSlashes {
		return quotaTopicSlashes, true
	}
	return 0, false
}

// limitSubscribe refuses the filters of a SUBSCRIBE that the quotas do
// not allow: all of them when there are too many in one request, else
// those that are too long or deep, and those past the subscriptions a
// connection may hold. A refused filter is emptied, which mochi answers
// with a failure code (MQTT 3.1.1: 0x80; MQTT 5: 0x8F, which
// OnPacketEncode makes 0x97 quota exceeded).
func (g *Gateway) limitSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	l := &g.limits
	dc := deviceConnOf(cl)
	n := len(pk.Filters)
	var refused []bool
	refuse := func(i int) {
		if refused == nil {
			refused = make([]bool, n)
		}
		refused[i] = true
	}
	if l.filtersPerSub > 0 && n > l.filtersPerSub {
		for i := range pk.Filters {
			refuse(i)
		}
		g.quotaExceeded(quotaFiltersPerSubscribe, cl, dc)
	} else {
		for i, sub := range pk.Filters {
			if q, bad := l.topicQuota(sub.Filter); bad {
				refuse(i)
				g.quotaExceeded(q, cl, dc)
			}
		}
		if have := cl.State.Subscriptions.Len(); l.subscriptions > 0 && have+n > l.subscriptions {
			// Resubscribing to a filter replaces its subscription.
			scope, known := g.scopeOf(cl)
			over := false
			for i, sub := range pk.Filters {
				if refused != nil && refused[i] {
					continue
				}
				if known {
					if _, ok := cl.State.Subscriptions.Get(internalFilter(scope, sub.Filter)); ok {
						continue
					}
				}
				if have >= l.subscriptions {
					refuse(i)
					over = true
					continue
				}
				have++
			}
			if over {
				g.quotaExceeded(quotaSubscriptionsPerConnection, cl, dc)
			}
		}
	}
	if refused == nil {
		return pk
	}
	filters := make(packets.Subscriptions, n)
	copy(filters, pk.Filters)
	for i := range filters {
		if refused[i] {
			filters[i].Filter = ""
		}
	}
	pk.Filters = filters
	if dc != nil {
		dc.subRefused, dc.subPacketID = refused, pk.PacketID
	}
	return pk
}

// refusePublish applies the publish quotas to a device's publish (its own
// topic, before the rewrite). A refused publish is discarded; an MQTT 5
// device gets a PUBACK (or PUBREC) saying why: 0x96 message rate too high,
// 0x97 quota exceeded.
func (g *Gateway) refusePublish(cl *mochi.Client, pk packets.Packet) bool {
	l := &g.limits
	dc := deviceConnOf(cl)
	q, refused := quota(0), false
	switch {
	case l.publishesPerSecond > 0 && dc != nil && !dc.publishes.take(monoNow(), l.publishesPerSecond):
		q, refused = quotaPublishesPerSecond, true
	default:
		q, refused = l.topicQuota(pk.TopicName)
	}
	if !refused && pk.FixedHeader.Retain && len(pk.Payload) > 0 && (l.retainedMessages > 0 || l.retainedBytes > 0) {
		if scope, ok := g.scopeOf(cl); ok {
			q, refused = g.retained.check(scope, internalTopic(scope, pk.TopicName), len(pk.Payload), l)
		}
	}
	if !refused {
		return false
	}
	g.quotaExceeded(q, cl, dc)
	if cl.Properties.ProtocolVersion >= 5 && pk.FixedHeader.Qos > 0 {
		code := packets.ErrQuotaExceeded
		if q == quotaPublishesPerSecond {
			code = packets.ErrMessageRateTooHigh
		}
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID,
			ReasonCode: code.Code, Properties: packets.Properties{ReasonString: code.Reason}}
		if pk.FixedHeader.Qos == 2 {
			ack.FixedHeader.Type = packets.Pubrec
		}
		cl.WritePacket(ack)
	}
	return true
}

// encodeQuotas adds the quotas to what the gateway tells an MQTT 5
// device: Maximum Packet Size in the CONNACK [MQTT-3.2.2-15], and 0x97
// quota exceeded in a SUBACK for the filters a quota refused.
func (g *Gateway) encodeQuotas(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.Properties.ProtocolVersion < 5 {
		return pk
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code && g.limits.packetSize > 0 {
			pk.Properties.MaximumPacketSize = uint32(g.limits.packetSize)
		}
	case packets.Suback:
		dc := deviceConnOf(cl)
		if dc == nil || dc.subRefused == nil || dc.subPacketID != pk.PacketID {
			return pk
		}
		codes := make([]byte, len(pk.ReasonCodes))
		copy(codes, pk.ReasonCodes)
		for i := range codes {
			if i < len(dc.subRefused) && dc.subRefused[i] && codes[i] == packets.ErrTopicFilterInvalid.Code {
				codes[i] = packets.ErrQuotaExceeded.Code
			}
		}
		pk.ReasonCodes = codes
		dc.subRefused = nil
	}
	return pk
}

// noteDisconnect counts the quotas mochi enforced by closing a session:
// a packet over MaxPacketSize (mochi closes the connection once it has
// read the fixed header: MQTT has no way to skip the body), or more QoS 2
// publishes unacknowledged than the Receive Maximum (DISCONNECT 0x93).
func (g *Gateway) noteDisconnect(cl *mochi.Client, err error) {
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		g.quotaExceeded(quotaPacketSize, cl, nil)
	case errors.Is(err, packets.ErrReceiveMaximum):
		g.quotaExceeded(quotaInflightMessages, cl, nil)
	}
}

// connectionEnded counts a CONNECT over MaxPacketSize: mochi refuses it on
// its fixed header, before any hook runs.
func (g *Gateway) connectionEnded(tc *tls.Conn, err error, adm *admission) {
	dc, ok := tc.NetConn().(*deviceConn)
	if !ok || dc.client.Load() != nil || !errors.Is(err, packets.ErrPacketTooLarge) {
		return // sessions are counted by OnDisconnect
	}
	g.metrics.quotas[quotaPacketSize].Add(1)
	s := quotaSubject{remote: tc.RemoteAddr().String()}
	if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
		s.certificateID = fleetcert.CertificateID(cs.PeerCertificates[0].Raw)
	}
	if adm != nil {
		s.scope = adm.scope
	}
	g.logQuota(quotaPacketSize, s, "connect")
}

// queueFull counts a message dropped because a session's queue is full;
// mochi says so only in a log line (see mochiLog).
func (g *Gateway) queueFull(clientID string) {
	if g.server == nil {
		return
	}
	cl, ok := g.server.Clients.Get(clientID)
	if !ok {
		g.metrics.quotas[quotaQueuedMessages].Add(1)
		return
	}
	var dc *deviceConn
	if cl.Net.Conn != nil {
		dc = deviceConnOf(cl)
	}
	g.quotaExceeded(quotaQueuedMessages, cl, dc)
}

// mochiQueueFull is mochi's log message for a message it drops because a
// session holds Capabilities.MaximumInflight messages.
const mochiQueueFull = "client store quota reached"

// mochiLog is the handler of mochi's log: it turns mochi's line for each
// message dropped from a full session queue into the gateway's count and
// one line per session.
type mochiLog struct {
	slog.Handler
	g *Gateway
}

func (h mochiLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == mochiQueueFull {
		var id string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "client" {
				id = a.Value.String()
				return false
			}
			return true
		})
		h.g.queueFull(id)
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// Enabled lets mochi's queue-full warning through to Handle whatever the
// level of the handler below.
func (h mochiLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.Handler.Enabled(ctx, l)
}

func (h mochiLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return mochiLog{h.Handler.WithAttrs(attrs), h.g}
}

func (h mochiLog) WithGroup(name string) slog.Handler {
	return mochiLog{h.Handler.WithGroup(name), h.g}
}

// retainedUsage counts each scope's retained messages and their bytes. It
// is touched only by retained publishes and their removal.
type retainedUsage struct {
	mu      sync.Mutex
	byScope map[fleetcert.Scope]*scopeRetained
}

type scopeRetained struct {
	sizes map[string]int // internal topic → payload bytes
	bytes int64
}

func (r *retainedUsage) scope(s fleetcert.Scope) *scopeRetained {
	if r.byScope == nil {
		r.byScope = map[fleetcert.Scope]*scopeRetained{}
	}
	u := r.byScope[s]
	if u == nil {
		u = &scopeRetained{sizes: map[string]int{}}
		r.byScope[s] = u
	}
	return u
}

// check reports whether retaining size bytes on topic of scope would go
// over a retained quota. Replacing a retained message is not a new one.
// Publishes retained at once may together overshoot by as many messages
// as there are in progress: the count is set when mochi has retained.
func (r *retainedUsage) check(scope fleetcert.Scope, topic string, size int, l *limits) (quota, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.scope(scope)
	old, exists := u.sizes[topic]
	if !exists && l.retainedMessages > 0 && len(u.sizes) >= l.retainedMessages {
		return quotaRetainedMessages, true
	}
	if l.retainedBytes > 0 && u.bytes-int64(old)+int64(size) > l.retainedBytes {
		return quotaRetainedBytes, true
	}
	return 0, false
}

// set records the retained message of topic (size < 0: none).
func (r *retainedUsage) set(scope fleetcert.Scope, topic string, size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.scope(scope)
	old, exists := u.sizes[topic]
	if size < 0 {
		if exists {
			delete(u.sizes, topic)
			u.bytes -= int64(old)
		}
		if len(u.sizes) == 0 {
			delete(r.byScope, scope)
		}
		return
	}
	u.sizes[topic] = size
	u.bytes += int64(size - old)
}

// OnRetainMessage counts a retained message of a device's scope once
// mochi has stored (or, with an empty payload, removed) it. It reads what
// mochi holds, so that publishes racing on one topic count as the one
// that won.
func (h *authHook) OnRetainMessage(cl *mochi.Client, pk packets.Packet, r int64) {
	if l := &h.g.limits; l.retainedMessages == 0 && l.retainedBytes == 0 {
		return
	}
	scope, _, ok := deviceTopic(pk.TopicName)
	if !ok {
		return
	}
	size := -1
	if stored, ok := h.g.server.Topics.Retained.Get(pk.TopicName); ok && len(stored.Payload) > 0 {
		size = len(stored.Payload)
	}
	h.g.retained.set(scope, pk.TopicName, size)
}

// OnRetainedExpired forgets an expired retained message.
func (h *authHook) OnRetainedExpired(topic string) {
	if scope, _, ok := deviceTopic(topic); ok {
		h.g.retained.set(scope, topic, -1)
	}
}

// retainWill reports whether a will may be retained under the retained
// quotas of scope; it is sent unretained otherwise.
func (g *Gateway) retainWill(cl *mochi.Client, scope fleetcert.Scope, will mochi.Will) bool {
	l := &g.limits
	if len(will.Payload) == 0 || l.retainedMessages == 0 && l.retainedBytes == 0 {
		return true
	}
	q, over := g.retained.check(scope, will.TopicName, len(will.Payload), l)
	if over {
		g.quotaExceeded(q, cl, nil)
	}
	return !over
}

// peekScope returns the scope the handshake of cs admitted, without taking
// the admission (CONNECT does).
func (h *handshakeAdmissions) peekScope(cs tls.ConnectionState) fleetcert.Scope {
	if len(cs.PeerCertificates) == 0 {
		return fleetcert.Scope{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.m[cs.PeerCertificates[0]]; a != nil {
		return a.scope
	}
	return fleetcert.Scope{}
}

// appendLimitMetrics writes the quota and connection-cap metrics:
// refusals by quota, open connections, and connections refused by the
// listener's caps, by reason.
func (g *Gateway) appendLimitMetrics(b []byte) []byte {
	b = append(b, "# HELP fleetcert_mqtt_quota_exceeded_total Requests refused, discarded or throttled by a message broker quota, by quota.\n"+
		"# TYPE fleetcert_mqtt_quota_exceeded_total counter\n"...)
	for i, name := range quotaNames {
		b = fmt.Appendf(b, "fleetcert_mqtt_quota_exceeded_total{quota=%q} %d\n", name, g.metrics.quotas[i].Load())
	}
	if g.listener == nil || g.listener.limited == nil {
		return b
	}
	st := g.listener.limited.Stats()
	b = append(b, "# HELP fleetcert_mqtt_connections_open Connections open on the MQTT listener, admitted or not yet.\n"+
		"# TYPE fleetcert_mqtt_connections_open gauge\n"...)
	b = fmt.Appendf(b, "fleetcert_mqtt_connections_open %d\n", st.Open)
	b = append(b, "# HELP fleetcert_mqtt_connections_limited_total Connections closed by the listener's caps or PROXY header checks, by reason.\n"+
		"# TYPE fleetcert_mqtt_connections_limited_total counter\n"...)
	for _, r := range []string{connlimit.ReasonMaxConnections, connlimit.ReasonMaxConnectionsPerAddress, connlimit.ReasonProxyHeader} {
		b = fmt.Appendf(b, "fleetcert_mqtt_connections_limited_total{reason=%q} %d\n", r, st.Refused[r])
	}
	return b
}
