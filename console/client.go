package console

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the client's IP address: the connection's peer, or, when
// the peer is a trusted proxy, the rightmost address of X-Forwarded-For
// that is not a trusted proxy. Each proxy appends the address it received
// the request from, so the addresses left of the first untrusted one were
// written by the client or hops it chose, and prove nothing.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	client := peerAddr(r)
	if !h.trusted(client) {
		return client
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			a, ok := parseHop(list[j])
			if !ok {
				// A trusted proxy wrote something other than an address
				// ("unknown" for a Unix socket, say): stop at the last hop
				// that can be vouched for, so that a limit counts the proxy
				// rather than whatever comes further left.
				return client
			}
			client = a
			if !h.trusted(a) {
				return client
			}
		}
	}
	return client
}

// secure reports whether the browser reached the console over HTTPS: the
// connection is TLS, or it comes from a trusted proxy whose
// X-Forwarded-Proto says https. Of a list of schemes the first is taken,
// the one the client used; a client can only set its own cookies' Secure
// with it.
func (h *Handler) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !h.trusted(peerAddr(r)) {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// trusted reports whether a is in one of h.TrustedProxies.
func (h *Handler) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range h.TrustedProxies {
		// An IPv4 network may be written IPv4-mapped (::ffff:10.0.0.0/104).
		if p.Contains(a) || a.Is4() && p.Contains(netip.AddrFrom16(a.As16())) {
			return true
		}
	}
	return false
}

// peerAddr is the IP address of the connection's other end; the zero Addr
// when r.RemoteAddr is not an address (a Unix socket, say).
func peerAddr(r *http.Request) netip.Addr {
	a, _ := parseHop(r.RemoteAddr)
	return a
}

// parseHop parses one address of X-Forwarded-For or a RemoteAddr: an IP
// address, bracketed or not, with or without a port. IPv4-mapped IPv6
// addresses become IPv4 and zones are dropped, so that one client has one
// form.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}
