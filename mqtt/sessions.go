package mqtt

import (
	"crypto/x509"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/fleetcert/fleetcert"
)

// session is one device connection the gateway admitted or is admitting.
type session struct {
	cl            *mochi.Client
	clientID      string // as the device sent it (cl.ID is internalClientID's once admitted)
	certificateID string
	sessionID     sessionID
	version       int64 // lifecycle events' versionNumber
	connectedAt   time.Time

	mu          sync.Mutex
	scope       fleetcert.Scope // zero while the admission check runs
	established bool            // CONNACK sent, connected event published

	// dropReason is set when the gateway closes the session itself: the
	// disconnectReason of its lifecycle event.
	dropReason atomic.Pointer[string]

	// claimSeq is the change-feed Seq of this connection's announcement
	// (Gateway.AnnounceSessions), 0 before it, -1 when it failed; claimMu is held
	// while it is being made, so that the watcher weighing another node's
	// announcement against it waits for its Seq.
	claimMu  sync.Mutex
	claimSeq int64

	// leaf is the device's certificate, whose iot:Certificate.* policy
	// variables the policy package reads when a policy uses one; authz its
	// compiled policies (authz.go), replaced under authzMu when the scope's
	// authorization changes.
	leaf *x509.Certificate
	// The other policy variables of the connection: the device's address
	// (aws:SourceIp), the TLS server name it reached (iot:DomainName) and
	// its last will's topic (iot:LastWillTopic). leaf and these are set at
	// CONNECT under authzMu, which compiling the policies holds.
	sourceIP, domain, willTopic string
	authz                       atomic.Pointer[sessionAuthz]
	authzMu                     sync.Mutex

	// The other sessions of the same certificate, in sessions.byCert;
	// guarded by sessions.mu. A device mostly has one, and a list costs
	// nothing per certificate where a map of its sessions would.
	prevOfCert, nextOfCert *session
}

func (s *session) admitted(scope fleetcert.Scope) {
	s.mu.Lock()
	s.scope = scope
	s.mu.Unlock()
}

func (s *session) state() (fleetcert.Scope, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scope, s.established
}

// sessions indexes live sessions by certificate id, since a mochi Client
// has no slot for it. A session is indexed before its certificate's status
// is read (or its handshake's admission checked, see admission), so that a
// change committed after that read always finds it.
type sessions struct {
	mu       sync.Mutex
	byCert   map[string]*session // the first of the certificate's sessions
	byClient map[*mochi.Client]*session
}

func newSessions() *sessions {
	return &sessions{
		byCert:   map[string]*session{},
		byClient: map[*mochi.Client]*session{},
	}
}

func (x *sessions) add(s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byClient[s.cl] == s {
		return
	}
	x.byClient[s.cl] = s
	if first := x.byCert[s.certificateID]; first != nil {
		first.prevOfCert = s
		s.nextOfCert = first
	}
	x.byCert[s.certificateID] = s
}

func (x *sessions) get(cl *mochi.Client) *session {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.byClient[cl]
}

func (x *sessions) remove(cl *mochi.Client) *session {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.byClient[cl]
	if s == nil {
		return nil
	}
	delete(x.byClient, cl)
	switch {
	case s.prevOfCert != nil:
		s.prevOfCert.nextOfCert = s.nextOfCert
	case s.nextOfCert != nil:
		x.byCert[s.certificateID] = s.nextOfCert
	default:
		delete(x.byCert, s.certificateID)
	}
	if s.nextOfCert != nil {
		s.nextOfCert.prevOfCert = s.prevOfCert
	}
	s.prevOfCert, s.nextOfCert = nil, nil
	return s
}

// forCertificate returns the sessions of certificate id in scope, and
// those of id still being admitted (whose account is not known yet).
func (x *sessions) forCertificate(scope fleetcert.Scope, id string) []*session {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*session
	for s := x.byCert[id]; s != nil; s = s.nextOfCert {
		if sc, _ := s.state(); sc == scope || sc == (fleetcert.Scope{}) {
			out = append(out, s)
		}
	}
	return out
}

// sweep forgets sessions closed before cutoff whose OnDisconnect never
// came (mochi calls it only for sessions that got their CONNACK).
func (x *sessions) sweep(cutoff time.Time) {
	x.mu.Lock()
	var stale []*mochi.Client
	for cl := range x.byClient {
		if cl.Closed() && cl.StopTime() > 0 && cl.StopTime() < cutoff.Unix() {
			stale = append(stale, cl)
		}
	}
	x.mu.Unlock()
	for _, cl := range stale {
		x.remove(cl)
	}
}

// all returns every indexed session.
func (x *sessions) all() []*session {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]*session, 0, len(x.byClient))
	for _, s := range x.byClient {
		out = append(out, s)
	}
	return out
}

func (x *sessions) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byClient)
}

// Session describes a live device session, for the console.
type Session struct {
	ClientID      string
	CertificateID string
	RemoteAddr    string
	ConnectedAt   time.Time
}

// list returns the established sessions of scope that keep returns true
// for, oldest first.
func (x *sessions) list(scope fleetcert.Scope, keep func(*session) bool) []Session {
	x.mu.Lock()
	var found []*session
	for _, s := range x.byClient {
		if keep(s) {
			found = append(found, s)
		}
	}
	x.mu.Unlock()
	var out []Session
	for _, s := range found {
		if sc, ok := s.state(); ok && sc == scope && !s.cl.Closed() {
			out = append(out, Session{ClientID: s.clientID, CertificateID: s.certificateID,
				RemoteAddr: s.cl.Net.Remote, ConnectedAt: s.connectedAt})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ConnectedAt.Before(out[j].ConnectedAt) })
	return out
}

// SessionsOf returns the live sessions of certificate certificateID in
// scope.
func (g *Gateway) SessionsOf(scope fleetcert.Scope, certificateID string) []Session {
	return g.sessions.list(scope, func(s *session) bool { return s.certificateID == certificateID })
}

// Sessions returns every live session of scope.
func (g *Gateway) Sessions(scope fleetcert.Scope) []Session {
	return g.sessions.list(scope, func(*session) bool { return true })
}
