package console

import (
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// defaultLimiterEntries bounds the sign-in limiter's memory: how many
// (key id, address) windows it keeps, and as many address windows. Full,
// it holds about 7 MB (measured: 434 bytes per pair of windows).
const defaultLimiterEntries = 1 << 14

// signInLimiter counts the sign-in attempts that have not succeeded, per
// (access key id, client address) and per client address, in fixed
// windows. An attempt is reserved under the lock before its secret is
// checked, so that parallel attempts cannot overshoot a limit between
// check and record; a success gives its reservation back.
//
// Memory is bounded: expired windows are dropped as new ones begin, and
// beyond maxEntries the oldest window is dropped, live or not. That frees
// a count early only for whoever can make maxEntries new ones within a
// window, that is, from many addresses, each still held to its own cap.
type signInLimiter struct {
	mu         sync.Mutex
	maxEntries int // 0 means defaultLimiterEntries
	byKey      windows[keyAtAddr]
	byAddr     windows[netip.Prefix]
}

// keyAtAddr is the limiter's key: a hash of the access key id, so that an
// overlong id does not take memory, and the client's network.
type keyAtAddr struct {
	keyID [sha256.Size]byte
	addr  netip.Prefix
}

// limits are a Handler's sign-in limits at the time of an attempt.
type limits struct {
	perKey, perAddr int
	window          time.Duration
}

// reservation is an attempt counted by reserve.
type reservation struct {
	key  *window[keyAtAddr]
	addr *window[netip.Prefix]
}

// limitNetwork is what the limiter counts for a client address: the
// address itself for IPv4, its /64 for IPv6, the network a single host is
// usually given. An unknown address counts as one shared network.
func limitNetwork(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}

// reserve counts an attempt with keyID from addr and returns it, or
// returns false and how long until an attempt may be made again when a
// limit is used up.
func (l *signInLimiter) reserve(keyID string, addr netip.Addr, now time.Time, lim limits) (*reservation, time.Duration, bool) {
	k := keyAtAddr{keyID: sha256.Sum256([]byte(keyID)), addr: limitNetwork(addr)}
	l.mu.Lock()
	defer l.mu.Unlock()
	kw := l.byKey.current(k, now, lim.window)
	aw := l.byAddr.current(k.addr, now, lim.window)
	var wait time.Duration
	if kw != nil && kw.count >= lim.perKey {
		wait = max(wait, kw.start.Add(lim.window).Sub(now))
	}
	if aw != nil && aw.count >= lim.perAddr {
		wait = max(wait, aw.start.Add(lim.window).Sub(now))
	}
	if wait > 0 {
		return nil, wait, false
	}
	n := l.maxEntries
	if n <= 0 {
		n = defaultLimiterEntries
	}
	if kw == nil {
		kw = l.byKey.begin(k, now, n)
	}
	if aw == nil {
		aw = l.byAddr.begin(k.addr, now, n)
	}
	kw.count++
	aw.count++
	return &reservation{kw, aw}, 0, true
}

// release gives back the attempt of r: its secret was right, or it was
// never checked.
func (l *signInLimiter) release(r *reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.key.count--
	r.addr.count--
}

// size returns how many windows the limiter holds per key and per address.
func (l *signInLimiter) size() (keys, addrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey.m), len(l.byAddr.m)
}

// window is the count of attempts of one key since start.
type window[K comparable] struct {
	key   K
	start time.Time
	count int
}

// windows holds the current window of each key, and every window in the
// order it began, so that the expired ones and the oldest are found first.
type windows[K comparable] struct {
	m     map[K]*window[K]
	order []*window[K] // oldest first; may hold windows no longer in m
}

// current drops the expired windows and returns the current window of k,
// nil if it has none.
func (ws *windows[K]) current(k K, now time.Time, length time.Duration) *window[K] {
	for len(ws.order) > 0 {
		w := ws.order[0]
		if ws.m[w.key] == w && now.Sub(w.start) < length {
			break
		}
		ws.drop()
	}
	w := ws.m[k]
	if w != nil && now.Sub(w.start) >= length {
		// Only when windows did not begin in time order (the clock went
		// back): the window stays in order, where drop will find it no
		// longer current.
		delete(ws.m, k)
		return nil
	}
	return w
}

// begin starts a window for k at now, dropping the oldest windows to keep
// at most max.
func (ws *windows[K]) begin(k K, now time.Time, max int) *window[K] {
	if ws.m == nil {
		ws.m = map[K]*window[K]{}
	}
	for len(ws.order) >= max {
		ws.drop()
	}
	w := &window[K]{key: k, start: now}
	ws.m[k] = w
	ws.order = append(ws.order, w)
	return w
}

// drop removes the oldest window.
func (ws *windows[K]) drop() {
	w := ws.order[0]
	if ws.m[w.key] == w {
		delete(ws.m, w.key)
	}
	ws.order[0] = nil
	ws.order = ws.order[1:]
}
