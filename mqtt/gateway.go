// Package mqtt is fleetcert's device gateway: an MQTT 3.1.1 and 5 broker
// (mochi-mqtt) behind a TLS 1.2/1.3 listener that requires a client
// certificate and asks the registry, not a trust store, whether to let the
// device in.
//
// # Admission
//
// A device is admitted while its leaf certificate (by SHA-256 fingerprint)
// is registered and ACTIVE, and within its validity period
// (fleetcert.Registry.AdmitDevice). The registry is asked in the TLS
// handshake (tls.Config.VerifyConnection, so a refused device gets a TLS
// alert, as on AWS): for the common case, a registered ACTIVE certificate,
// through the gateway's fleetcert.AdmissionView (loaded at start, kept
// current by the change feed, trusted only once it has read the feed up to
// a head read after the handshake began), otherwise by reading the store.
// The answer is carried to the MQTT CONNECT with the
// sequence number of the change feed it reflects. On CONNECT the session
// is entered in the gateway's index first, so that the change watcher
// finds it from then on; the store is read again only if the watcher has
// read, since that sequence number, a change that may have taken the
// certificate out of ACTIVE (or the certificate expired in between): no
// change is missed in between, and the common connection reads the store
// once (see admission). A refusal at CONNECT is a CONNACK
// "not authorized" (MQTT 5 reason 0x87, MQTT 3.1.1 return code 5), then
// the connection is closed. Every refusal is logged with the certificate id
// and the reason, and counted by reason.
//
// # Accounts and regions by TLS server name
//
// DescribeEndpoint answers {accountId}-ats.iot.{region}.{hostname} for
// iot:Data-ATS (and {accountId}.iot.{region}.{hostname} for iot:Data), where
// hostname is the first of Gateway.Hostnames. A device that sends such a
// name as its TLS server name (SNI) is looked up in that account and that
// region only; this is how a certificate registered in several accounts (no
// CA, or an SNI_ONLY CA) says which registration it uses. A device that
// sends no server name, or another one (an IP address, "localhost"), is
// looked up in Gateway.Region in every account, and refused as
// ambiguous_account when the certificate is registered in more than one.
// The generated server certificate covers these names with one wildcard
// name *.iot.{region}.{hostname} per region and host name.
//
// # Live revocation
//
// The gateway keeps an index certificate id → live sessions and consumes
// the registry's change feed: woken at once by Registry.ChangeSignal for
// changes made in this process, by the store's notifications when it has
// them (fleetcert.ChangeNotifier), by a handshake that found its view
// behind, and polling the store every PollInterval. A watcher that fell
// behind the feed's pruned horizon reloads its view and checks every
// session against it. When a certificate leaves ACTIVE
// (updated, transferred or deleted), every session of it in that account
// and region is disconnected (MQTT 5: DISCONNECT 0x87 not authorized; MQTT
// 3.1.1: the connection is closed), its last will is sent, and a
// disconnected event with disconnectReason AUTH_ERROR is published. CA
// changes never disconnect anyone: certificates a deactivated CA issued
// keep working.
//
// # Just-in-time registration
//
// A device whose certificate is not registered (or still
// PENDING_ACTIVATION) and that presents its issuer's certificate second in
// its chain passes the handshake when that issuer is a registered CA. On
// its CONNECT, Registry.AutoRegisterDevice registers it PENDING_ACTIVATION
// if the CA is ACTIVE with auto-registration enabled; the gateway publishes
// AWS's event on $aws/events/certificates/registered/{caCertificateId} and
// refuses the connection (CONNACK not authorized), as AWS does.
//
// # Messaging
//
// mochi-mqtt provides QoS 0, 1 and 2, retained messages, clean and
// persistent sessions (expiring after SessionExpiry) and last wills. All
// of it is kept in memory: a restart loses retained messages and offline
// sessions. Devices may not publish to topics beginning with "$" ($aws/…
// is the service's), and may subscribe to $aws/events/… (the lifecycle and
// registration events) but to no other $ topic. As on AWS, each account
// and region has a topic space of its own: messages, retained messages,
// last wills, shared subscriptions and the $aws/events/… events (those of
// the account and region of the certificate or session they are about)
// stay in it; inside the broker a topic is prefixed with its scope, which
// devices never see (see topics.go). Client ids are per scope as well: the
// same id in two accounts names two sessions, neither taking over nor
// resuming the other.
//
// # Quotas and connection limits
//
// AWS IoT Core's message broker quotas are enforced per connection, each
// a Gateway field defaulting to AWS's value (see quota.go): packet size
// (on the fixed header, before the body is read), client id length,
// subscriptions per connection and filters per SUBSCRIBE, topic length and
// depth, publishes and inbound bytes per second, messages in flight; and,
// bounded for one process's memory, retained messages per account and
// region and a session's queued messages. A refusal answers in MQTT's
// terms where mochi lets a hook (SUBACK 0x97, PUBACK 0x96 or 0x97,
// CONNACK 0x85), else closes the connection; each is counted by quota
// and logged once per connection. Just-in-time registration is paced per
// CA and per account (jit.go). The listener caps connections in total and
// per address and reads trusted proxies' PROXY v2 headers
// (internal/connlimit).
package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/connlimit"
)

// Defaults of the Gateway's optional fields.
const (
	DefaultRegion           = "us-east-1"
	DefaultPollInterval     = time.Second
	DefaultExpiryInterval   = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultSessionExpiry is how long a persistent session outlives its
	// connection (AWS IoT: "persistent session expiry period", 1 hour by
	// default).
	DefaultSessionExpiry = time.Hour
	// DefaultMaxPendingWrites is above what AWS IoT lets wait for one
	// connection: 100 unacknowledged outbound QoS 1 messages and 100
	// outbound publishes per second (AWS IoT Core quotas, "Message broker
	// limits": https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits).
	DefaultMaxPendingWrites = 128
)

// clientReadBufferSize is the size of the buffer mochi reads each
// connection's packets through.
const clientReadBufferSize = 256

// Gateway is the MQTT device gateway. Create it with NewGateway, set its
// fields, then Start it; Close stops it.
type Gateway struct {
	// Addr is the TCP address to listen on, e.g. ":8883" or "127.0.0.1:0".
	Addr string

	// AnnounceSessions records each connection in the change feed and
	// ends a connection whose client id another gateway on the store
	// announced later: one session per client id across a cluster. Off for
	// a single node, where mochi's own takeover suffices and a connection
	// costs no store write.
	AnnounceSessions bool

	// CertFile and KeyFile are the PEM server certificate (with its chain)
	// and key; see LoadOrCreateServerFiles.
	CertFile string
	KeyFile  string

	// Region is where devices that name no region in their TLS server name
	// are looked up; DefaultRegion when empty.
	Region string

	// DefaultAccountID is the account whose SNI_ONLY registrations (and
	// CAs, for just-in-time registration) serve devices that name no
	// account in their TLS server name; empty, such devices are matched by
	// DEFAULT-mode registrations only, as on AWS (see
	// fleetcert.SelectRegistration).
	DefaultAccountID string

	// Hostnames are the names the gateway is reached by; the first names
	// the endpoints DescribeEndpoint returns (DefaultHostname when empty).
	Hostnames []string

	// PollInterval is how often the change feed is read for changes made
	// by other processes; DefaultPollInterval when zero.
	PollInterval time.Duration

	// HandshakeTimeout bounds the TLS handshake and the wait for CONNECT;
	// DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration

	// ExpiryInterval is how often the registrations are scanned for
	// certificates whose validity ended (the expired event) and counted by
	// time to expiry (metrics); DefaultExpiryInterval when zero.
	ExpiryInterval time.Duration

	// SessionExpiry bounds how long a persistent session is kept after its
	// connection ends; DefaultSessionExpiry when zero.
	SessionExpiry time.Duration

	// MaxPendingWrites is how many outbound packets may wait for one
	// client before new ones are dropped; DefaultMaxPendingWrites when
	// zero. Each connection allocates a queue of this many pointers.
	MaxPendingWrites int

	// Quotas of the message broker, per connection unless said otherwise
	// (see the Default… constants for AWS's values and the page they
	// come from). Each is its default when zero and off when negative.

	// MaxPacketSize bounds an MQTT packet, in bytes (a PUBLISH's payload
	// and a few bytes more); checked on the fixed header, before the body
	// is read. DefaultMaxPacketSize.
	MaxPacketSize int
	// MaxClientIDLength bounds the client id, in bytes; a longer one is
	// refused with CONNACK "identifier rejected". DefaultMaxClientIDLength.
	MaxClientIDLength int
	// MaxSubscriptionsPerConnection bounds a session's subscriptions.
	// DefaultMaxSubscriptionsPerConnection.
	MaxSubscriptionsPerConnection int
	// MaxFiltersPerSubscribe bounds the filters of one SUBSCRIBE: all of
	// a larger one's are refused. DefaultMaxFiltersPerSubscribe.
	MaxFiltersPerSubscribe int
	// MaxTopicLength bounds a topic or filter, in bytes (not counting a
	// shared subscription's "$share/{group}/"). DefaultMaxTopicLength.
	MaxTopicLength int
	// MaxTopicSlashes bounds the "/" in a topic or filter.
	// DefaultMaxTopicSlashes.
	MaxTopicSlashes int
	// MaxPublishesPerSecond bounds a device's publishes; those over it
	// are discarded. DefaultMaxPublishesPerSecond.
	MaxPublishesPerSecond int
	// MaxInboundBytesPerSecond bounds what a device sends, in bytes a
	// second (TLS records included); a faster device is read more slowly.
	// DefaultMaxInboundBytesPerSecond.
	MaxInboundBytesPerSecond int
	// MaxInflightMessages bounds the QoS 1 and 2 messages in flight
	// unacknowledged, each way (at most 65535).
	// DefaultMaxInflightMessages.
	MaxInflightMessages int
	// MaxQueuedMessages bounds the QoS 1 and 2 messages a session holds
	// for its device, in flight or waiting, online or offline (at most
	// 65535; off is 65535). DefaultMaxQueuedMessages.
	MaxQueuedMessages int
	// MaxRetainedMessages and MaxRetainedBytes bound the retained
	// messages of each account and region, and their payload bytes.
	// DefaultMaxRetainedMessages, DefaultMaxRetainedBytes.
	MaxRetainedMessages int
	MaxRetainedBytes    int64

	// Just-in-time registrations per second, and their burst, per CA and
	// per account (see DefaultAutoRegistrationsPerSecondPerCA); a device
	// over them is refused as not yet registered.
	AutoRegistrationsPerSecondPerCA      float64
	AutoRegistrationBurstPerCA           int
	AutoRegistrationsPerSecondPerAccount float64
	AutoRegistrationBurstPerAccount      int

	// MaxConnections caps the gateway's open connections; a connection
	// over it is closed at once. Zero is connlimit.DefaultMaxConnections
	// (below the process's open-file limit), negative is no cap.
	MaxConnections int
	// MaxConnectionsPerAddress caps the open connections from one client
	// address; 0 (the default) or less is no cap, since devices behind a
	// carrier-grade NAT share one address.
	MaxConnectionsPerAddress int
	// TrustedProxies are the load balancers whose PROXY protocol v2
	// header gives the device's address (for the caps, logs and
	// Sessions); a PROXY header from any other peer is refused.
	TrustedProxies []netip.Prefix
	// ConnectTimeout bounds the wait for CONNECT after the TLS
	// handshake; DefaultConnectTimeout when zero.
	ConnectTimeout time.Duration

	// DevicePoliciesOff admits every device with an ACTIVE certificate and
	// lets it publish, subscribe and receive anything in its account and
	// Region, without AWS IoT policies (for labs: `--device-policies
	// off`). By default a device needs policies allowing each of these, as
	// on AWS IoT (authz.go).
	DevicePoliciesOff bool

	// Registry decides admission and serves the change feed (a
	// *fleetcert.Registry); Logger gets the gateway's log lines.
	Registry Registry
	Logger   *slog.Logger

	// Cluster, when set, routes messages between the gateways of a
	// cluster (see cluster.go); nil, the gateway is a broker of its own.
	Cluster Fabric
	cluster *cluster

	limits   limits
	retained retainedUsage
	autoReg  autoRegistrationLimits

	server   *mochi.Server
	listener *tlsListener
	sessions *sessions
	metrics  metrics
	version  atomic.Int64 // lifecycle events' versionNumber

	ctx     context.Context
	cancel  context.CancelFunc
	watched sync.WaitGroup
	lastSeq int64 // owned by the change watcher

	closeOnce sync.Once
	closeErr  error

	// seen is the sequence number of the latest change the watcher has
	// read (and started to apply); dropSeq holds, per bucket of certificate
	// ids, that of the latest change it read that took such a certificate
	// out of ACTIVE. See admission.
	seen    atomic.Int64
	dropSeq [changeBuckets]atomic.Int64

	handshakes handshakeAdmissions

	// authzEpochs counts each scope's authorization changes; rechecks
	// holds the scopes whose sessions are being checked again (authz.go).
	authzEpochs authzEpochs
	authzCache  authzCache
	rechecks    sync.Map // fleetcert.Scope → time.Time of the latest change

	// view answers the common handshake without reading the store; it
	// reflects every change up to seen (see verifyConnection). It is
	// replaced when the watcher reloads it. heads coalesces the
	// handshakes' reads of the feed's head; wake asks the watcher to read
	// the feed now (a handshake found the view behind).
	view  atomic.Pointer[fleetcert.AdmissionView]
	heads headReads
	wake  chan struct{}

	// expiry is the last expiry scan's counts (expiry.go).
	expiry atomic.Pointer[fleetcert.ExpiryScan]
}

// NewGateway returns a Gateway admitting devices by reg (a
// *fleetcert.Registry), logging to logger (slog.Default() when nil).
func NewGateway(reg Registry, logger *slog.Logger) *Gateway {
	if logger == nil {
		logger = slog.Default()
	}
	return &Gateway{Registry: reg, Logger: logger, sessions: newSessions(), wake: make(chan struct{}, 1)}
}

// Start listens on Addr and serves devices until Close (or until ctx ends,
// for the change feed). It returns once the listener is open.
func (g *Gateway) Start(ctx context.Context) error {
	if g.Region == "" {
		g.Region = DefaultRegion
	}
	if g.PollInterval <= 0 {
		g.PollInterval = DefaultPollInterval
	}
	if g.HandshakeTimeout <= 0 {
		g.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if g.ExpiryInterval <= 0 {
		g.ExpiryInterval = DefaultExpiryInterval
	}
	if g.SessionExpiry <= 0 {
		g.SessionExpiry = DefaultSessionExpiry
	}
	if g.MaxPendingWrites <= 0 {
		g.MaxPendingWrites = DefaultMaxPendingWrites
	}
	g.resolveLimits()
	g.autoReg.init(&g.limits)
	cert, err := tls.LoadX509KeyPair(g.CertFile, g.KeyFile)
	if err != nil {
		return fmt.Errorf("mqtt server certificate: %w", err)
	}
	g.ctx, g.cancel = context.WithCancel(ctx)

	// The view, and the feed's position it reflects: the watcher reads
	// the changes after it (not the feed from its start).
	if err := g.loadView(g.ctx); err != nil {
		g.cancel()
		return err
	}

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumSessionExpiryInterval = uint32(g.SessionExpiry / time.Second)
	caps.MaximumClientWritesPending = int32(g.MaxPendingWrites)
	g.limits.applyCapabilities(caps)
	g.server = mochi.New(&mochi.Options{
		Capabilities: caps,
		InlineClient: true, // the gateway publishes events as the broker
		// Each connection keeps a read buffer of this size for as long as
		// it lives (mochi's default is 2 KiB): devices mostly send small
		// packets, and a read of a larger one goes past the buffer.
		ClientNetReadBufferSize: clientReadBufferSize,
		// mochi logs at Info for each listener and hook; the gateway logs
		// connection events itself.
		Logger: slog.New(mochiLog{minLevel{g.Logger.Handler(), slog.LevelWarn}, g}).With("component", "mochi"),
	})
	if err := g.server.AddHook(&authHook{g: g}, nil); err != nil {
		g.cancel()
		return err
	}
	if g.Cluster != nil { // cluster.go: after the authHook, before devices
		if err := g.startCluster(); err != nil {
			g.cancel()
			return fmt.Errorf("mqtt cluster: %w", err)
		}
	}
	// Any certificate is requested and none is checked against a trust
	// store: VerifyConnection asks the registry.
	g.listener = &tlsListener{
		id: "mtls", address: g.Addr, timeout: g.HandshakeTimeout, logger: g.Logger,
		handshakes:     &g.handshakes,
		connectTimeout: g.limits.connectTimeout,
		configure: func(ln *connlimit.Listener) {
			ln.MaxConnections, ln.MaxConnectionsPerAddress = g.limits.maxConnections, g.limits.maxConnsPerAddr
			ln.TrustedProxies, ln.ProxyHeaderTimeout, ln.Logger = g.TrustedProxies, g.HandshakeTimeout, g.Logger
		},
		wrap:    func(c net.Conn) net.Conn { return &deviceConn{Conn: c, g: g} },
		ended:   g.connectionEnded,
		confirm: g.confirmAdmission,
		config: &tls.Config{
			MinVersion:       tls.VersionTLS12,
			Certificates:     []tls.Certificate{cert},
			ClientAuth:       tls.RequireAnyClientCert,
			VerifyConnection: g.verifyConnection,
		},
	}
	if err := g.server.AddListener(g.listener); err != nil {
		g.cancel()
		return fmt.Errorf("mqtt listener: %w", err)
	}
	if err := g.server.Serve(); err != nil {
		g.cancel()
		g.server.Close()
		return err
	}
	g.watched.Add(1)
	go g.watchChanges(g.ctx)
	g.watched.Add(1)
	go g.watchExpiry(g.ctx) // expiry.go
	return nil
}

// ListenAddr returns the address the gateway listens on, once started.
func (g *Gateway) ListenAddr() string {
	if g.listener == nil || g.listener.ln == nil {
		return g.Addr
	}
	return g.listener.ln.Addr().String()
}

// Endpoint returns scope's endpoint of endpointType (see EndpointAddress),
// named under the first of Hostnames. It has the signature of
// awsapi.Handler.Endpoint.
func (g *Gateway) Endpoint(scope fleetcert.Scope, endpointType string) (string, error) {
	host := DefaultHostname
	if len(g.Hostnames) > 0 && g.Hostnames[0] != "" {
		host = g.Hostnames[0]
	}
	return EndpointAddress(host, scope, endpointType)
}

// Close disconnects every device and stops the gateway. Calls after the
// first return its result.
func (g *Gateway) Close() error {
	if g.cancel == nil {
		return nil // not started
	}
	g.closeOnce.Do(func() {
		g.cancel()
		g.watched.Wait()
		if g.server != nil {
			g.closeErr = g.server.Close()
		}
		if g.cluster != nil { // after the server: its wills are routed
			g.closeErr = errors.Join(g.closeErr, g.Cluster.Close())
		}
	})
	return g.closeErr
}

// query is what the registry is asked about a device that presented chain
// and sent server name serverName.
func (g *Gateway) query(chain []*x509.Certificate, serverName string) fleetcert.DeviceQuery {
	q := fleetcert.DeviceQuery{Chain: chain, Region: g.Region, DefaultAccountID: g.DefaultAccountID}
	if account, region, ok := ParseServerName(serverName); ok {
		q.AccountID, q.Region = account, region
	}
	return q
}

// refused logs and counts a refusal.
func (g *Gateway) refused(stage string, r *fleetcert.DeviceRefusal, clientID, remote string) {
	g.metrics.refuse(r.Reason)
	attrs := []any{"stage", stage, "certificateId", r.CertificateID, "reason", r.Reason}
	if r.Scope.AccountID != "" {
		attrs = append(attrs, "account", r.Scope.AccountID, "region", r.Scope.Region)
	}
	if clientID != "" {
		attrs = append(attrs, "clientId", clientID)
	}
	if remote != "" {
		attrs = append(attrs, "remote", remote)
	}
	g.Logger.Info("device refused", attrs...)
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

// Handle drops mochi's warning about a keepalive under 5 s: a device may
// disable keepalive (0), and the warning would be written for every such
// connection.
func (h minLevel) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == mochi.ErrMinimumKeepalive.Error() {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
