package mqtt

import (
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/policy"
)

// Each account and region has a topic space of its own, as on AWS. Inside
// the broker a device's topic T (and filter) is the internal topic
// "$fc/{account}/{region}/T" of its session's scope, or
// "$fc$/{account}/{region}/T" when T begins with "$" ($aws/events/…): apart,
// so that a filter whose first level is a wildcard still matches no $
// topic [MQTT-4.7.1-1], as mochi would check on the device's own names.
// Devices may use no $ topic but $aws/events/… (see OnACLCheck), so they
// cannot name an internal topic themselves. The authHook rewrites topics
// on the way in (OnSubscribe, OnUnsubscribe, OnPublish, OnWill) and back
// on the way out (OnPacketEncode); the gateway publishes its events to
// the internal topic of the scope they are about. Live messages, retained
// messages, wills and shared subscriptions ("$share/{group}/" stays in
// front) thus never cross scopes.
const (
	internalRoot    = "$fc/"
	internalRootSys = "$fc$/"
	// droppedTopic is where a will goes whose session has no scope: a
	// topic no device filter can match (they all begin with an internal
	// root or $share/).
	droppedTopic = "$fc-dropped"
)

// Client ids are per scope too: on AWS the same client id in two accounts
// names two sessions. Once a device is admitted, the id mochi keys its
// session by (Client.ID) is internalClientID of the device's; a session
// of one scope never takes over, nor resumes, a session of another. The
// id the device sent stays in session.clientID (logs, lifecycle events,
// listings); mochi answers an id it assigned from its own copy
// (Properties.Props.AssignedClientID).

// internalClientID returns the id mochi keys the session of a device of
// scope that connected with clientID by.
func internalClientID(scope fleetcert.Scope, clientID string) string {
	return scope.AccountID + "/" + scope.Region + "/" + clientID
}

// internalTopic returns the internal topic (or filter) of scope for a
// device's topic.
func internalTopic(scope fleetcert.Scope, topic string) string {
	root := internalRoot
	if strings.HasPrefix(topic, "$") {
		root = internalRootSys
	}
	return root + scope.AccountID + "/" + scope.Region + "/" + topic
}

// deviceTopic returns the scope and device topic of an internal topic (or
// filter), ok false when topic is not one.
func deviceTopic(topic string) (scope fleetcert.Scope, t string, ok bool) {
	topic = unsharedSpace(topic) // cluster.go: shared subscriptions' space
	rest, ok := strings.CutPrefix(topic, internalRoot)
	if !ok {
		if rest, ok = strings.CutPrefix(topic, internalRootSys); !ok {
			return scope, "", false
		}
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return scope, "", false
	}
	// The root tells whether the device topic begins with $.
	if strings.HasPrefix(parts[2], "$") != strings.HasPrefix(topic, internalRootSys) {
		return scope, "", false
	}
	return fleetcert.Scope{AccountID: parts[0], Region: parts[1]}, parts[2], true
}

// splitShared splits "$share/{group}/{filter}" into "$share/{group}/" and
// filter; ok false for a filter that is not shared.
func splitShared(filter string) (share, rest string, ok bool) {
	if !mochi.IsSharedFilter(filter) {
		return "", filter, false
	}
	i := strings.IndexByte(filter, '/')
	j := strings.IndexByte(filter[i+1:], '/')
	if j < 0 {
		return "", filter, false
	}
	n := i + 1 + j + 1
	return filter[:n], filter[n:], true
}

// internalFilter rewrites a device's subscription filter into scope. An
// empty filter stays empty, so that mochi still refuses it.
func internalFilter(scope fleetcert.Scope, filter string) string {
	share, rest, _ := splitShared(filter)
	if rest == "" {
		return filter
	}
	return share + internalTopic(scope, rest)
}

// scopeOf returns the scope of cl's admitted session.
func (g *Gateway) scopeOf(cl *mochi.Client) (fleetcert.Scope, bool) {
	s := g.sessions.get(cl)
	if s == nil {
		return fleetcert.Scope{}, false
	}
	scope, _ := s.state()
	return scope, scope != (fleetcert.Scope{})
}

// rewriteFilters returns pk with its filters in cl's topic space. A device
// whose scope is unknown keeps its filters, which OnACLCheck then refuses.
func (h *authHook) rewriteFilters(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	scope, ok := h.g.scopeOf(cl)
	if !ok {
		return pk
	}
	s := h.g.sessions.get(cl)
	filters := make(packets.Subscriptions, len(pk.Filters))
	for i, sub := range pk.Filters {
		// A filter the device's policies do not allow to subscribe to
		// stays outside the scope's topic space, so that OnACLCheck
		// refuses it and the SUBACK says so for that filter alone.
		if !h.subscribeAllowed(s, scope, sub.Filter) {
			filters[i] = sub
			continue
		}
		sub.Filter = internalFilter(scope, sub.Filter)
		filters[i] = sub
	}
	pk.Filters = filters
	return pk
}

// subscribeAllowed reports whether the policies of session s allow
// iot:Subscribe to filter (a shared subscription's resource keeps its
// "$share/{group}/", as AWS IoT names it).
func (h *authHook) subscribeAllowed(s *session, scope fleetcert.Scope, filter string) bool {
	if h.g.DevicePoliciesOff || filter == "" {
		return true
	}
	return s != nil && h.g.allow(s, scope, policy.ActionSubscribe, filter)
}

// OnSubscribe puts a device's filters in its scope's topic space (before
// mochi checks them with OnACLCheck and sends retained messages).
func (h *authHook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	return h.rewriteFilters(cl, h.g.limitSubscribe(cl, pk))
}

// OnUnsubscribe puts a device's filters in its scope's topic space.
func (h *authHook) OnUnsubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	return h.rewriteFilters(cl, pk)
}

// OnPublish puts a device's publish in its scope's topic space. mochi
// calls it after OnACLCheck (which sees the device's own topic) and after
// resolving an inbound topic alias, before it retains or delivers the
// message. The gateway's own publications (the inline client) are already
// internal.
func (h *authHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if h.g.refusePublish(cl, pk) { // quota.go
		return pk, packets.ErrRejectPacket
	}
	scope, ok := h.g.scopeOf(cl)
	if !ok || pk.TopicName == "" {
		return pk, packets.ErrRejectPacket
	}
	// A retained message also needs iot:RetainPublish
	// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html).
	if pk.FixedHeader.Retain && !h.g.DevicePoliciesOff {
		if s := h.g.sessions.get(cl); s == nil || !h.g.allow(s, scope, policy.ActionRetainPublish, pk.TopicName) {
			return pk, packets.ErrRejectPacket
		}
	}
	pk.TopicName = internalTopic(scope, pk.TopicName)
	return pk, nil
}

// OnWill puts a device's last will in its scope's topic space (mochi calls
// it before the session's OnDisconnect, while it is indexed). A will whose
// session has no scope goes nowhere: an error would make mochi send the
// unmodified will.
func (h *authHook) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	scope, ok := h.g.scopeOf(cl)
	if !ok || will.TopicName == "" || !h.willAllowed(cl, scope, will) {
		will.TopicName, will.Retain = droppedTopic, false
		return will, nil
	}
	will.TopicName = internalTopic(scope, will.TopicName)
	if will.Retain && !h.g.retainWill(cl, scope, will) { // quota.go
		will.Retain = false
	}
	return will, nil
}

// willAllowed reports whether the device's policies allow it to publish
// its last will: iot:Publish on its topic, and iot:RetainPublish for a
// retained one.
func (h *authHook) willAllowed(cl *mochi.Client, scope fleetcert.Scope, will mochi.Will) bool {
	if h.g.DevicePoliciesOff {
		return true
	}
	s := h.g.sessions.get(cl)
	if s == nil || !h.g.allow(s, scope, policy.ActionPublish, will.TopicName) {
		return false
	}
	return !will.Retain || h.g.allow(s, scope, policy.ActionRetainPublish, will.TopicName)
}

// OnPacketEncode gives the device back its own topic names in the
// PUBLISH packets sent to it (live, retained, resent in flight). An
// outbound topic alias maps to the internal name, which is the same
// device name for every message a device receives (they are all of its
// scope).
func (h *authHook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if t := pk.FixedHeader.Type; t == packets.Suback || t == packets.Connack {
		pk = h.g.encodeQuotas(cl, pk) // quota.go
	}
	if pk.FixedHeader.Type == packets.Publish && pk.TopicName != "" {
		if _, t, ok := deviceTopic(pk.TopicName); ok {
			pk.TopicName = t
		}
	}
	return pk
}
