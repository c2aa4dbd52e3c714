package fleetcert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// ExpiryScan is what one pass over the admission view found
// (AdmissionView.ScanExpiry).
type ExpiryScan struct {
	// Within[i] counts the ACTIVE registrations still valid at the scan's
	// time whose validity ends within the i-th window after it.
	Within []int
	// Expired counts the ACTIVE registrations whose validity has ended:
	// devices that can no longer connect though their status says ACTIVE.
	Expired int
}

// ExpiredRegistration is a registration whose certificate's validity ended
// in the scanned interval.
type ExpiredRegistration struct {
	Scope         Scope
	CertificateID string
	NotAfter      time.Time
	Active        bool
}

// ScanExpiry walks every registration v holds once, under its read lock:
// fn gets each whose notAfter falls in (from, to], and the result counts
// the ACTIVE ones by time to expiry at to, for each window (ascending).
// The gateway runs it every ExpiryInterval, not per request.
func (v *AdmissionView) ScanExpiry(from, to time.Time, windows []time.Duration, fn func(ExpiredRegistration)) ExpiryScan {
	res := ExpiryScan{Within: make([]int, len(windows))}
	f, t := from.UnixMicro(), to.UnixMicro()
	ends := make([]int64, len(windows))
	for i, w := range windows {
		ends[i] = to.Add(w).UnixMicro()
	}
	var hits []ExpiredRegistration
	scan := func(k [sha256.Size]byte, r viewRegistration) {
		if r.notAfter > f && r.notAfter <= t {
			hits = append(hits, ExpiredRegistration{Scope: v.scopes[r.scope], CertificateID: hex.EncodeToString(k[:]),
				NotAfter: time.UnixMicro(r.notAfter).UTC(), Active: r.active})
		}
		if !r.active {
			return
		}
		if r.notAfter < t {
			res.Expired++
			return
		}
		for i, end := range ends {
			if r.notAfter <= end {
				res.Within[i]++
			}
		}
	}
	v.mu.RLock()
	for k, r := range v.single {
		scan(k, r)
	}
	for k, regs := range v.several {
		for _, r := range regs {
			scan(k, r)
		}
	}
	v.mu.RUnlock()
	if fn != nil { // outside the lock: fn may publish
		for _, h := range hits {
			fn(h)
		}
	}
	return res
}

// claimKind is the expiring state's kind for ClaimOnce.
const claimKind = "claim"

// ClaimOnce reports whether this call is the first, in any process on the
// store, to claim key within ttl: for work that one node of a cluster must
// do once, such as publishing an event every node sees happen. The claim is
// taken in one Update (read, then written only when absent), so of
// processes racing for it exactly one gets true.
func (r *Registry) ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	now := r.now()
	first := false
	err := r.Store.Update(ctx, func(tx Tx) error {
		_, err := tx.Expiring(ctx, claimKind, key, now)
		switch {
		case err == nil:
			first = false
			return nil
		case ErrorCode(err) != EResourceNotFound:
			return err
		}
		first = true
		return tx.PutExpiring(ctx, claimKind, key, []byte{1}, now.Add(ttl))
	})
	return first && err == nil, err
}
