package mqtt

import (
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/fleetcert/fleetcert"
)

// session is one device connection the gateway admitted or is admitting.
type session struct {
	cl            *mochi.Client
	certificateID string
	sessionID     string
	version       int64 // lifecycle events' versionNumber

	mu          sync.Mutex
	scope       fleetcert.Scope // zero while the admission check runs
	established bool            // CONNACK sent, connected event published

	// dropReason is set when the gateway closes the session itself: the
	// disconnectReason of its lifecycle event.
	dropReason atomic.Pointer[string]
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
// is read, so that a change committed after that read always finds it.
type sessions struct {
	mu       sync.Mutex
	byCert   map[string]map[*mochi.Client]*session
	byClient map[*mochi.Client]*session
}

func newSessions() *sessions {
	return &sessions{
		byCert:   map[string]map[*mochi.Client]*session{},
		byClient: map[*mochi.Client]*session{},
	}
}

func (x *sessions) add(s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.byCert[s.certificateID]
	if m == nil {
		m = map[*mochi.Client]*session{}
		x.byCert[s.certificateID] = m
	}
	m[s.cl] = s
	x.byClient[s.cl] = s
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
	if m := x.byCert[s.certificateID]; m != nil {
		delete(m, cl)
		if len(m) == 0 {
			delete(x.byCert, s.certificateID)
		}
	}
	return s
}

// forCertificate returns the sessions of certificate id in scope, and
// those of id still being admitted (whose account is not known yet).
func (x *sessions) forCertificate(scope fleetcert.Scope, id string) []*session {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*session
	for _, s := range x.byCert[id] {
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

func (x *sessions) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byClient)
}
