package console

import (
	"net/http"
	"net/netip"
)

// SetLimiterEntries sets how many windows the sign-in limiter keeps, per
// key and per address.
func SetLimiterEntries(h *Handler, n int) {
	h.limiter.mu.Lock()
	defer h.limiter.mu.Unlock()
	h.limiter.maxEntries = n
}

// LimiterSize returns how many windows the sign-in limiter holds, per key
// and per address.
func LimiterSize(h *Handler) (keys, addrs int) { return h.limiter.size() }

// LimitNetwork is limitNetwork.
var LimitNetwork = limitNetwork

// ClientAddr is h.clientAddr.
func ClientAddr(h *Handler, r *http.Request) netip.Addr { return h.clientAddr(r) }
