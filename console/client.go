package console

import (
	"net/http"
	"net/netip"
)

// clientAddr is the client's IP address as the connection shows it.
// Forwarding headers are ignored: anyone can set them.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	return peerAddr(r)
}

// peerAddr is the IP address of the connection's other end; the zero Addr
// when r.RemoteAddr is not an address (a Unix socket, say).
func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(r.RemoteAddr)
	return a.Unmap()
}
