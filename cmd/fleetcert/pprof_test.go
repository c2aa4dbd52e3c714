package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestCheckPprofAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"127.0.0.1:0", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{"0.0.0.0:6060", false},
		{":6060", false},
		{"10.0.0.1:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false},
	} {
		name := "fail/" + tt.addr
		if tt.ok {
			name = "ok/" + tt.addr
		}
		t.Run(name, func(t *testing.T) {
			if err := checkPprofAddr(tt.addr); (err == nil) != tt.ok {
				t.Errorf("checkPprofAddr(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
			}
		})
	}
}

func TestStartPprof(t *testing.T) {
	var logged []any
	srv, err := startPprof("127.0.0.1:0", func(msg string, args ...any) { logged = append(logged, args...) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopPprof(srv) })
	url := logged[1].(string)
	resp, err := http.Get(url + "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("GET %sgoroutine: %d %.200s", url, resp.StatusCode, b)
	}
}
