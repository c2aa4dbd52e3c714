package mqtt

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// admission is the registry's answer in a device's TLS handshake, handed on
// to its MQTT CONNECT so that the CONNECT need not read the store again.
//
// Why that is safe: seq is Gateway.seen taken before the handshake's read.
// Every change up to seq was read from the store by the watcher before
// that, so it was committed before the handshake's read and is reflected
// in it. A change taking the certificate out of ACTIVE that the read did
// not see therefore has a larger sequence number. The watcher records each
// such change in dropSeq before it looks up the certificate's sessions,
// and the CONNECT indexes its session before it looks at dropSeq: either
// the watcher's lookup comes after the session is indexed and closes it,
// or the CONNECT sees dropSeq past seq and reads the store again (and sees
// the change, which the watcher read from it). The store assigns sequence
// numbers in commit order (one writer).
type admission struct {
	certificateID string
	scope         fleetcert.Scope
	notAfter      time.Time
	seq           int64
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
	return g.dropSeq[changeBucket(certificateID)].Load() <= a.seq && !g.Registry.Now().After(a.notAfter)
}

// verifyConnection refuses in the TLS handshake every device that
// AdmitDevice refuses, except one that may still be registered just in
// time: that happens on its MQTT CONNECT. An admission is kept in
// g.handshakes for the CONNECT.
func (g *Gateway) verifyConnection(cs tls.ConnectionState) error {
	q := g.query(cs.PeerCertificates, cs.ServerName)
	// The view, when the watcher has read every change made in this
	// process so far (and seq, taken after, covers them): see registryView.
	commits := g.Registry.Commits()
	seq := g.seen.Load()
	if len(q.Chain) > 0 && g.caughtUp.Load() == commits {
		// The fingerprint once, as bytes for the view and in
		// fleetcert.CertificateID's hex form for the session.
		leaf := q.Chain[0]
		key := sha256.Sum256(leaf.Raw)
		if scope, notAfter, ok := g.view.admit(key, q, g.Registry.Now()); ok {
			g.handshakes.put(leaf, &admission{certificateID: hex.EncodeToString(key[:]), scope: scope, notAfter: notAfter, seq: seq})
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.HandshakeTimeout)
	defer cancel()
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
