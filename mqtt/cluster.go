package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
)

// # Messages across a cluster
//
// With Gateway.Cluster set, the gateways of a cluster route MQTT messages
// to each other through a Fabric (NATS: package natsroute); without it a
// gateway is a broker of its own, exactly as before.
//
//   - Every message a device publishes (and every will and $aws/events
//     event the gateway publishes) is delivered by mochi to the node's own
//     subscribers, and handed to the fabric, which carries it to every
//     other node (never back to this one). A node delivers what it receives
//     from the fabric to its own subscribers only, through an inline client
//     of its own (routerClientID) whose messages it never hands back to the
//     fabric: no loops, and each subscriber gets a message once.
//   - A QoS 1 publish is handed to the fabric in OnPublish, which mochi
//     calls before it sends the PUBACK, and the fabric returns once the
//     NATS server has it: a publisher that got its PUBACK never loses the
//     message to the death of the node it published to. The wait is
//     bounded (ErrUnconfirmed): mochi reads a device's packets one at a
//     time, so a stalled NATS must not stall the device; a message
//     acknowledged unconfirmed is counted (fleetcert_mqtt_cluster_
//     unconfirmed_total) and not delivered here a second time.
//   - Shared subscriptions: with a fabric, a device's "$share/{group}/{f}"
//     is held by mochi in a space of its own ("$fcs/…", "$fcs$/…"; see
//     sharedSpace) that no published topic is in, so mochi never delivers a
//     published message to a shared subscription by itself. Each node that
//     has members of a group joins the group's NATS queue group; NATS hands
//     each message to one node of the group, which delivers it to one of its
//     members (OnSelectSubscribers). When the fabric cannot take a message
//     (NATS unreachable), the node delivers it to its own members instead
//     (deliverSharedLocally): the cluster is then islands, each still a
//     broker.
//   - Retained messages: the fabric keeps them (a JetStream key-value
//     bucket); every node feeds mochi's retained store from it (Retained),
//     so a new subscriber on any node gets them, and they outlive any node.

// Message is an MQTT message as it travels between the nodes of a cluster:
// a device topic in a scope, and what MQTT 5 lets a publisher attach.
type Message struct {
	Scope   fleetcert.Scope
	Topic   string // the device's topic; "$aws/events/…" for events
	Payload []byte
	QoS     byte
	Retain  bool

	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	PayloadFormat   byte
	PayloadFormatOK bool   // PayloadFormat was sent
	MessageExpiry   uint32 // seconds; 0 none
	User            []UserProperty

	// Created is when the message was published (Unix seconds): mochi
	// drops a retained message MaximumMessageExpiryInterval after it, and
	// one that expires (MessageExpiry) that long after it.
	Created int64
}

// ErrUnconfirmed is a Fabric's Publish error for a message it was handed
// but could not confirm in time: it may still reach the other nodes and
// the shared subscriptions' groups, so the gateway must not deliver it to
// them itself.
var ErrUnconfirmed = errors.New("message not confirmed by the cluster's message fabric in time")

// UserProperty is an MQTT 5 user property.
type UserProperty struct{ Key, Value string }

// SharedSubscription is a shared subscription "$share/{Group}/{Filter}"
// in a scope, Filter as the device sent it.
type SharedSubscription struct {
	Scope  fleetcert.Scope
	Group  string
	Filter string
}

// Fabric carries messages between the gateways of a cluster. Its methods
// are safe for concurrent use.
type Fabric interface {
	// Start connects (or keeps trying to, in the background) and delivers
	// what other nodes send to r until Close. It returns once the retained
	// messages the fabric holds have been handed to r.Retained, or at once
	// when the fabric is unreachable (they follow when it is reached).
	Start(ctx context.Context, r FabricReceiver) error
	// Publish sends m to every other node, and to the queue groups of the
	// shared subscriptions that match it (this node's included). For QoS 1
	// and 2 it returns once the fabric has confirmed it, or an error
	// wrapping ErrUnconfirmed after a bounded wait (m may have been
	// delivered, or may be). Any other error means m reached no other
	// node and no group.
	Publish(m *Message) error
	// Retain stores m as the retained message of its topic (an empty
	// Payload removes it) for every node, now and to come; an error means
	// it is kept only by this node for now (the fabric stores it once it is
	// reached again).
	Retain(m *Message) error
	// JoinShared makes this node a member of the shared subscription's
	// group: it gets DeliverShared calls for some of its messages.
	// LeaveShared ends that.
	JoinShared(s SharedSubscription) error
	LeaveShared(s SharedSubscription) error
	// Connected reports whether messages are routed now.
	Connected() bool
	Close() error
}

// FabricStats is what a Fabric may count besides, for the gateway's
// metrics (an optional interface).
type FabricStats interface {
	// ConfirmRoundTrips is how many round trips to the fabric have
	// confirmed QoS 1 and 2 messages (several share one).
	ConfirmRoundTrips() uint64
	// Dropped is how many messages from other nodes the fabric dropped
	// before handing them to the receiver (it could not keep up).
	Dropped() uint64
}

// FabricReceiver is what a Fabric delivers to: the gateway.
type FabricReceiver interface {
	// Deliver hands m, published on another node, to this node's
	// subscribers (not to its shared subscriptions).
	Deliver(m *Message)
	// DeliverShared hands m to one of this node's members of s.
	DeliverShared(s SharedSubscription, m *Message)
	// Retained replaces the retained message of m's topic (an empty
	// Payload removes it), without delivering it.
	Retained(m *Message)
	// MaxMessageExpiry is how long the gateway keeps a retained message
	// at most (mochi's MaximumMessageExpiryInterval); a fabric keeps one
	// no longer, nor past its MQTT 5 message expiry interval.
	MaxMessageExpiry() time.Duration
}

// Inline clients the gateway delivers routed messages through; their ids
// are no device's (those are internalClientID's "{account}/{region}/…").
const (
	routerClientID      = "$fc-route"       // messages from other nodes
	routerLocalClientID = "$fc-route-local" // shared deliveries while unrouted
	routerSharedPrefix  = "$fc-route-share\x00"
)

// The shared subscriptions' space (see sharedSpace).
const (
	sharedRoot    = "$fcs/"
	sharedRootSys = "$fcs$/"
)

// sharedSpace returns the shared-subscription space's name of an internal
// topic or filter ("$fc/…" → "$fcs/…", "$fc$/…" → "$fcs$/…").
func sharedSpace(internal string) string {
	if rest, ok := strings.CutPrefix(internal, internalRootSys); ok {
		return sharedRootSys + rest
	}
	if rest, ok := strings.CutPrefix(internal, internalRoot); ok {
		return sharedRoot + rest
	}
	return internal
}

// unsharedSpace inverts sharedSpace; other topics are returned as they are.
func unsharedSpace(topic string) string {
	if rest, ok := strings.CutPrefix(topic, sharedRootSys); ok {
		return internalRootSys + rest
	}
	if rest, ok := strings.CutPrefix(topic, sharedRoot); ok {
		return internalRoot + rest
	}
	return topic
}

// cluster is the gateway's side of the fabric.
type cluster struct {
	g      *Gateway
	fabric Fabric

	router, local *mochi.Client

	mu      sync.Mutex
	members map[string]map[string]struct{} // shared filter (internal, shared space) → client ids
	clients map[string]*mochi.Client       // shared filter → its router client

	published, received, unroutable, unconfirmed, unsaved atomic.Uint64
}

// startCluster adds the cluster hook and starts the fabric; g.server
// exists and serves no one yet.
func (g *Gateway) startCluster() error {
	c := &cluster{g: g, fabric: g.Cluster, members: map[string]map[string]struct{}{}, clients: map[string]*mochi.Client{}}
	c.router = g.server.NewClient(nil, "local", routerClientID, true)
	// mochi honours a message expiry interval only in an MQTT 5 packet
	// [MQTT-3.3.2-5]: as 5, a retained message from another node expires
	// here when its publisher asked.
	c.router.Properties.ProtocolVersion = 5
	c.local = g.server.NewClient(nil, "local", routerLocalClientID, true)
	if err := g.server.AddHook(&clusterHook{c: c}, nil); err != nil {
		return err
	}
	g.cluster = c
	return g.Cluster.Start(g.ctx, clusterReceiver{c})
}

// routed reports whether the gateway has a fabric: its events are then
// published whether or not this node has a subscriber.
func (g *Gateway) routed() bool { return g.cluster != nil }

// ClusterConnected reports whether the gateway routes messages to the
// other nodes now; true when it has no fabric (a single node).
func (g *Gateway) ClusterConnected() bool {
	return g.cluster == nil || g.cluster.fabric.Connected()
}

func isRouterClient(id string) bool { return strings.HasPrefix(id, routerClientID) }

// message returns pk (on an internal topic) as a Message; ok false for a
// topic outside the scopes (a dropped will).
func message(pk *packets.Packet) (*Message, bool) {
	scope, topic, ok := deviceTopic(pk.TopicName)
	if !ok {
		return nil, false
	}
	p := &pk.Properties
	m := &Message{Scope: scope, Topic: topic, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		ContentType: p.ContentType, ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData,
		PayloadFormat: p.PayloadFormat, PayloadFormatOK: p.PayloadFormatFlag, MessageExpiry: p.MessageExpiryInterval,
		Created: pk.Created}
	if m.Created == 0 {
		m.Created = time.Now().Unix() // a will: mochi sets it after OnWillSent's copy
	}
	for _, u := range p.User {
		m.User = append(m.User, UserProperty{u.Key, u.Val})
	}
	return m, true
}

// packet returns m as a PUBLISH on internal topic.
func (m *Message) packet(topic string) packets.Packet {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   topic,
		Payload:     m.Payload,
		PacketID:    uint16(m.QoS), // as mochi's Server.Publish: an inline publish needs one
		Properties: packets.Properties{ContentType: m.ContentType, ResponseTopic: m.ResponseTopic,
			CorrelationData: m.CorrelationData, PayloadFormat: m.PayloadFormat, PayloadFormatFlag: m.PayloadFormatOK,
			MessageExpiryInterval: m.MessageExpiry},
	}
	for _, u := range m.User {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: u.Key, Val: u.Value})
	}
	return pk
}

// route hands a message mochi has delivered, or is about to deliver, on
// this node to the fabric; when the fabric cannot take it, this node's
// shared subscriptions get it here.
func (c *cluster) route(pk packets.Packet) {
	m, ok := message(&pk)
	if !ok {
		return
	}
	if m.Retain {
		if err := c.fabric.Retain(m); err != nil {
			c.unsaved.Add(1)
		}
	}
	switch err := c.fabric.Publish(m); {
	case err == nil:
		c.published.Add(1)
	case errors.Is(err, ErrUnconfirmed):
		// Handed over: NATS may deliver it still, to a member of this
		// node's shared subscriptions too. Delivering it here as well
		// would be a second copy.
		c.published.Add(1)
		c.unconfirmed.Add(1)
	default:
		c.unroutable.Add(1)
		c.deliverSharedLocally(pk)
	}
}

// deliverSharedLocally gives pk to one member of each of this node's
// shared subscriptions that match it, as mochi does on one broker.
func (c *cluster) deliverSharedLocally(pk packets.Packet) {
	c.mu.Lock()
	none := len(c.members) == 0
	c.mu.Unlock()
	if none {
		return
	}
	pk.TopicName = sharedSpace(pk.TopicName)
	pk.FixedHeader.Retain = false
	pk.PacketID = uint16(pk.FixedHeader.Qos)
	c.g.server.InjectPacket(c.local, pk)
}

// join and leave count the members of this node's shared subscriptions;
// the node is in a group's queue while it has one.
func (c *cluster) join(clientID, filter string) {
	s, ok := sharedSubscription(filter)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[filter]
	if m == nil {
		m = map[string]struct{}{}
		c.members[filter] = m
		c.clients[filter] = c.g.server.NewClient(nil, "local", routerSharedPrefix+filter, true)
		if err := c.fabric.JoinShared(s); err != nil {
			c.g.Logger.Warn("join shared subscription", "group", s.Group, "filter", s.Filter, "err", err)
		}
	}
	m[clientID] = struct{}{}
}

func (c *cluster) leave(clientID, filter string) {
	s, ok := sharedSubscription(filter)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[filter]
	if m == nil {
		return
	}
	delete(m, clientID)
	if len(m) == 0 {
		delete(c.members, filter)
		delete(c.clients, filter)
		if err := c.fabric.LeaveShared(s); err != nil {
			c.g.Logger.Warn("leave shared subscription", "group", s.Group, "filter", s.Filter, "err", err)
		}
	}
}

func (c *cluster) leaveAll(clientID string) {
	c.mu.Lock()
	var filters []string
	for f, m := range c.members {
		if _, ok := m[clientID]; ok {
			filters = append(filters, f)
		}
	}
	c.mu.Unlock()
	for _, f := range filters {
		c.leave(clientID, f)
	}
}

// sharedSubscription reads a shared subscription held in the shared space.
func sharedSubscription(filter string) (SharedSubscription, bool) {
	share, rest, ok := splitShared(filter)
	if !ok || !strings.HasPrefix(rest, sharedRoot) && !strings.HasPrefix(rest, sharedRootSys) {
		return SharedSubscription{}, false
	}
	scope, f, ok := deviceTopic(rest)
	if !ok {
		return SharedSubscription{}, false
	}
	group := strings.TrimSuffix(strings.TrimPrefix(share, "$share/"), "/")
	return SharedSubscription{Scope: scope, Group: group, Filter: f}, true
}

// sharedFilter returns the filter mochi holds s by.
func sharedFilter(s SharedSubscription) string {
	return "$share/" + s.Group + "/" + sharedSpace(internalTopic(s.Scope, s.Filter))
}

// clusterReceiver is the gateway as the fabric delivers to it.
type clusterReceiver struct{ c *cluster }

func (r clusterReceiver) Deliver(m *Message) {
	r.c.received.Add(1)
	r.c.g.server.InjectPacket(r.c.router, m.packet(internalTopic(m.Scope, m.Topic)))
}

func (r clusterReceiver) DeliverShared(s SharedSubscription, m *Message) {
	r.c.received.Add(1)
	filter := sharedFilter(s)
	r.c.mu.Lock()
	cl := r.c.clients[filter]
	r.c.mu.Unlock()
	if cl == nil {
		// The last member left after NATS chose this node.
		r.c.unroutable.Add(1)
		return
	}
	pk := m.packet(sharedSpace(internalTopic(m.Scope, m.Topic)))
	pk.FixedHeader.Retain = false
	r.c.g.server.InjectPacket(cl, pk)
}

func (r clusterReceiver) MaxMessageExpiry() time.Duration {
	return time.Duration(r.c.g.server.Options.Capabilities.MaximumMessageExpiryInterval) * time.Second
}

func (r clusterReceiver) Retained(m *Message) {
	pk := m.packet(internalTopic(m.Scope, m.Topic))
	pk.FixedHeader.Retain = true
	// Without Created, mochi's expiry sweep would take the message for one
	// published in 1970 and drop it within a second.
	pk.Created = m.Created
	if pk.Created == 0 {
		pk.Created = time.Now().Unix()
	}
	if m.MessageExpiry > 0 {
		pk.ProtocolVersion = 5 // mochi expires only MQTT 5 messages [MQTT-3.3.2-5]
		pk.Expiry = pk.Created + int64(m.MessageExpiry)
	}
	r.c.g.server.Topics.RetainMessage(pk)
	(&authHook{g: r.c.g}).OnRetainMessage(nil, pk, 0) // the retained quotas' count
}

// clusterHook routes messages; it is added after the authHook, so it sees
// internal topics and filters.
type clusterHook struct {
	mochi.HookBase
	c *cluster
}

func (h *clusterHook) ID() string { return "fleetcert-cluster" }

func (h *clusterHook) Provides(b byte) bool {
	switch b {
	case mochi.OnSubscribe, mochi.OnUnsubscribe, mochi.OnSubscribed, mochi.OnUnsubscribed,
		mochi.OnClientExpired, mochi.OnPublish, mochi.OnWillSent, mochi.OnSelectSubscribers:
		return true
	}
	return false
}

// OnSubscribe moves a device's shared subscriptions into the shared
// space.
func (h *clusterHook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	return h.toSharedSpace(cl, pk)
}

func (h *clusterHook) OnUnsubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	return h.toSharedSpace(cl, pk)
}

func (h *clusterHook) toSharedSpace(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	var filters packets.Subscriptions
	for i, sub := range pk.Filters {
		share, rest, ok := splitShared(sub.Filter)
		if !ok || !strings.HasPrefix(rest, internalRoot) && !strings.HasPrefix(rest, internalRootSys) {
			continue
		}
		if filters == nil {
			filters = append(packets.Subscriptions(nil), pk.Filters...)
		}
		filters[i].Filter = share + sharedSpace(rest)
	}
	if filters != nil {
		pk.Filters = filters
	}
	return pk
}

func (h *clusterHook) OnSubscribed(cl *mochi.Client, pk packets.Packet, reasonCodes []byte) {
	for i, sub := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < packets.ErrUnspecifiedError.Code && mochi.IsSharedFilter(sub.Filter) {
			h.c.join(cl.ID, sub.Filter)
		}
	}
}

func (h *clusterHook) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	for _, sub := range pk.Filters {
		if mochi.IsSharedFilter(sub.Filter) {
			h.c.leave(cl.ID, sub.Filter)
		}
	}
}

func (h *clusterHook) OnClientExpired(cl *mochi.Client) { h.c.leaveAll(cl.ID) }

// OnPublish hands a device's publish (and the gateway's events) to the
// fabric before mochi acknowledges and delivers it.
func (h *clusterHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !isRouterClient(cl.ID) {
		h.c.route(pk)
	}
	return pk, nil
}

// OnWillSent hands a will mochi delivered on this node to the fabric.
func (h *clusterHook) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	h.c.route(pk)
}

// OnSelectSubscribers delivers a message the fabric chose this node for,
// for one shared subscription, to one of its members here; mochi calls it
// only when the topic has shared subscribers, which only the shared space
// has.
func (h *clusterHook) OnSelectSubscribers(subs *mochi.Subscribers, pk packets.Packet) *mochi.Subscribers {
	filter, ok := strings.CutPrefix(pk.Origin, routerSharedPrefix)
	if !ok {
		return subs // the local fallback: one member of each group, as mochi chooses
	}
	out := &mochi.Subscribers{
		Shared:              map[string]map[string]packets.Subscription{},
		SharedSelected:      map[string]packets.Subscription{},
		Subscriptions:       map[string]packets.Subscription{},
		InlineSubscriptions: map[int]mochi.InlineSubscription{},
	}
	// A connected member first (map order varies: the load is spread);
	// else one whose session waits offline.
	var offline string
	for id, sub := range subs.Shared[filter] {
		cl, ok := h.c.g.server.Clients.Get(id)
		if !ok {
			continue
		}
		if !cl.Closed() {
			out.SharedSelected[id] = sub
			return out
		}
		offline = id
	}
	if offline != "" {
		out.SharedSelected[offline] = subs.Shared[filter][offline]
	} else {
		h.c.unroutable.Add(1)
	}
	return out
}

// appendClusterMetrics appends the cluster's metrics, when there is a
// fabric.
func (g *Gateway) appendClusterMetrics(b []byte) []byte {
	c := g.cluster
	if c == nil {
		return b
	}
	connected := 0
	if c.fabric.Connected() {
		connected = 1
	}
	b = append(b, "# HELP fleetcert_mqtt_cluster_connected Whether messages are routed to the other nodes (NATS reachable).\n"+
		"# TYPE fleetcert_mqtt_cluster_connected gauge\n"...)
	b = fmt.Appendf(b, "fleetcert_mqtt_cluster_connected %d\n", connected)
	for _, m := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"routed", "Messages published on this node and handed to the other nodes.", &c.published},
		{"received", "Messages received from the other nodes.", &c.received},
		{"unroutable", "Messages that reached this node's subscribers only (NATS unreachable), or none (a shared subscription's node lost its members).", &c.unroutable},
		{"unconfirmed", "QoS 1 and 2 messages handed to NATS and acknowledged to their publisher without NATS's confirmation in time.", &c.unconfirmed},
		{"retained_unsaved", "Retained messages not stored cluster-wide when published (stored once NATS is reached again).", &c.unsaved},
	} {
		b = appendCounter(b, m.name, m.help, m.v.Load())
	}
	if s, ok := c.fabric.(FabricStats); ok {
		b = appendCounter(b, "confirm_round_trips", "Round trips to NATS that confirmed QoS 1 and 2 messages (the publishes waiting at one time share one).", s.ConfirmRoundTrips())
		b = appendCounter(b, "dropped", "Messages from other nodes dropped before this node's gateway took them (NATS slow consumer).", s.Dropped())
	}
	return b
}

func appendCounter(b []byte, name, help string, v uint64) []byte {
	return fmt.Appendf(b, "# HELP fleetcert_mqtt_cluster_%s_total %s\n# TYPE fleetcert_mqtt_cluster_%s_total counter\nfleetcert_mqtt_cluster_%s_total %d\n",
		name, help, name, name, v)
}
