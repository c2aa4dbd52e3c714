package mqtt

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/policy"
)

// Device authorization: AWS IoT's policies, checked at the device door as
// AWS IoT Core does. A device connects only when its policies allow
// iot:Connect on its client id, and each PUBLISH, SUBSCRIBE filter and
// delivery needs iot:Publish, iot:Subscribe and iot:Receive
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html).
//
// A session's policies are read from the store once, at CONNECT
// (Registry.ConnectionPolicies), and compiled with the connection's policy
// variables (policy.Compile); packets cost no store read. Any change to
// the authorization model of an account and Region (a policy, a version,
// an attachment, a thing, a group: object.* and link.* changes in the
// feed, from any node) moves that scope's epoch: each session of the
// scope compiles its policies again before its next packet, and the
// watcher re-checks iot:Connect for all of them at once, closing those
// no longer allowed to connect.

// sessionAuthz is a session's compiled policies.
type sessionAuthz struct {
	epoch uint64 // the scope's authorization epoch it was read at
	set   *policy.Set
}

// authzCache remembers what authorizes a (certificate, client id) in a
// scope as of an epoch of that scope, so that a device connecting again
// (or thousands reconnecting after a network cut) costs no store read
// while nothing changed. It holds at most maxAuthzCache entries and
// starts over when full.
type authzCache struct {
	mu sync.Mutex
	m  map[authzKey]authzEntry
}

type authzKey struct {
	scope                   fleetcert.Scope
	certificateID, clientID string
}

type authzEntry struct {
	epoch uint64
	cp    *fleetcert.ConnectionPolicies
}

const maxAuthzCache = 1 << 17

func (c *authzCache) get(k authzKey, epoch uint64) *fleetcert.ConnectionPolicies {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && e.epoch == epoch {
		return e.cp
	}
	return nil
}

func (c *authzCache) put(k authzKey, epoch uint64, cp *fleetcert.ConnectionPolicies) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxAuthzCache {
		c.m = make(map[authzKey]authzEntry)
	}
	c.m[k] = authzEntry{epoch, cp}
}

// authzEpochs counts the authorization changes of each scope.
type authzEpochs struct {
	m sync.Map // fleetcert.Scope → *atomic.Uint64
}

func (e *authzEpochs) counter(scope fleetcert.Scope) *atomic.Uint64 {
	if c, ok := e.m.Load(scope); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := e.m.LoadOrStore(scope, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

func (e *authzEpochs) get(scope fleetcert.Scope) uint64 { return e.counter(scope).Load() }
func (e *authzEpochs) bump(scope fleetcert.Scope)       { e.counter(scope).Add(1) }

// isAuthzChange reports whether c changes the authorization model.
func isAuthzChange(c *fleetcert.Change) bool {
	switch c.Kind {
	case fleetcert.ChangeObjectCreated, fleetcert.ChangeObjectUpdated, fleetcert.ChangeObjectDeleted,
		fleetcert.ChangeLinkCreated, fleetcert.ChangeLinkDeleted:
		return true
	}
	return false
}

// loadAuthz reads and compiles the policies of session s (admitted in
// scope, with its device's certificate), as of the scope's epoch read
// before the store.
func (g *Gateway) loadAuthz(ctx context.Context, s *session, scope fleetcert.Scope) (*sessionAuthz, error) {
	epoch := g.authzEpochs.get(scope)
	key := authzKey{scope, s.certificateID, s.clientID}
	cp := g.authzCache.get(key, epoch)
	if cp == nil {
		var err error
		if cp, err = g.Registry.ConnectionPolicies(ctx, scope, s.certificateID, s.clientID); err != nil {
			return nil, err
		}
		g.authzCache.put(key, epoch, cp)
	}
	pc := policy.Context{
		ClientID:      s.clientID,
		Region:        scope.Region,
		AccountID:     scope.AccountID,
		Leaf:          s.leaf,
		SourceIP:      s.sourceIP,
		DomainName:    s.domain,
		LastWillTopic: s.willTopic,
	}
	if t := cp.Thing; t != nil {
		pc.ThingName, pc.ThingTypeName, pc.ThingAttributes, pc.ThingAttached = t.Name, t.TypeName, t.Attributes, true
	}
	return &sessionAuthz{epoch: epoch, set: policy.Compile(cp.Policies, pc)}, nil
}

// authzOf returns the compiled policies of s, compiling them again when
// the scope's authorization changed since they were read; nil when
// DevicePoliciesOff.
func (g *Gateway) authzOf(s *session, scope fleetcert.Scope) (*sessionAuthz, error) {
	if g.DevicePoliciesOff {
		return nil, nil
	}
	a := s.authz.Load()
	if a != nil && a.epoch == g.authzEpochs.get(scope) {
		return a, nil
	}
	// One reload at a time per session: deliveries from several
	// publishers may find it stale together.
	s.authzMu.Lock()
	defer s.authzMu.Unlock()
	if a = s.authz.Load(); a != nil && a.epoch == g.authzEpochs.get(scope) {
		return a, nil
	}
	var err error
	onShortStack(func() {
		ctx, cancel := context.WithTimeout(g.ctx, g.HandshakeTimeout)
		defer cancel()
		a, err = g.loadAuthz(ctx, s, scope)
	})
	if err != nil {
		g.Logger.Error("read device policies", "certificateId", s.certificateID, "clientId", s.clientID, "err", err)
		return nil, err
	}
	s.authz.Store(a)
	return a, nil
}

// allow reports whether session s may do action on resource (a topic,
// topic filter or client id, per action). With DevicePoliciesOff every
// admitted device may do anything in its scope. A failure to read the
// policies denies.
func (g *Gateway) allow(s *session, scope fleetcert.Scope, action, resource string) bool {
	if g.DevicePoliciesOff {
		return true
	}
	a, err := g.authzOf(s, scope)
	if err != nil {
		g.metrics.policyDenied(action)
		return false
	}
	var arn string
	switch action {
	case policy.ActionConnect:
		arn = policy.ClientARN(scope.Region, scope.AccountID, resource)
	case policy.ActionSubscribe:
		arn = policy.TopicFilterARN(scope.Region, scope.AccountID, resource)
	default:
		arn = policy.TopicARN(scope.Region, scope.AccountID, resource)
	}
	ok := a.set.Allowed(action, arn)
	if !ok {
		g.metrics.policyDenied(action)
	}
	return ok
}

// authzChanged moves scope's epoch for change c and has the sessions of
// the scope checked again, off the watcher's goroutine (the check reads the
// store for each session). Changes that come while a check runs are
// covered by one more pass.
func (g *Gateway) authzChanged(c *fleetcert.Change) {
	g.authzEpochs.bump(c.Scope)
	if g.DevicePoliciesOff {
		return
	}
	if _, running := g.rechecks.LoadOrStore(c.Scope, c.Time); running {
		g.rechecks.Store(c.Scope, c.Time) // the running pass goes round again
		return
	}
	g.watched.Add(1)
	go func() {
		defer g.watched.Done()
		for {
			changed, _ := g.rechecks.Load(c.Scope)
			g.recheckScope(c.Scope, changed.(time.Time))
			if g.rechecks.CompareAndDelete(c.Scope, changed) {
				return
			}
		}
	}()
}

// recheckScope compiles again the policies of every session of scope and
// closes those no longer allowed to connect: a detached policy or a new
// default version applies to live sessions at once (AWS applies policy
// changes to connected devices within minutes).
func (g *Gateway) recheckScope(scope fleetcert.Scope, changed time.Time) {
	for _, s := range g.sessions.all() {
		if sc, _ := s.state(); sc != scope || g.ctx.Err() != nil {
			continue
		}
		if s.cl.Closed() {
			continue
		}
		a, err := g.authzOf(s, scope)
		if err != nil {
			continue // the next packet tries again, and is denied meanwhile
		}
		if !a.set.Allowed(policy.ActionConnect, policy.ClientARN(scope.Region, scope.AccountID, s.clientID)) {
			g.metrics.policyDenied(policy.ActionConnect)
			g.dropUnauthorized(s, scope, changed)
		}
	}
}
