package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/policy"
)

// authHook is the gateway's one mochi hook: admission on CONNECT, topic
// authorization, each scope's topic space (see topics.go), and the session
// index and presence events. Authorization by IoT policies will plug into
// OnACLCheck (and OnConnectAuthenticate for iot:Connect) once certificates
// have attached policies.
type authHook struct {
	mochi.HookBase
	g *Gateway
}

func (h *authHook) ID() string { return "fleetcert-auth" }

func (h *authHook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnSessionEstablished, mochi.OnDisconnect,
		mochi.OnSubscribe, mochi.OnUnsubscribe, mochi.OnPublish, mochi.OnWill, mochi.OnPacketEncode:
		return true
	case mochi.OnConnect, mochi.OnRetainMessage, mochi.OnRetainedExpired: // quotas (quota.go)
		return true
	}
	return false
}

// OnConnectAuthenticate admits a device by the certificate it presented in
// the TLS handshake, or registers it just in time and refuses it.
func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) (ok bool) {
	g := h.g
	tc, isTLS := cl.Net.Conn.(*tls.Conn)
	if !isTLS {
		return false
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		onShortStack(func() {
			g.refused("connect", &fleetcert.DeviceRefusal{Reason: fleetcert.ReasonNoCertificate}, cl.ID, cl.Net.Remote)
			g.refuseConnect(cl)
		})
		return false
	}
	s := &session{
		cl:          cl,
		clientID:    cl.ID,
		sessionID:   newSessionID(),
		version:     g.version.Add(1),
		connectedAt: time.Now(),
	}
	if adm := g.handshakes.take(cs); adm != nil {
		// Admitted in the handshake: indexed with its scope, then the
		// admission is checked against the changes read since (see
		// admission). The store is read again only when one of them may
		// concern this certificate.
		s.certificateID, s.scope = adm.certificateID, adm.scope
		g.sessions.add(s)
		if g.stillAdmitted(adm, s.certificateID) {
			g.admit(s, adm.scope)
			return h.authorizeConnect(cl, cs, s, adm.scope)
		}
		// Read again, the session staying indexed; until then it
		// matches changes in any scope, as one being admitted does.
		s.admitted(fleetcert.Scope{})
	} else {
		s.certificateID = fleetcert.CertificateID(cs.PeerCertificates[0].Raw)
	}
	onShortStack(func() { ok = h.authenticate(cl, cs, s) })
	return ok
}

// authenticate reads the device's status from the store on CONNECT: for a
// device that may be registered just in time, or whose handshake admission
// a change may have overtaken.
func (h *authHook) authenticate(cl *mochi.Client, cs tls.ConnectionState, s *session) bool {
	g := h.g
	q := g.query(cs.PeerCertificates, cs.ServerName)
	// Indexed before the status is read: a change committed after the
	// read finds the session and closes it. (Already indexed when the
	// handshake admitted the device.)
	g.sessions.add(s)
	ctx, cancel := context.WithTimeout(g.ctx, g.HandshakeTimeout)
	defer cancel()
	cert, err := g.Registry.AdmitDevice(ctx, q)
	if err == nil {
		s.admitted(cert.Scope)
		g.admit(s, cert.Scope)
		return h.authorizeConnect(cl, cs, s, cert.Scope)
	}
	g.sessions.remove(cl)
	var refusal *fleetcert.DeviceRefusal
	if !errors.As(err, &refusal) {
		g.Logger.Error("device admission failed", "stage", "connect", "certificateId", s.certificateID, "clientId", cl.ID, "err", err)
		g.metrics.refuse("internal_error")
		g.refuseConnect(cl)
		return false
	}
	if refusal.Reason == fleetcert.ReasonUnregistered || refusal.Reason == fleetcert.ReasonPendingActivation {
		// Paced per CA and per account (jit.go): over the pace, refused as
		// not yet registered, without asking the store.
		if g.throttleAutoRegistration(q, s.certificateID, cl.ID, cl.Net.Remote) {
			g.refuseConnect(cl)
			return false
		}
		// AWS IoT (just-in-time registration): registration happens on the
		// MQTT CONNECT; the event is published and the connection closed.
		// The device is who asks, from its address (the audit log).
		device := fleetcert.Actor{ID: fleetcert.ActorDevice}
		if host, _, err := net.SplitHostPort(cl.Net.Remote); err == nil {
			device.SourceIP = host
		}
		reg, err := g.Registry.AutoRegisterDevice(fleetcert.WithActor(ctx, device), q)
		var failure *fleetcert.ProvisioningFailure
		switch {
		case errors.As(err, &failure):
			// AWS IoT logs a provisioning error and counts it as
			// ProvisionThing.ClientErrors; it publishes nothing to the
			// device (jit-provisioning.html: "Provisioning successes and
			// errors are logged as Device provisioning metrics in Amazon
			// CloudWatch"). Nothing was registered: the device is refused
			// as unregistered, and provisioned again on its next attempt.
			g.metrics.provisioned[provisionClientError].Add(1)
			g.Logger.Warn("just-in-time provisioning failed", "certificateId", failure.CertificateID,
				"caCertificateId", failure.CA.ID, "account", failure.CA.AccountID, "region", failure.CA.Region,
				"errorCode", fleetcert.ErrorCode(err), "errorMessage", fleetcert.ErrorMessage(err))
		case err != nil:
			g.Logger.Error("just-in-time registration failed", "certificateId", s.certificateID, "err", err)
		case reg != nil && reg.Provisioned:
			g.autoReg.learn(q, reg)
			g.metrics.autoRegistered.Add(1)
			g.metrics.provisioned[provisionSuccess].Add(1)
			g.Logger.Info("device provisioned just in time", "certificateId", reg.Certificate.ID,
				"caCertificateId", reg.CA.ID, "account", reg.Certificate.AccountID, "region", reg.Certificate.Region,
				"status", reg.Status)
			// The certificate was registered under the CA first, so its
			// registration is announced as just-in-time registration's
			// (auto-register-device-cert.html), with the status it was
			// registered in. AWS IoT provisions on the first connection
			// and the device connects on a later one: this one is refused.
			now := time.Now()
			g.publish(reg.Certificate.Scope, TopicRegisteredPrefix+reg.CA.ID, func() []byte { return registeredPayload(reg, now) })
			refusal = &fleetcert.DeviceRefusal{Reason: reasonProvisioned, CertificateID: reg.Certificate.ID, Scope: reg.Certificate.Scope}
		case reg != nil:
			g.autoReg.learn(q, reg)
			g.metrics.autoRegistered.Add(1)
			g.Logger.Info("device registered just in time", "certificateId", reg.Certificate.ID,
				"caCertificateId", reg.CA.ID, "account", reg.Certificate.AccountID, "region", reg.Certificate.Region)
			now := time.Now()
			g.publish(reg.Certificate.Scope, TopicRegisteredPrefix+reg.CA.ID, func() []byte { return registeredPayload(reg, now) })
			refusal = &fleetcert.DeviceRefusal{Reason: fleetcert.ReasonPendingActivation,
				CertificateID: reg.Certificate.ID, Scope: reg.Certificate.Scope}
		}
	}
	g.refused("connect", refusal, cl.ID, cl.Net.Remote)
	g.refuseConnect(cl)
	return false
}

// authorizeConnect checks that the policies of a device just admitted in
// scope allow iot:Connect with its client id (authz.go); if not, it
// answers CONNACK "not authorized", as AWS IoT does.
func (h *authHook) authorizeConnect(cl *mochi.Client, cs tls.ConnectionState, s *session, scope fleetcert.Scope) bool {
	g := h.g
	if g.DevicePoliciesOff {
		return true
	}
	// The session is listed already: a recheck of its scope's sessions
	// (authz.go) may be compiling its policies now. Its variables are set
	// under the lock that compilation holds, and what it compiled without
	// them is dropped.
	s.authzMu.Lock()
	if len(cs.PeerCertificates) > 0 {
		s.leaf = cs.PeerCertificates[0]
	}
	s.domain = cs.ServerName
	if host, _, err := net.SplitHostPort(cl.Net.Remote); err == nil {
		s.sourceIP = host
	}
	if cl.Properties.Will.Flag > 0 {
		s.willTopic = cl.Properties.Will.TopicName
	}
	s.authz.Store(nil)
	s.authzMu.Unlock()
	if g.allow(s, scope, policy.ActionConnect, s.clientID) {
		return true
	}
	g.sessions.remove(cl)
	g.refused("connect", &fleetcert.DeviceRefusal{Reason: reasonPolicy, CertificateID: s.certificateID, Scope: scope}, s.clientID, cl.Net.Remote)
	g.refuseConnect(cl)
	return false
}

// reasonProvisioned is the refusal reason of a device provisioned just in
// time by its connection: it connects on its next attempt.
const reasonProvisioned = "provisioned"

// reasonPolicy is the refusal reason of a device whose policies do not
// allow it to connect with its client id.
const reasonPolicy = "NOT_AUTHORIZED_BY_POLICY"

// admit counts an admitted session and moves it into its scope's client
// ids (see internalClientID) before mochi looks for a session to take over.
func (g *Gateway) admit(s *session, scope fleetcert.Scope) {
	g.metrics.admitted.Add(1)
	s.cl.ID = internalClientID(scope, s.clientID)
}

// refuseConnect answers CONNACK "not authorized" and closes the
// connection, so that mochi's own CONNACK (bad user name or password)
// is not sent after it.
func (g *Gateway) refuseConnect(cl *mochi.Client) {
	code := packets.ErrNotAuthorized // MQTT 5: 0x87
	if cl.Properties.ProtocolVersion < 5 {
		// mochi maps this one to MQTT 3.1.1's return code 5,
		// "Connection Refused, not authorized".
		code = packets.ErrBadUsernameOrPassword
	}
	g.server.SendConnack(cl, code, false, nil)
	cl.Stop(packets.ErrNotAuthorized)
}

// OnACLCheck authorizes a publish (write) to a topic, or a subscription to
// a filter and each delivery to the subscriber (read). mochi checks a
// publish on the device's own topic, before OnPublish, but a subscription
// and a delivery on the internal filter or topic (after OnSubscribe): it
// must be of the device's scope.
//
// Then the device's policies (authz.go): a publish needs iot:Publish on
// the topic, a delivery iot:Receive. A subscription's filter was checked
// for iot:Subscribe in OnSubscribe; mochi checks it here again as a read,
// and a filter without wildcards cannot be told from a delivery's topic,
// so such a subscription also needs iot:Receive on that topic (AWS would
// accept it and deliver nothing).
func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if _, filter, ok := splitShared(topic); ok {
		topic = filter
	}
	var scope fleetcert.Scope
	if !write {
		var ok bool
		var t string
		scope, t, ok = deviceTopic(topic)
		if !ok {
			return false
		}
		// A session no longer indexed (a persistent one, offline) keeps
		// the subscriptions it made in its scope.
		if own, known := h.g.scopeOf(cl); known && own != scope {
			return false
		}
		topic = t
	}
	// AWS IoT reserves $aws/ topics: devices read the events there and
	// publish nothing; the same for fleetcert's own events. Other $ topics
	// (mochi's $SYS) are not for devices.
	if strings.HasPrefix(topic, "$") && (write || !isEventTopic(topic)) {
		return false
	}
	if h.g.DevicePoliciesOff || cl.Net.Inline {
		return true
	}
	s := h.g.sessions.get(cl)
	if s == nil {
		// An offline persistent session: it queues what its subscriptions,
		// authorized when made, match; iot:Receive is checked while its
		// device is connected (its policies are compiled per connection).
		return !write
	}
	own, _ := s.state()
	if write {
		return h.g.allow(s, own, policy.ActionPublish, topic)
	}
	if strings.ContainsAny(topic, "+#") {
		return true // a subscription's filter, checked in OnSubscribe
	}
	return h.g.allow(s, scope, policy.ActionReceive, topic)
}

// OnSessionEstablished publishes the connected event once the CONNACK is
// sent.
func (h *authHook) OnSessionEstablished(cl *mochi.Client, pk packets.Packet) {
	g := h.g
	s := g.sessions.get(cl)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.established = true
	scope := s.scope
	s.mu.Unlock()
	if g.AnnounceSessions {
		// Before the line and the event: they then mean that every node
		// of the cluster will hold the client id as this connection's.
		g.announce(s, scope)
	}
	// Typed attributes: this line and the disconnected one are written for
	// every connection.
	g.Logger.LogAttrs(context.Background(), slog.LevelInfo, "device connected",
		slog.String("certificateId", s.certificateID), slog.String("clientId", s.clientID),
		slog.String("account", scope.AccountID), slog.String("region", scope.Region),
		slog.String("remote", cl.Net.Remote), slog.Int("protocolVersion", int(cl.Properties.ProtocolVersion)))
	if presenceTopicOK(s.clientID) {
		now := time.Now()
		g.publish(scope, TopicConnectedPrefix+s.clientID, func() []byte { return connectedPayload(s, now) })
	}
}

// announce records the session in the change feed, so that a connection
// with its client id on another node of the cluster ends (see takeOver).
// It runs once mochi holds the session under its client id, so that an
// announcement from another node read from now on finds it.
func (g *Gateway) announce(s *session, scope fleetcert.Scope) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	seq, err := g.Registry.AnnounceSession(ctx, scope, s.certificateID, s.clientID, s.sessionID.String())
	if err != nil {
		// The session stays: it ends if another node announces its client
		// id later, and the device is not punished for the database.
		g.Logger.Warn("announce session to the cluster", "clientId", s.clientID, "certificateId", s.certificateID, "err", err)
		s.claimSeq = -1 // older than any announcement
		return
	}
	s.claimSeq = seq
}

// OnDisconnect forgets the session and publishes the disconnected event.
func (h *authHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	g := h.g
	g.noteDisconnect(cl, err) // before the session leaves the index: its log line names the device
	s := g.sessions.remove(cl)
	if s == nil {
		return
	}
	scope, established := s.state()
	if !established {
		return
	}
	reason := disconnectReason(s, cl, err)
	g.Logger.LogAttrs(context.Background(), slog.LevelInfo, "device disconnected",
		slog.String("certificateId", s.certificateID), slog.String("clientId", s.clientID), slog.String("reason", reason))
	if presenceTopicOK(s.clientID) {
		now := time.Now()
		g.publish(scope, TopicDisconnectedPrefix+s.clientID, func() []byte { return disconnectedPayload(s, reason, now) })
	}
}

func disconnectReason(s *session, cl *mochi.Client, err error) string {
	if r := s.dropReason.Load(); r != nil {
		return *r
	}
	cause := cl.StopCause()
	switch {
	case cause == packets.CodeDisconnect, cause == packets.CodeDisconnectWillMessage,
		err == packets.CodeDisconnectWillMessage:
		return DisconnectClientInitiated
	case cause == packets.ErrSessionTakenOver:
		return DisconnectDuplicateID
	case cause == packets.ErrServerShuttingDown:
		return DisconnectServerInitiated
	case cause == packets.ErrNotAuthorized:
		return DisconnectAuthError
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return DisconnectKeepAliveTimeout
	}
	var code packets.Code
	if errors.As(err, &code) {
		return DisconnectClientError
	}
	return DisconnectConnectionLost
}

// publish sends an event about scope as the broker, to the devices of
// scope (on its internal topic), at QoS 1 for subscribers that ask for it.
// Events are not retained: one that no session subscribes to is neither
// built nor published (most connections have no one watching their
// lifecycle events). The publish runs on a short stack (mochi's publish
// path is deep).
func (g *Gateway) publish(scope fleetcert.Scope, topic string, payload func() []byte) {
	if scope == (fleetcert.Scope{}) {
		return // not admitted: no topic space
	}
	internal := internalTopic(scope, topic)
	if !g.subscribed(internal) && !g.routed() { // cluster.go: subscribers may be on other nodes
		return
	}
	onShortStack(func() {
		if err := g.server.Publish(internal, payload(), false, 1); err != nil {
			g.Logger.Warn("publish event failed", "topic", topic, "err", err)
		}
	})
}

// subscribed reports whether a session or the broker itself subscribes to
// a filter matching topic.
func (g *Gateway) subscribed(topic string) bool {
	s := g.server.Topics.Subscribers(topic)
	return len(s.Subscriptions) > 0 || len(s.Shared) > 0 || len(s.InlineSubscriptions) > 0
}

// onShortStack runs fn on a goroutine of its own and waits for it. The
// store's queries (the SQLite driver is C translated to Go), logging and
// event encoding need a deep stack; run on a device's session goroutine,
// that stack would stay grown for as long as the device stays connected,
// idle: a quarter of the memory of an idle connection.
func onShortStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}
