package fleetcert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// admissionRefusal is the one admission rule on a registration already
// chosen (SelectRegistration): "" when a registration in status, valid from
// notBefore to notAfter, admits a device at now, else why not. AdmitDevice
// and AdmissionView both decide with it.
func admissionRefusal(status Status, notBefore, notAfter, now time.Time) string {
	switch status {
	case StatusActive:
	case StatusRevoked:
		return ReasonRevoked
	case StatusPendingTransfer:
		return ReasonPendingTransfer
	case StatusPendingActivation:
		return ReasonPendingActivation
	default:
		return ReasonInactive
	}
	if now.After(notAfter) {
		return ReasonExpired
	}
	if now.Before(notBefore) {
		return ReasonNotYetValid
	}
	return ""
}

// AdmissionView is a copy of what AdmitDevice reads of every registered
// client certificate (each registration's scope, certificate mode, whether
// it is ACTIVE, its validity), so that a device gateway can admit the
// common device (one registered ACTIVE certificate) without reading the
// store. It decides with AdmitDevice's rule (SelectRegistration, then the
// status and validity check), and only ever admits: whatever it would
// refuse, or does not know, is for AdmitDevice to decide from the store.
//
// A view is current only as of the change feed position its owner has
// applied. Its owner (the gateway's change watcher) Loads it, which returns
// the feed's head read before loading, Applies every change after that head
// in Seq order, and trusts Admit for a device only once it has applied every
// change up to a head read after the device's attempt began
// (Registry.ChangesHead): then the view reflects every change committed
// before the attempt, in any process, as a read of the store would.
//
// A certificate registered once costs a view about 80 bytes: one entry of
// a map without pointers, which the garbage collector does not scan.
type AdmissionView struct {
	reg *Registry

	mu sync.RWMutex
	// Every certificate is in one map: single if registered once (almost
	// all), several if registered more than once (in other accounts or
	// regions). A slice for each would cost a heap object and a pointer
	// per certificate.
	single  map[[sha256.Size]byte]viewRegistration
	several map[[sha256.Size]byte][]viewRegistration
	scopes  []Scope          // by viewRegistration.scope
	scopeOf map[Scope]uint32 // index of each scope in scopes
}

// viewRegistration is one registration of a certificate: 24 bytes, no
// pointer.
type viewRegistration struct {
	notBefore, notAfter int64  // Unix microseconds
	scope               uint32 // index in AdmissionView.scopes
	active              bool
	sniOnly             bool // certificateMode SNI_ONLY, else DEFAULT
}

// NewAdmissionView returns an empty view of r's registrations: Load it.
func (r *Registry) NewAdmissionView() *AdmissionView {
	return &AdmissionView{reg: r, single: map[[sha256.Size]byte]viewRegistration{},
		several: map[[sha256.Size]byte][]viewRegistration{}, scopeOf: map[Scope]uint32{}}
}

// registrationsLocked returns the registrations of k, in the order they
// were read; one is copied into buf.
func (v *AdmissionView) registrationsLocked(k [sha256.Size]byte, buf *[1]viewRegistration) []viewRegistration {
	if r, ok := v.single[k]; ok {
		buf[0] = r
		return buf[:]
	}
	return v.several[k]
}

// addLocked adds registration r of k after those v holds.
func (v *AdmissionView) addLocked(k [sha256.Size]byte, r viewRegistration) {
	if first, ok := v.single[k]; ok {
		delete(v.single, k)
		v.several[k] = []viewRegistration{first, r}
	} else if regs, ok := v.several[k]; ok {
		v.several[k] = append(regs, r)
	} else {
		v.single[k] = r
	}
}

// deleteLocked removes every registration of k.
func (v *AdmissionView) deleteLocked(k [sha256.Size]byte) {
	delete(v.single, k)
	delete(v.several, k)
}

// viewPage is how many registrations are read at once when a view loads.
const viewPage = 5000

// Load reads every registration into v and returns the change feed's head
// as read before loading: every change up to it is reflected in v, and a
// later one may or may not be, so the owner applies the changes after it.
func (v *AdmissionView) Load(ctx context.Context) (int64, error) {
	head, err := v.reg.Store.ChangesHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("load admission view: %w", err)
	}
	// Each page goes into v as it is read, so that loading holds one page
	// of records at a time, not the whole registry's (a million
	// certificates' records are hundreds of MB; the view keeps ~120 bytes
	// of each). A certificate's registrations may span pages: they are
	// appended, as they were read.
	var after int64
	for {
		var page []*Certificate
		err := v.reg.Store.View(ctx, func(tx Tx) error {
			var err error
			page, err = tx.CertificatesAfter(ctx, after, viewPage)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("load admission view: %w", err)
		}
		v.mu.Lock()
		for _, c := range page {
			if k, ok := viewKey(c.ID); ok {
				v.addLocked(k, v.registrationLocked(c))
			}
			after = c.Seq
		}
		v.mu.Unlock()
		if len(page) < viewPage {
			break
		}
	}
	return head, nil
}

// Apply brings the change c into v: a status update of a registration v
// holds is taken from c itself, and so is the first registration of a
// certificate when c carries it (Change.Registration, on this process's
// own commits); otherwise the registrations of the client certificate it
// concerns are read again from the store (a read made after c committed,
// so reflecting it), and replace v's copy at once. Changes to
// CAs and registration codes do not concern admission. On error the
// certificate leaves v, so that AdmitDevice decides for it until a later
// change brings it back.
func (v *AdmissionView) Apply(ctx context.Context, c *Change) error {
	switch c.Kind {
	case ChangeCertificateCreated, ChangeCertificateUpdated, ChangeCertificateDeleted:
	default:
		return nil
	}
	k, ok := viewKey(c.CertificateID)
	if !ok {
		return nil
	}
	if c.Kind == ChangeCertificateUpdated && v.setActive(k, c.Scope, c.NewStatus == StatusActive) {
		// A status change is all an update changes of what the view
		// keeps, and the change says it: no read (a bulk job makes a
		// million of them at once).
		return nil
	}
	if c.Kind == ChangeCertificateCreated && c.Registration != nil && v.addFirst(k, c.Registration) {
		// The process that committed it handed over the registration
		// made (CommitReporter): no read.
		return nil
	}
	var regs []*Certificate
	err := v.reg.Store.View(ctx, func(tx Tx) error {
		var err error
		regs, err = tx.CertificatesByID(ctx, c.CertificateID)
		return err
	})
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.deleteLocked(k)
		return fmt.Errorf("admission view: read certificate %s: %w", c.CertificateID, err)
	}
	v.setLocked(k, regs)
	return nil
}

// addFirst adds r as the registration of k, and reports whether v held
// none before: when it held some, it adds nothing, and the caller reads
// them all again.
func (v *AdmissionView) addFirst(k [sha256.Size]byte, r *Certificate) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.single[k]; ok {
		return false
	}
	if _, ok := v.several[k]; ok {
		return false
	}
	v.single[k] = v.registrationLocked(r)
	return true
}

// setActive sets whether the registration of k in scope is ACTIVE, and
// reports whether v holds one to set.
func (v *AdmissionView) setActive(k [sha256.Size]byte, scope Scope, active bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	i, ok := v.scopeOf[scope]
	if !ok {
		return false
	}
	if r, ok := v.single[k]; ok {
		if r.scope != i {
			return false
		}
		r.active = active
		v.single[k] = r
		return true
	}
	regs := v.several[k]
	for j := range regs {
		if regs[j].scope == i {
			regs[j].active = active
			return true
		}
	}
	return false
}

func viewKey(certificateID string) ([sha256.Size]byte, bool) {
	var k [sha256.Size]byte
	n, err := hex.Decode(k[:], []byte(certificateID))
	return k, err == nil && n == sha256.Size
}

func (v *AdmissionView) setLocked(k [sha256.Size]byte, regs []*Certificate) {
	v.deleteLocked(k)
	for _, c := range regs {
		v.addLocked(k, v.registrationLocked(c))
	}
}

// registrationLocked is the view's copy of registration c.
func (v *AdmissionView) registrationLocked(c *Certificate) viewRegistration {
	scope, ok := v.scopeOf[c.Scope]
	if !ok {
		scope = uint32(len(v.scopes))
		v.scopes = append(v.scopes, c.Scope)
		v.scopeOf[c.Scope] = scope
	}
	return viewRegistration{scope: scope, active: c.Status == StatusActive,
		sniOnly:   c.Mode == ModeSNIOnly,
		notBefore: c.NotBefore.UnixMicro(), notAfter: c.NotAfter.UnixMicro()}
}

func (r viewRegistration) admits(now time.Time) bool {
	status := StatusInactive // the view keeps only whether it is ACTIVE
	if r.active {
		status = StatusActive
	}
	return admissionRefusal(status, time.UnixMicro(r.notBefore), time.UnixMicro(r.notAfter), now) == ""
}

// Admit decides for a device asking q from v's copy, by AdmitDevice's rule
// at the Registry's clock: it returns the registration q means when it is
// ACTIVE and valid, with the fields CertificatesByID fills but Seq and
// CACertificateID. Otherwise (unknown, ambiguous, or refused) it returns
// false, and AdmitDevice must decide, from the store, and say why.
func (v *AdmissionView) Admit(q DeviceQuery) (*Certificate, bool) {
	if len(q.Chain) == 0 {
		return nil, false
	}
	key := sha256.Sum256(q.Chain[0].Raw)
	now := v.reg.Now()
	var buf [1]viewRegistration
	v.mu.RLock()
	regs := v.registrationsLocked(key, &buf)
	i, _ := SelectRegistration(q, regs, func(r viewRegistration) (Scope, CertificateMode) {
		if r.sniOnly {
			return v.scopes[r.scope], ModeSNIOnly
		}
		return v.scopes[r.scope], ModeDefault
	})
	var r viewRegistration
	var scope Scope
	if i >= 0 {
		r, scope = regs[i], v.scopes[regs[i].scope]
	}
	v.mu.RUnlock()
	if i < 0 || !r.admits(now) {
		return nil, false
	}
	mode := ModeDefault
	if r.sniOnly {
		mode = ModeSNIOnly
	}
	return &Certificate{
		Scope: scope, ID: hex.EncodeToString(key[:]), Status: StatusActive, Mode: mode,
		NotBefore: time.UnixMicro(r.notBefore).UTC(), NotAfter: time.UnixMicro(r.notAfter).UTC(),
	}, true
}

// Active reports whether v holds the registration of certificateID in
// scope as ACTIVE: whether a session it admitted may go on. Like the
// feed's changes, it looks at the status only; validity is checked when a
// device is admitted.
func (v *AdmissionView) Active(scope Scope, certificateID string) bool {
	k, ok := viewKey(certificateID)
	if !ok {
		return false
	}
	var buf [1]viewRegistration
	v.mu.RLock()
	defer v.mu.RUnlock()
	i, ok := v.scopeOf[scope]
	if !ok {
		return false
	}
	for _, r := range v.registrationsLocked(k, &buf) {
		if r.scope == i {
			return r.active
		}
	}
	return false
}

// Now returns the time v and AdmitDevice decide by (the Registry's clock).
func (v *AdmissionView) Now() time.Time { return v.reg.Now() }

// Len returns how many certificates v holds.
func (v *AdmissionView) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.single) + len(v.several)
}
