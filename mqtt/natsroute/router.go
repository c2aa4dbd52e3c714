// Package natsroute carries the MQTT gateway's messages between the nodes
// of a fleetcert cluster over NATS (github.com/nats-io/nats.go): it is the
// gateway's mqtt.Fabric.
//
// Each node opens two connections to NATS. The first publishes, with echo
// off (nats.NoEcho), every message a device of the node publishes, on the
// message's subject (see TopicSubject), and subscribes to every subject of
// the cluster ({prefix}.>): a node receives what the other nodes publish,
// once, in the order each published it, and never its own messages. The
// second holds the node's queue subscriptions for the shared
// subscriptions it has members of (one per group and filter, on the
// filter's subjects; see QueueName), with echo on, so that NATS chooses one
// member node per message among all of them, this one included.
//
// A QoS 1 or 2 message is confirmed by a NATS round trip (a PING after
// it) before Publish returns, and so before the publisher's PUBACK; the
// publishes waiting at one time share one round trip, and the wait is
// bounded (see confirmer; ErrUnconfirmed).
//
// Retained messages are kept in a JetStream key-value bucket (file
// storage, one revision per key), written before the publisher's PUBACK;
// each node watches the bucket and feeds mochi's retained store from it.
// They expire there as mochi expires them (the bucket's TTL and a TTL per
// value; see store).
//
// While NATS is unreachable nothing is queued: Publish fails at once (the
// gateway then delivers on its own node only and counts the message as
// unroutable), retained messages are kept to be stored when NATS is back,
// and nats.go reconnects by itself, re-subscribing; the bucket is watched
// again from its start.
package natsroute

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/mqtt"
)

// Defaults of the Router's optional fields.
const (
	DefaultPrefix         = "fleetcert"
	DefaultBucket         = "fleetcert_retained"
	DefaultConfirmTimeout = time.Second
	DefaultStartTimeout   = 10 * time.Second
	// DefaultRetainedMaxAge is how long a retained message is kept when
	// the receiver sets no maximum (mqtt.FabricReceiver.MaxMessageExpiry
	// zero): mochi's default MaximumMessageExpiryInterval.
	DefaultRetainedMaxAge = 24 * time.Hour
	// markerTTL is how long the bucket keeps the marker of a key that
	// expired: the watchers' notice that it is gone.
	markerTTL = time.Minute
)

// ErrNotConnected is Publish's error while NATS is unreachable.
var ErrNotConnected = errors.New("not connected to NATS")

// ErrUnconfirmed is Publish's error when NATS did not confirm a message in
// time: it may still reach the other nodes (mqtt.ErrUnconfirmed).
var ErrUnconfirmed = mqtt.ErrUnconfirmed

// Router is an mqtt.Fabric on NATS. Create it with New, set its fields,
// then hand it to the gateway (mqtt.Gateway.Cluster), which starts and
// closes it.
type Router struct {
	// URLs are the NATS servers, comma-separated (nats.Connect's form).
	URLs string
	// Options are nats.go's: TLS (nats.RootCAs, nats.ClientCert),
	// credentials (nats.UserCredentials), etc.
	Options []nats.Option
	// Name names the node's connections in NATS's monitoring.
	Name string
	// Prefix is the first token of every subject; DefaultPrefix when empty.
	// Clusters sharing one NATS account need one each.
	Prefix string
	// Bucket is the JetStream key-value bucket of the retained messages;
	// DefaultBucket when empty. Replicas is its replica count (1 when zero;
	// 3 on a NATS cluster of three or more servers).
	Bucket   string
	Replicas int
	// ConfirmTimeout bounds the wait for NATS to confirm QoS 1 messages
	// (DefaultConfirmTimeout when zero), and to store a retained one. Once
	// a confirmation has timed out, QoS 1 messages are not waited for
	// until NATS answers a round trip again (see confirmer).
	ConfirmTimeout time.Duration
	// RetainedMaxAge is how long a retained message is kept at most; zero:
	// the receiver's MaxMessageExpiry, else DefaultRetainedMaxAge.
	RetainedMaxAge time.Duration
	// StartTimeout bounds Start's wait for the retained messages, when
	// NATS is reachable.
	StartTimeout time.Duration
	Logger       *slog.Logger

	recv      mqtt.FabricReceiver
	pub, qc   *nats.Conn
	confirmer *confirmer
	msgTTL    bool // the bucket takes a TTL per message (nats-server 2.11 and later)
	ctx       context.Context
	cancel    context.CancelFunc
	kick      chan struct{}
	loaded    chan struct{}
	loadOnce  sync.Once
	done      sync.WaitGroup
	sub       *nats.Subscription // every node's messages
	subsMu    sync.Mutex
	dropped   uint64 // by shared subscriptions since ended; subsMu
	shared    map[mqtt.SharedSubscription][]*nats.Subscription
	retainMu  sync.Mutex
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	pending   map[string]*mqtt.Message // retained messages to store once NATS is back
	revisions map[string]uint64        // latest revision this node wrote, per key
}

// New returns a Router on the NATS servers urls (comma-separated).
func New(urls string, opts ...nats.Option) *Router {
	return &Router{URLs: urls, Options: opts}
}

// Start connects to NATS (keeping on trying in the background when it
// cannot) and starts delivering to r.
func (rt *Router) Start(ctx context.Context, r mqtt.FabricReceiver) error {
	if rt.Prefix == "" {
		rt.Prefix = DefaultPrefix
	}
	if rt.Bucket == "" {
		rt.Bucket = DefaultBucket
	}
	if rt.Replicas <= 0 {
		rt.Replicas = 1
	}
	if rt.ConfirmTimeout <= 0 {
		rt.ConfirmTimeout = DefaultConfirmTimeout
	}
	if rt.StartTimeout <= 0 {
		rt.StartTimeout = DefaultStartTimeout
	}
	if rt.Logger == nil {
		rt.Logger = slog.Default()
	}
	if rt.RetainedMaxAge <= 0 {
		rt.RetainedMaxAge = DefaultRetainedMaxAge
		if e := r.MaxMessageExpiry(); e > 0 {
			rt.RetainedMaxAge = e
		}
	}
	rt.recv = r
	rt.ctx, rt.cancel = context.WithCancel(ctx)
	rt.kick = make(chan struct{}, 1)
	rt.loaded = make(chan struct{})
	rt.shared = map[mqtt.SharedSubscription][]*nats.Subscription{}
	rt.pending = map[string]*mqtt.Message{}
	rt.revisions = map[string]uint64{}

	kick := func(*nats.Conn) {
		select {
		case rt.kick <- struct{}{}:
		default:
		}
	}
	common := []nats.Option{
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// Nothing is queued while NATS is unreachable: a message is routed
		// now or counted as unroutable (see the package doc).
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			rt.Logger.Warn("nats disconnected: messages reach this node's devices only", "conn", nc.Opts.Name, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			rt.Logger.Info("nats reconnected", "conn", nc.Opts.Name, "server", nc.ConnectedUrlRedacted())
			kick(nc)
		}),
		nats.ConnectHandler(kick),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			rt.Logger.Warn("nats", "conn", nc.Opts.Name, "err", err)
		}),
	}
	name := rt.Name
	if name == "" {
		name = "fleetcert"
	}
	var err error
	pubOpts := append(append([]nats.Option{nats.Name(name + " messages"), nats.NoEcho()}, common...), rt.Options...)
	if rt.pub, err = nats.Connect(rt.URLs, pubOpts...); err != nil {
		rt.cancel()
		return fmt.Errorf("nats %s: %w", rt.URLs, err)
	}
	qOpts := append(append([]nats.Option{nats.Name(name + " shared subscriptions")}, common...), rt.Options...)
	if rt.qc, err = nats.Connect(rt.URLs, qOpts...); err != nil {
		rt.pub.Close()
		rt.cancel()
		return fmt.Errorf("nats %s: %w", rt.URLs, err)
	}
	rt.confirmer = newConfirmer(rt.pub, rt.ConfirmTimeout, rt.Logger)
	// Once NATS answers again, store what was retained meanwhile.
	rt.confirmer.recovered = func() { kick(rt.pub) }
	if rt.sub, err = rt.pub.Subscribe(rt.Prefix+".>", rt.onMessage); err != nil {
		rt.Close()
		return fmt.Errorf("nats subscribe: %w", err)
	}
	rt.done.Add(2)
	go func() {
		defer rt.done.Done()
		rt.confirmer.run(rt.ctx.Done())
	}()
	go rt.watchRetained()
	if rt.pub.IsConnected() {
		kick(rt.pub)
		select {
		case <-rt.loaded:
		case <-time.After(rt.StartTimeout):
			rt.Logger.Warn("nats: retained messages not loaded yet; they follow", "after", rt.StartTimeout)
		}
	} else {
		rt.Logger.Warn("nats unreachable: messages reach this node's devices only until it is reached", "urls", rt.URLs)
	}
	return nil
}

// Connected reports whether both connections are up.
func (rt *Router) Connected() bool {
	return rt.pub != nil && rt.pub.IsConnected() && rt.qc.IsConnected()
}

// Close ends the connections.
func (rt *Router) Close() error {
	if rt.cancel == nil {
		return nil
	}
	rt.cancel()
	rt.done.Wait()
	if rt.pub != nil {
		rt.pub.Close()
	}
	if rt.qc != nil {
		rt.qc.Close()
	}
	return nil
}

// Publish sends m on its subject; for QoS 1 and 2 it returns once NATS has
// answered a PING sent after it, which it answers after handing the
// message to every matching subscription's connection. The publishes
// waiting at one time share a PING (see confirmer); ErrUnconfirmed when
// none was answered within ConfirmTimeout.
func (rt *Router) Publish(m *mqtt.Message) error {
	if !rt.Connected() {
		return ErrNotConnected
	}
	msg := &nats.Msg{Subject: TopicSubject(rt.Prefix, m.Scope, m.Topic), Data: m.Payload, Header: encodeHeader(m)}
	if err := rt.pub.PublishMsg(msg); err != nil {
		return err
	}
	if m.QoS > 0 {
		return rt.confirmer.confirm()
	}
	return nil
}

// JoinShared subscribes to the filter's subjects in the group's queue.
func (rt *Router) JoinShared(s mqtt.SharedSubscription) error {
	rt.subsMu.Lock()
	defer rt.subsMu.Unlock()
	if _, ok := rt.shared[s]; ok {
		return nil
	}
	q := QueueName(rt.Prefix, s.Scope, s.Group, s.Filter)
	var subs []*nats.Subscription
	for _, subject := range FilterSubjects(rt.Prefix, s.Scope, s.Filter) {
		sub, err := rt.qc.QueueSubscribe(subject, q, func(msg *nats.Msg) {
			if m, ok := rt.decode(msg); ok {
				rt.recv.DeliverShared(s, m)
			}
		})
		if err != nil {
			for _, sub := range subs {
				sub.Unsubscribe()
			}
			return err
		}
		subs = append(subs, sub)
	}
	rt.shared[s] = subs
	return nil
}

// LeaveShared ends the queue subscriptions of s.
func (rt *Router) LeaveShared(s mqtt.SharedSubscription) error {
	rt.subsMu.Lock()
	subs := rt.shared[s]
	delete(rt.shared, s)
	var errs []error
	for _, sub := range subs {
		if n, err := sub.Dropped(); err == nil {
			rt.dropped += uint64(n)
		}
		errs = append(errs, sub.Unsubscribe())
	}
	rt.subsMu.Unlock()
	return errors.Join(errs...)
}

// ConfirmRoundTrips is how many round trips to NATS have confirmed QoS 1
// and 2 messages (mqtt.FabricStats): fewer than the messages when
// publishes wait at the same time.
func (rt *Router) ConfirmRoundTrips() uint64 {
	if rt.confirmer == nil {
		return 0
	}
	return rt.confirmer.roundTrips.Load()
}

// Dropped is how many messages from the other nodes nats.go dropped
// because the node did not take them fast enough (a slow consumer: more
// than its pending limits waiting; mqtt.FabricStats).
func (rt *Router) Dropped() uint64 {
	rt.subsMu.Lock()
	defer rt.subsMu.Unlock()
	n := rt.dropped
	for _, subs := range rt.shared {
		for _, sub := range subs {
			if d, err := sub.Dropped(); err == nil {
				n += uint64(d)
			}
		}
	}
	if rt.sub != nil {
		if d, err := rt.sub.Dropped(); err == nil {
			n += uint64(d)
		}
	}
	return n
}

func (rt *Router) onMessage(msg *nats.Msg) {
	if m, ok := rt.decode(msg); ok {
		rt.recv.Deliver(m)
	}
}

func (rt *Router) decode(msg *nats.Msg) (*mqtt.Message, bool) {
	scope, topic, ok := ParseSubject(rt.Prefix, msg.Subject)
	if !ok {
		return nil, false
	}
	m := &mqtt.Message{Scope: scope, Topic: topic, Payload: msg.Data}
	decodeHeader(msg.Header, m)
	return m, true
}

// Headers of a message's MQTT attributes.
const (
	hQoS           = "Fc-Qos"
	hRetain        = "Fc-Retain"
	hContentType   = "Fc-Content-Type"
	hResponseTopic = "Fc-Response-Topic"
	hCorrelation   = "Fc-Correlation-Data" // base64
	hPayloadFormat = "Fc-Payload-Format"
	hExpiry        = "Fc-Message-Expiry"
	hUser          = "Fc-User" // one per property, "key=value" query-escaped
)

func encodeHeader(m *mqtt.Message) nats.Header {
	h := nats.Header{hQoS: {strconv.Itoa(int(m.QoS))}}
	if m.Retain {
		h[hRetain] = []string{"1"}
	}
	if m.ContentType != "" {
		h[hContentType] = []string{m.ContentType}
	}
	if m.ResponseTopic != "" {
		h[hResponseTopic] = []string{m.ResponseTopic}
	}
	if len(m.CorrelationData) > 0 {
		h[hCorrelation] = []string{base64.StdEncoding.EncodeToString(m.CorrelationData)}
	}
	if m.PayloadFormatOK {
		h[hPayloadFormat] = []string{strconv.Itoa(int(m.PayloadFormat))}
	}
	if m.MessageExpiry > 0 {
		h[hExpiry] = []string{strconv.FormatUint(uint64(m.MessageExpiry), 10)}
	}
	for _, u := range m.User {
		h[hUser] = append(h[hUser], url.QueryEscape(u.Key)+"="+url.QueryEscape(u.Value))
	}
	return h
}

func decodeHeader(h nats.Header, m *mqtt.Message) {
	if q, err := strconv.Atoi(h.Get(hQoS)); err == nil && q >= 0 && q <= 2 {
		m.QoS = byte(q)
	}
	m.Retain = h.Get(hRetain) == "1"
	m.ContentType = h.Get(hContentType)
	m.ResponseTopic = h.Get(hResponseTopic)
	if c := h.Get(hCorrelation); c != "" {
		m.CorrelationData, _ = base64.StdEncoding.DecodeString(c)
	}
	if f, err := strconv.Atoi(h.Get(hPayloadFormat)); err == nil {
		m.PayloadFormat, m.PayloadFormatOK = byte(f), true
	}
	if e, err := strconv.ParseUint(h.Get(hExpiry), 10, 32); err == nil {
		m.MessageExpiry = uint32(e)
	}
	for _, kv := range h.Values(hUser) {
		k, v, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		m.User = append(m.User, mqtt.UserProperty{Key: k, Value: v})
	}
}

// retainedKey is the bucket's key of a topic: scope and topic, the topic
// base64url-encoded (keys allow few characters).
func retainedKey(scope fleetcert.Scope, topic string) string {
	return scope.AccountID + "." + scope.Region + "." + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

func parseRetainedKey(key string) (fleetcert.Scope, string, bool) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 || !fleetcert.ValidAccountID(parts[0]) || !fleetcert.ValidRegion(parts[1]) {
		return fleetcert.Scope{}, "", false
	}
	topic, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(topic) == 0 {
		return fleetcert.Scope{}, "", false
	}
	return fleetcert.Scope{AccountID: parts[0], Region: parts[1]}, string(topic), true
}

// retainedValue is a retained message in the bucket.
type retainedValue struct {
	QoS             byte        `json:"q"`
	Payload         []byte      `json:"p"`
	ContentType     string      `json:"ct,omitempty"`
	ResponseTopic   string      `json:"rt,omitempty"`
	CorrelationData []byte      `json:"cd,omitempty"`
	PayloadFormat   *byte       `json:"pf,omitempty"`
	MessageExpiry   uint32      `json:"e,omitempty"`
	User            [][2]string `json:"u,omitempty"`
	Created         int64       `json:"c,omitempty"` // Unix seconds
}

func encodeRetained(m *mqtt.Message) []byte {
	v := retainedValue{QoS: m.QoS, Payload: m.Payload, ContentType: m.ContentType, ResponseTopic: m.ResponseTopic,
		CorrelationData: m.CorrelationData, MessageExpiry: m.MessageExpiry, Created: m.Created}
	if m.PayloadFormatOK {
		f := m.PayloadFormat
		v.PayloadFormat = &f
	}
	for _, u := range m.User {
		v.User = append(v.User, [2]string{u.Key, u.Value})
	}
	b, _ := json.Marshal(v)
	return b
}

func decodeRetained(b []byte, m *mqtt.Message) bool {
	var v retainedValue
	if err := json.Unmarshal(b, &v); err != nil {
		return false
	}
	m.QoS, m.Payload, m.ContentType, m.ResponseTopic, m.CorrelationData, m.MessageExpiry, m.Created =
		v.QoS, v.Payload, v.ContentType, v.ResponseTopic, v.CorrelationData, v.MessageExpiry, v.Created
	if v.PayloadFormat != nil {
		m.PayloadFormat, m.PayloadFormatOK = *v.PayloadFormat, true
	}
	for _, u := range v.User {
		m.User = append(m.User, mqtt.UserProperty{Key: u[0], Value: u[1]})
	}
	m.Retain = true
	return true
}

// Retain stores m in the bucket, or keeps it to store once NATS is back.
func (rt *Router) Retain(m *mqtt.Message) error {
	key := retainedKey(m.Scope, m.Topic)
	rt.retainMu.Lock()
	defer rt.retainMu.Unlock()
	if rt.kv == nil || !rt.pub.IsConnected() {
		rt.pending[key] = m
		return ErrNotConnected
	}
	if rt.confirmer.stalled.Load() {
		// NATS does not answer: not a timeout per retained publish; it
		// is stored once NATS answers again (confirmer.recovered).
		rt.pending[key] = m
		return ErrUnconfirmed
	}
	if err := rt.store(key, m); err != nil {
		rt.pending[key] = m
		select { // store it again soon (watchRetained), not only after a reconnect
		case rt.kick <- struct{}{}:
		default:
		}
		return err
	}
	// An older message of the topic kept during an outage must not
	// replace this one when NATS is back.
	delete(rt.pending, key)
	return nil
}

// retainedLife returns how long m is kept after it was published, as
// mochi keeps a retained message: its MQTT 5 message expiry interval,
// bounded by RetainedMaxAge (MaximumMessageExpiryInterval).
func (rt *Router) retainedLife(m *mqtt.Message) time.Duration {
	life := rt.RetainedMaxAge
	if e := time.Duration(m.MessageExpiry) * time.Second; e > 0 && e < life {
		life = e
	}
	return life
}

// retainedTTL returns how long m, published at m.Created, is still to be
// kept at now; zero or less: it has expired.
func (rt *Router) retainedTTL(m *mqtt.Message, now time.Time) time.Duration {
	created := now
	if m.Created > 0 {
		created = time.Unix(m.Created, 0)
	}
	return created.Add(rt.retainedLife(m)).Sub(now)
}

// store writes or deletes key; rt.retainMu is held.
func (rt *Router) store(key string, m *mqtt.Message) error {
	// Not rt.ctx: the wills of a gateway that is closing are retained
	// after it ends.
	ctx, cancel := context.WithTimeout(context.Background(), rt.ConfirmTimeout)
	defer cancel()
	var rev uint64
	var err error
	ttl := rt.retainedTTL(m, time.Now())
	switch {
	case len(m.Payload) == 0 || ttl <= 0:
		// A delete is a revision too: a node that watches gets it. (An
		// expired message, kept during an outage: nothing to keep.)
		err = rt.kv.Delete(ctx, key)
	case rt.msgTTL:
		// A put with the message's TTL (whole seconds, NATS's least is
		// one), as kv.Put publishes; the server removes it then and leaves
		// a marker that every watcher reads as a delete.
		var ack *jetstream.PubAck
		ack, err = rt.js.PublishMsg(ctx, &nats.Msg{Subject: "$KV." + rt.Bucket + "." + key, Data: encodeRetained(m)},
			jetstream.WithMsgTTL(ttl.Truncate(time.Second)+time.Second))
		if err == nil {
			rev = ack.Sequence
		}
	default:
		// The bucket's TTL (RetainedMaxAge) bounds it; a shorter MQTT 5
		// expiry is applied by the nodes (apply).
		rev, err = rt.kv.Put(ctx, key, encodeRetained(m))
	}
	if err != nil {
		return err
	}
	if rev > 0 {
		rt.revisions[key] = rev
	}
	return nil
}

// watchRetained (re)opens the bucket whenever a connection to NATS is
// made, stores what was retained while NATS was unreachable, and feeds
// the receiver from a watch of every key, from its start.
func (rt *Router) watchRetained() {
	defer rt.done.Done()
	backoff := 100 * time.Millisecond
	for rt.ctx.Err() == nil {
		if !rt.pub.IsConnected() {
			select {
			case <-rt.ctx.Done():
				return
			case <-rt.kick: // (re)connected
			}
			continue
		}
		// nil: kicked by a reconnect, watch again from the start.
		if err := rt.watchOnce(); err != nil && rt.ctx.Err() == nil {
			rt.Logger.Warn("nats retained messages", "err", err)
			select {
			case <-rt.ctx.Done():
				return
			case <-rt.kick:
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// watchOnce opens the bucket and applies its entries until the context
// ends or a reconnect kicks (nil), or something fails.
func (rt *Router) watchOnce() error {
	js, err := jetstream.New(rt.pub)
	if err != nil {
		return err
	}
	// The bucket keeps a value RetainedMaxAge at most, and each value
	// its own MQTT 5 expiry where the servers take a TTL per message
	// (LimitMarkerTTL; nats-server 2.11 and later).
	cfg := jetstream.KeyValueConfig{
		Bucket: rt.Bucket, Description: "fleetcert: MQTT retained messages", History: 1,
		Storage: jetstream.FileStorage, Replicas: rt.Replicas, TTL: rt.RetainedMaxAge, LimitMarkerTTL: markerTTL,
	}
	ctx, cancel := context.WithTimeout(rt.ctx, 2*rt.ConfirmTimeout)
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	msgTTL := err == nil
	if err != nil && rt.ctx.Err() == nil {
		cfg.LimitMarkerTTL = 0
		var err2 error
		if kv, err2 = js.CreateOrUpdateKeyValue(ctx, cfg); err2 == nil {
			rt.Logger.Warn("nats: the retained messages' bucket takes no TTL per message (nats-server before 2.11?): "+
				"MQTT 5 expiry is applied by the nodes, the bucket keeps them up to its TTL", "bucket", rt.Bucket, "err", err)
		}
		err = err2
	}
	cancel()
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", rt.Bucket, err)
	}
	rt.retainMu.Lock()
	rt.js, rt.kv, rt.msgTTL = js, kv, msgTTL
	stored := 0
	for key, m := range rt.pending {
		if err := rt.store(key, m); err != nil {
			rt.retainMu.Unlock()
			return fmt.Errorf("store retained messages: %w", err)
		}
		delete(rt.pending, key)
		stored++
	}
	rt.retainMu.Unlock()
	if stored > 0 {
		rt.Logger.Info("nats: retained messages published while NATS was unreachable stored", "count", stored)
	}

	w, err := kv.WatchAll(rt.ctx)
	if err != nil {
		return fmt.Errorf("watch bucket %s: %w", rt.Bucket, err)
	}
	defer w.Stop()
	n := 0
	for {
		select {
		case <-rt.ctx.Done():
			return nil
		case <-rt.kick:
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil { // every current value has been read
				rt.loadOnce.Do(func() { close(rt.loaded) })
				rt.Logger.Info("nats: retained messages read", "bucket", rt.Bucket, "entries", n)
				continue
			}
			n++
			rt.apply(e)
		}
	}
}

// apply hands one entry of the bucket to the receiver, unless this node
// has written a later revision of its key since (a watch lags behind).
func (rt *Router) apply(e jetstream.KeyValueEntry) {
	scope, topic, ok := parseRetainedKey(e.Key())
	if !ok {
		return
	}
	rt.retainMu.Lock()
	stale := e.Revision() < rt.revisions[e.Key()]
	rt.retainMu.Unlock()
	if stale {
		return
	}
	m := &mqtt.Message{Scope: scope, Topic: topic, Retain: true}
	if e.Operation() == jetstream.KeyValuePut {
		if !decodeRetained(e.Value(), m) {
			return
		}
		if rt.retainedTTL(m, time.Now()) <= 0 {
			// Expired, not yet removed by the server (a bucket without TTL
			// per message, or one written during an outage): gone for the
			// devices as on one broker.
			m = &mqtt.Message{Scope: scope, Topic: topic, Retain: true}
		}
	}
	rt.recv.Retained(m)
}
