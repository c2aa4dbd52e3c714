package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// admission is the registry's answer in a device's TLS handshake, handed on
// to its MQTT CONNECT so that the CONNECT need not read the store again.
//
// Why that is safe: seq is Gateway.seen taken before the handshake's read
// of the store, or, for an admission from the view, the position the view
// reflects. Every change up to seq was read from the store by the watcher
// before that, so it was committed before the handshake's read and is
// reflected in it (in the view: applied to it). A change taking the certificate out of ACTIVE that the read did
// not see therefore has a larger sequence number. The watcher records each
// such change in dropSeq before it looks up the certificate's sessions,
// and the CONNECT indexes its session before it looks at dropSeq: either
// the watcher's lookup comes after the session is indexed and closes it,
// or the CONNECT sees dropSeq past seq and reads the store again (and sees
// the change, which the watcher read from it). The watcher misses no
// change: the store's feed promises commit order (fleetcert.Store).
type admission struct {
	certificateID string
	scope         fleetcert.Scope
	notAfter      time.Time
	seq           int64
	// fromView is set while an admission the view made in the handshake
	// awaits confirmAdmission; only the connection's goroutine reads it.
	fromView bool
}

// handshakeAdmissions holds the admissions decided in TLS handshakes until
// their CONNECT takes them. They are keyed by the device's parsed leaf
// certificate: each handshake parses its own, so the pointer names one
// connection (tls.Conn.ConnectionState returns the same one later). This
// spares each connection a copy of the tls.Config whose VerifyConnection
// would know the connection.
type handshakeAdmissions struct {
	mu sync.Mutex
	m  map[*x509.Certificate]*admission
}

func (h *handshakeAdmissions) put(leaf *x509.Certificate, a *admission) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[*x509.Certificate]*admission{}
	}
	h.m[leaf] = a
	h.mu.Unlock()
}

// peek returns the admission of the connection that presented the leaf
// certificate of cs, if any, leaving it for CONNECT.
func (h *handshakeAdmissions) peek(cs tls.ConnectionState) *admission {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[cs.PeerCertificates[0]]
}

// take removes and returns the admission of the connection that presented
// the leaf certificate of cs, if any.
func (h *handshakeAdmissions) take(cs tls.ConnectionState) *admission {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	h.mu.Lock()
	a := h.m[leaf]
	if a != nil {
		delete(h.m, leaf)
	}
	h.mu.Unlock()
	return a
}

// changeBuckets is how many buckets of certificate ids dropSeq has. Two ids
// in one bucket only cost a CONNECT a second read.
const changeBuckets = 1024

func changeBucket(certificateID string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(certificateID); i++ {
		h ^= uint32(certificateID[i])
		h *= 16777619
	}
	return int(h % changeBuckets)
}

// noteChange records, before the watcher applies c, that it has read it.
func (g *Gateway) noteChange(c *fleetcert.Change) {
	if leavesActive(c) {
		g.dropSeq[changeBucket(c.CertificateID)].Store(c.Seq)
	}
	g.seen.Store(c.Seq)
}

// leavesActive reports whether c may take a certificate out of ACTIVE: its
// sessions are then closed.
func leavesActive(c *fleetcert.Change) bool {
	switch c.Kind {
	case fleetcert.ChangeCertificateUpdated, fleetcert.ChangeCertificateDeleted:
		return c.NewStatus != fleetcert.StatusActive
	}
	return false
}

// stillAdmitted reports whether the handshake's admission a holds for a
// session of certificateID already in the index: no change that could
// take the certificate out of ACTIVE was read since a was decided, and the
// certificate has not expired since.
func (g *Gateway) stillAdmitted(a *admission, certificateID string) bool {
	return g.dropSeq[changeBucket(certificateID)].Load() <= a.seq && !g.view.Load().Now().After(a.notAfter)
}

// verifyConnection refuses in the TLS handshake every device that
// AdmitDevice refuses, except one that may still be registered just in
// time: that happens on its MQTT CONNECT. An admission is kept in
// g.handshakes for the CONNECT.
//
// A device the admission view admits is admitted provisionally: the view
// may be trusted only once it reflects every change committed before the
// handshake began, in any process, which a read of the feed's head that
// began after the handshake did tells (confirmAdmission, once the
// handshake is over and before the connection carries any MQTT). Deciding
// that there rather than here lets one head read serve every handshake
// that began before it, instead of one read per handshake.
func (g *Gateway) verifyConnection(cs tls.ConnectionState) error {
	q := g.query(cs.PeerCertificates, cs.ServerName)
	if len(q.Chain) > 0 {
		// seen before the view: the view reflects at least every change
		// up to seen (readChanges and loadView update them in that order).
		seq := g.seen.Load()
		if cert, ok := g.view.Load().Admit(q); ok {
			g.handshakes.put(cs.PeerCertificates[0], &admission{certificateID: cert.ID, scope: cert.Scope, notAfter: cert.NotAfter, seq: seq, fromView: true})
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.HandshakeTimeout)
	defer cancel()
	return g.admitFromStore(ctx, cs, q)
}

// admitFromStore decides a handshake's admission from the store: nil lets
// the connection go on (admitted, with its admission kept for CONNECT, or
// to be registered just in time there), else the refusal.
func (g *Gateway) admitFromStore(ctx context.Context, cs tls.ConnectionState, q fleetcert.DeviceQuery) error {
	// Taken before the store's read: every change up to it is reflected
	// in the read (see admission).
	seq := g.seen.Load()
	cert, err := g.Registry.AdmitDevice(ctx, q)
	if err == nil {
		g.handshakes.put(cs.PeerCertificates[0], &admission{certificateID: cert.ID, scope: cert.Scope, notAfter: cert.NotAfter, seq: seq})
		return nil
	}
	var refusal *fleetcert.DeviceRefusal
	if !errors.As(err, &refusal) {
		g.Logger.Error("device admission failed", "stage", "handshake", "err", err)
		g.metrics.refuse("internal_error")
		return errors.New("device admission failed")
	}
	if refusal.Reason == fleetcert.ReasonUnregistered || refusal.Reason == fleetcert.ReasonPendingActivation {
		if ok, err := g.Registry.AutoRegistrationCandidate(ctx, q); err != nil {
			g.Logger.Error("device admission failed", "stage", "handshake", "certificateId", refusal.CertificateID, "err", err)
		} else if ok {
			return nil
		}
	}
	g.refused("handshake", refusal, "", "")
	return refusal
}

// confirmAdmission confirms, once the TLS handshake of tc (begun at began)
// is over, an admission the view made in it: the view must have applied
// every change up to a head of the feed read after the handshake began,
// so that every change committed before the handshake, in any process, is
// in it. A view behind that head is not trusted: the watcher is woken to
// catch up and the store decides, as in the handshake. It reports whether
// the connection may go on; when not, the refusal is logged and counted
// and the caller closes the connection.
func (g *Gateway) confirmAdmission(tc *tls.Conn, began time.Time) bool {
	cs := tc.ConnectionState()
	adm := g.handshakes.peek(cs)
	if adm == nil || !adm.fromView {
		return true // decided by the store, or left to CONNECT
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.HandshakeTimeout)
	defer cancel()
	head, err := g.heads.read(ctx, began, g.Registry.ChangesHead)
	if err == nil && adm.seq >= head {
		adm.fromView = false
		return true
	}
	if err != nil {
		if ctx.Err() == nil {
			g.Logger.Error("read change feed head", "err", err)
		}
	} else {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	g.handshakes.take(cs)
	return g.admitFromStore(ctx, cs, g.query(cs.PeerCertificates, cs.ServerName)) == nil
}

// headReads coalesces the reads of the change feed's head that confirm
// the view's admissions. An admission needs a head read that began after
// its handshake did: the latest read that did serves it at once; else it
// waits for the running read if that began after the handshake, or for
// the next one, which begins when the running one ends and serves every
// handshake that began before it. So at most two reads are under way, and
// under a steady load one read serves every handshake that was under way
// when it began.
type headReads struct {
	mu      sync.Mutex
	running *headRead // nil when none
	next    *headRead // to begin when running ends; nil when none is waiting
	last    *headRead // the latest read that succeeded; nil before one has
}

type headRead struct {
	done  chan struct{}
	began time.Time // set when the read begins
	head  int64
	err   error
	waits int // handshakes that joined it rather than begin it; under headReads.mu
}

// read returns a head of the feed read by fn after began.
func (h *headReads) read(ctx context.Context, began time.Time, fn func(context.Context) (int64, error)) (int64, error) {
	h.mu.Lock()
	if l := h.last; l != nil && !l.began.Before(began) {
		h.mu.Unlock()
		return l.head, nil
	}
	var r *headRead
	switch {
	case h.running == nil:
		r = &headRead{done: make(chan struct{}), began: time.Now()}
		h.running = r
		h.mu.Unlock()
		h.run(r, fn)
		return r.head, r.err
	case !h.running.began.Before(began):
		r = h.running
	case h.next == nil:
		r = &headRead{done: make(chan struct{})}
		h.next = r
	default:
		r = h.next
	}
	r.waits++
	h.mu.Unlock()
	select {
	case <-r.done:
		return r.head, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run reads into r, then starts the next read if handshakes wait for one.
// A read is not bound to one handshake's context: others share it.
func (h *headReads) run(r *headRead, fn func(context.Context) (int64, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), headReadTimeout)
	r.head, r.err = fn(ctx)
	cancel()
	close(r.done)
	h.mu.Lock()
	if r.err == nil && (h.last == nil || h.last.began.Before(r.began)) {
		h.last = r
	}
	next := h.next
	h.running, h.next = next, nil
	if next != nil {
		next.began = time.Now()
	}
	h.mu.Unlock()
	if next != nil {
		go h.run(next, fn)
	}
}

// headReadTimeout bounds a read of the feed's head; a handshake stops
// waiting for it at its own deadline.
const headReadTimeout = 5 * time.Second
