package mqtt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// registryView is the gateway's copy of what admission reads of every
// registered client certificate: its registrations' scopes, whether each
// is ACTIVE, and its validity period. It is loaded when the gateway starts
// and kept current from the change feed, so that the common handshake (a
// registered ACTIVE certificate) asks no store; everything else (unknown
// certificates, refusals, several registrations, just-in-time
// registration) is still decided by reading the store.
//
// Why it is as safe as a read of the store, see admission: the watcher
// removes a certificate from the view before it records a change to it as
// read (Gateway.seen), and puts it back from a read of the store made after
// that. The view therefore reflects at least every change up to seen, which
// is what an admission's seq promises. Changes committed but not yet read
// by the watcher are what a read of the store would have seen: for those
// made through the gateway's Registry (the API's and the console's, in
// fleetcert serve) the handshake reads the store until the watcher has
// caught up (Registry.Commits); those of other processes (cluster nodes)
// reach the view within PollInterval, and a session admitted in between is
// dropped then, as one admitted just before the change would be.
type registryView struct {
	mu     sync.RWMutex
	byID   map[[sha256.Size]byte][]viewRegistration
	scopes map[fleetcert.Scope]*fleetcert.Scope // one copy of each scope
}

// viewRegistration is one registration of a certificate: 32 bytes (with
// its key and the map's overhead, a certificate registered once costs the
// view about 116 bytes).
type viewRegistration struct {
	scope               *fleetcert.Scope
	notBefore, notAfter int64 // Unix microseconds
	active              bool
	sniOnly             bool // certificateMode SNI_ONLY, else DEFAULT
}

func viewKeyOf(r viewRegistration) (fleetcert.Scope, fleetcert.CertificateMode) {
	if r.sniOnly {
		return *r.scope, fleetcert.ModeSNIOnly
	}
	return *r.scope, fleetcert.ModeDefault
}

func newRegistryView() *registryView {
	return &registryView{byID: map[[sha256.Size]byte][]viewRegistration{}, scopes: map[fleetcert.Scope]*fleetcert.Scope{}}
}

func viewKey(certificateID string) ([sha256.Size]byte, bool) {
	var k [sha256.Size]byte
	n, err := hex.Decode(k[:], []byte(certificateID))
	return k, err == nil && n == sha256.Size
}

// set replaces what the view knows of certificateID by regs (its
// registrations in every scope, from the store).
func (v *registryView) set(certificateID string, regs []*fleetcert.Certificate) {
	k, ok := viewKey(certificateID)
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.setLocked(k, regs)
}

func (v *registryView) setLocked(k [sha256.Size]byte, regs []*fleetcert.Certificate) {
	if len(regs) == 0 {
		delete(v.byID, k)
		return
	}
	out := make([]viewRegistration, 0, len(regs))
	for _, c := range regs {
		scope := v.scopes[c.Scope]
		if scope == nil {
			scope = &fleetcert.Scope{AccountID: c.AccountID, Region: c.Region}
			v.scopes[c.Scope] = scope
		}
		out = append(out, viewRegistration{scope: scope, active: c.Status == fleetcert.StatusActive,
			sniOnly:   c.Mode == fleetcert.ModeSNIOnly,
			notBefore: c.NotBefore.UnixMicro(), notAfter: c.NotAfter.UnixMicro()})
	}
	v.byID[k] = out
}

// remove forgets certificateID: until it is set again, admission reads the
// store for it.
func (v *registryView) remove(certificateID string) {
	if k, ok := viewKey(certificateID); ok {
		v.mu.Lock()
		delete(v.byID, k)
		v.mu.Unlock()
	}
}

// admit reports whether the view admits the certificate whose DER hashes to
// key, for a device that asked q at now: the registration q means (chosen
// by fleetcert.SelectRegistration, as Registry.AdmitDevice chooses it) is
// ACTIVE and valid at now. When it is not, the store decides.
func (v *registryView) admit(key [sha256.Size]byte, q fleetcert.DeviceQuery, now time.Time) (fleetcert.Scope, time.Time, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	regs := v.byID[key]
	i, _ := fleetcert.SelectRegistration(q, regs, viewKeyOf)
	if i < 0 {
		return fleetcert.Scope{}, time.Time{}, false // unknown or ambiguous: the store says so
	}
	match := &regs[i]
	t := now.UnixMicro()
	if !match.active || t > match.notAfter || t < match.notBefore {
		return fleetcert.Scope{}, time.Time{}, false
	}
	return *match.scope, time.UnixMicro(match.notAfter), true
}

func (v *registryView) len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.byID)
}

// viewPage is how many registrations are read at once when the view loads.
const viewPage = 5000

// loadView reads every registration into the view. It runs before the
// listener opens and after skipChanges: the changes it may miss come later
// in the feed, and the watcher applies them.
func (g *Gateway) loadView(ctx context.Context) error {
	byID := map[string][]*fleetcert.Certificate{}
	var after int64
	for {
		var page []*fleetcert.Certificate
		err := g.Registry.Store.View(ctx, func(tx fleetcert.Tx) error {
			var err error
			page, err = tx.CertificatesAfter(ctx, after, viewPage)
			return err
		})
		if err != nil {
			return fmt.Errorf("load certificates for admission: %w", err)
		}
		for _, c := range page {
			byID[c.ID] = append(byID[c.ID], c)
			after = c.Seq
		}
		if len(page) < viewPage {
			break
		}
	}
	g.view.mu.Lock()
	defer g.view.mu.Unlock()
	for id, regs := range byID {
		if k, ok := viewKey(id); ok {
			g.view.setLocked(k, regs)
		}
	}
	return nil
}

// refreshView reads certificateID's registrations from the store into the
// view, after the watcher applied a change to it. On error it stays out of
// the view, and admission reads the store for it.
func (g *Gateway) refreshView(ctx context.Context, certificateID string) {
	var regs []*fleetcert.Certificate
	err := g.Registry.Store.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		regs, err = tx.CertificatesByID(ctx, certificateID)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			g.Logger.Error("refresh admission view", "certificateId", certificateID, "err", err)
		}
		return
	}
	g.view.set(certificateID, regs)
}

// isCertificateChange reports whether c changes a client certificate's
// registrations.
func isCertificateChange(c *fleetcert.Change) bool {
	switch c.Kind {
	case fleetcert.ChangeCertificateCreated, fleetcert.ChangeCertificateUpdated, fleetcert.ChangeCertificateDeleted:
		return true
	}
	return false
}
