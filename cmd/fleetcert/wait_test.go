package main

import "testing"

// wait reaches a server that listens on a wildcard address on loopback:
// the container image's health check reads FLEETCERT_API_ADDR=0.0.0.0:8080.
func TestDialAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:8080":      "127.0.0.1:8080",
		":8080":             "127.0.0.1:8080",
		"[::]:8080":         "[::1]:8080",
		"127.0.0.1:8080":    "127.0.0.1:8080",
		"10.0.0.5:8080":     "10.0.0.5:8080",
		"fleet.example:443": "fleet.example:443",
		"no-port":           "no-port",
	} {
		if got := dialAddr(addr); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", addr, got, want)
		}
	}
}
