package console_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert/console"
)

// proxied is a header set a reverse proxy adds.
func proxied(forwardedFor ...string) http.Header {
	return http.Header{"X-Forwarded-For": forwardedFor}
}

func TestTrustedProxies(t *testing.T) {
	const (
		proxy    = "127.0.0.1:40000" // the trusted reverse proxy
		stranger = "127.0.0.5:40000" // a peer that is not a proxy
	)
	trust := func(e *env, networks ...string) {
		for _, n := range networks {
			e.H.TrustedProxies = append(e.H.TrustedProxies, netip.MustParsePrefix(n))
		}
	}
	// failUntilLimited sends wrong secrets until the limiter refuses,
	// each with the headers hdr(i), and fails unless that takes exactly
	// the limit.
	failUntilLimited := func(t *testing.T, e *env, remote, keyID string, hdr func(i int) http.Header) {
		t.Helper()
		for i := range console.DefaultMaxFailedSignIns {
			wantSignIn(t, e.signInFrom(remote, keyID, "wrong", hdr(i)), http.StatusUnauthorized)
		}
		wantSignIn(t, e.signInFrom(remote, keyID, "wrong", hdr(console.DefaultMaxFailedSignIns)), http.StatusTooManyRequests)
	}

	t.Run("ok/a trusted proxy's X-Forwarded-For names the client", func(t *testing.T) {
		e := newEnv(t)
		trust(e, "127.0.0.1/32")
		k := e.key("111111111111")
		failUntilLimited(t, e, proxy, k.ID, func(int) http.Header { return proxied("127.0.0.10") })
		if !strings.Contains(e.Log.String(), "remoteAddr=127.0.0.10") {
			t.Errorf("the log does not name the client 127.0.0.10:\n%s", e.Log.String())
		}
		// Another client behind the same proxy is not locked out.
		wantSignIn(t, e.signInFrom(proxy, k.ID, k.Secret, proxied("127.0.0.11")), http.StatusSeeOther)
	})
	t.Run("ok/the rightmost hop that is not a trusted proxy is the client", func(t *testing.T) {
		e := newEnv(t)
		trust(e, "127.0.0.1/32", "127.0.0.2/32")
		k := e.key("111111111111")
		// The client wrote a first hop of its own choosing, a new one each
		// time; the second proxy (127.0.0.2) appended the client's real
		// address, and the first (the peer) appended the second's.
		failUntilLimited(t, e, proxy, k.ID, func(i int) http.Header {
			spoof := netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}).String()
			if i%2 == 0 {
				return proxied(spoof + ", 127.0.0.10, 127.0.0.2")
			}
			return proxied(spoof, "127.0.0.10 , 127.0.0.2") // as two header lines
		})
		wantSignIn(t, e.signInFrom(proxy, k.ID, k.Secret, proxied("127.0.0.11, 127.0.0.2")), http.StatusSeeOther)
	})
	t.Run("ok/an unreadable hop: the nearest trusted proxy counts", func(t *testing.T) {
		e := newEnv(t)
		trust(e, "127.0.0.1/32", "127.0.0.2/32")
		k := e.key("111111111111")
		// Behind "unknown" (nginx's word for a Unix socket) anyone could
		// be: the limiter counts the last hop it can vouch for.
		failUntilLimited(t, e, proxy, k.ID, func(i int) http.Header {
			return proxied(netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}).String() + ", unknown, 127.0.0.2")
		})
		wantSignIn(t, e.signInFrom(proxy, k.ID, k.Secret, proxied("127.0.0.2")), http.StatusTooManyRequests)
		wantSignIn(t, e.signInFrom(proxy, k.ID, k.Secret, proxied("127.0.0.11")), http.StatusSeeOther)
	})
	t.Run("fail/X-Forwarded-For from an untrusted peer cannot dodge the limiter", func(t *testing.T) {
		for name, networks := range map[string][]string{"no trusted proxies": nil, "another peer trusted": {"127.0.0.1/32"}} {
			t.Run(name, func(t *testing.T) {
				e := newEnv(t)
				trust(e, networks...)
				k := e.key("111111111111")
				failUntilLimited(t, e, stranger, k.ID, func(i int) http.Header {
					return proxied(netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}).String())
				})
				if strings.Contains(e.Log.String(), "remoteAddr=127.0.1.") {
					t.Errorf("the log names an address the peer made up:\n%s", e.Log.String())
				}
			})
		}
	})

	secureCookies := func(t *testing.T, e *env, remote string, hdr http.Header) bool {
		t.Helper()
		req := httptest.NewRequest("GET", "/console/signin", nil)
		req.RemoteAddr = remote
		for k, v := range hdr {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		e.H.ServeHTTP(w, req)
		cookies := w.Result().Cookies()
		if len(cookies) == 0 {
			t.Fatalf("the sign-in page set no cookie")
		}
		return cookies[0].Secure
	}
	https := http.Header{"X-Forwarded-Proto": {"https"}}
	t.Run("ok/Secure cookies behind a TLS-terminating proxy", func(t *testing.T) {
		e := newEnv(t)
		trust(e, "127.0.0.1/32")
		if !secureCookies(t, e, proxy, https) {
			t.Error("the sign-in cookie is not Secure behind a proxy that says https")
		}
		k := e.key("111111111111")
		r := e.signInFrom(proxy, k.ID, k.Secret, http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"127.0.0.10"}})
		wantSignIn(t, r, http.StatusSeeOther)
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			if !c.Secure {
				t.Errorf("cookie %s after sign-in behind an https proxy is not Secure", c.Name)
			}
		}
		if secureCookies(t, e, proxy, http.Header{"X-Forwarded-Proto": {"http"}}) {
			t.Error("cookies are Secure behind a proxy that says http")
		}
	})
	t.Run("fail/X-Forwarded-Proto from an untrusted peer is ignored", func(t *testing.T) {
		e := newEnv(t)
		trust(e, "127.0.0.1/32")
		if secureCookies(t, e, stranger, https) {
			t.Error("an untrusted peer's X-Forwarded-Proto made the cookies Secure")
		}
	})
}

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct {
		name, remote string
		trusted      []string
		forwardedFor []string
		want         string
	}{
		{"ok/no trusted proxies: the peer", "127.0.0.5:40000", nil, []string{"127.0.0.10"}, "127.0.0.5"},
		{"ok/an untrusted peer: the peer", "127.0.0.5:40000", []string{"127.0.0.1/32"}, []string{"127.0.0.10"}, "127.0.0.5"},
		{"ok/a trusted peer without the header: the peer", "127.0.0.1:40000", []string{"127.0.0.1/32"}, nil, "127.0.0.1"},
		{"ok/a hop with a port", "127.0.0.1:40000", []string{"127.0.0.1/32"}, []string{"127.0.0.10:5555"}, "127.0.0.10"},
		{"ok/an IPv6 hop in brackets with a port", "127.0.0.1:40000", []string{"127.0.0.1/32"}, []string{"[::1]:5555"}, "::1"},
		{"ok/an IPv6 hop in brackets", "127.0.0.1:40000", []string{"127.0.0.1/32"}, []string{"[::1]"}, "::1"},
		{"ok/an IPv4-mapped hop: IPv4", "127.0.0.1:40000", []string{"127.0.0.1/32"}, []string{"::ffff:127.0.0.10"}, "127.0.0.10"},
		{"ok/an IPv4-mapped peer", "[::ffff:127.0.0.1]:40000", []string{"127.0.0.1/32"}, []string{"127.0.0.10"}, "127.0.0.10"},
		{"ok/a network written IPv4-mapped", "127.0.0.1:40000", []string{"::ffff:127.0.0.0/126"}, []string{"127.0.0.10, 127.0.0.2"}, "127.0.0.10"},
		{"ok/an IPv6 peer", "[::1]:40000", []string{"::1/128"}, []string{"127.0.0.10"}, "127.0.0.10"},
		{"ok/every hop trusted: the leftmost", "127.0.0.1:40000", []string{"127.0.0.0/30"}, []string{"127.0.0.3, 127.0.0.2"}, "127.0.0.3"},
		{"fail/an empty hop: the nearest trusted proxy", "127.0.0.1:40000", []string{"127.0.0.0/30"}, []string{"127.0.0.10,, 127.0.0.2"}, "127.0.0.2"},
		{"fail/not an address: the peer", "127.0.0.1:40000", []string{"127.0.0.1/32"}, []string{"127.0.0.10, unknown"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := console.NewHandler(nil, nil)
			for _, n := range tc.trusted {
				h.TrustedProxies = append(h.TrustedProxies, netip.MustParsePrefix(n))
			}
			r := httptest.NewRequest("GET", "/console/signin", nil)
			r.RemoteAddr = tc.remote
			r.Header["X-Forwarded-For"] = tc.forwardedFor
			if got := console.ClientAddr(h, r).String(); got != tc.want {
				t.Errorf("client address %s, want %s", got, tc.want)
			}
		})
	}
}
