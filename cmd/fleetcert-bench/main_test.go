package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/smithy-go"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100) // 1ms … 100ms
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"ok/empty", nil, 50, 0},
		{"ok/one", []time.Duration{7}, 50, 7},
		{"ok/one max", []time.Duration{7}, 100, 7},
		{"ok/p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"ok/p90 of 100", hundred, 90, 90 * time.Millisecond},
		{"ok/p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"ok/max of 100", hundred, 100, 100 * time.Millisecond},
		{"ok/tiny p is the minimum", hundred, 0.001, time.Millisecond},
		{"ok/p50 of 3 is the middle", []time.Duration{1, 2, 3}, 50, 2},
		{"ok/p99 of 3 is the max", []time.Duration{1, 2, 3}, 99, 3},
		{"ok/p50 of 4 is nearest rank 2", []time.Duration{1, 2, 3, 4}, 50, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		endpoint string
		ok       bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.0.0.1", true},
		{"https://127.0.0.1:8443/", true},
		{"http://localhost:5000", true},
		{"http://LOCALHOST:5000", true},
		{"http://[::1]:8080", true},
		{"http://127.0.0.2:8080", false}, // loopback, but not one the tool allows
		{"http://10.0.0.1:8080", false},
		{"https://iot.us-east-1.amazonaws.com", false},
		{"http://localhost.example.com", false},
		{"http://127.0.0.1.nip.io", false},
		{"http://[::2]:8080", false},
		{"ftp://127.0.0.1", false},
		{"127.0.0.1:8080", false},
		{"", false},
	}
	for _, tt := range tests {
		name := "fail/" + tt.endpoint
		if tt.ok {
			name = "ok/" + tt.endpoint
		}
		t.Run(name, func(t *testing.T) {
			err := checkLoopback(tt.endpoint)
			if (err == nil) != tt.ok {
				t.Errorf("checkLoopback(%q) = %v, want ok=%v", tt.endpoint, err, tt.ok)
			}
		})
	}
}

func TestDialLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "[::1]:80": true, "127.9.9.9:80": true,
		"10.0.0.1:80": false, "[2001:db8::1]:80": false,
	} {
		if err := dialLoopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("dialLoopbackOnly(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestErrorCode(t *testing.T) {
	apiErr := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("operation error IoT: %w", apiErr), "ThrottlingException"},
		{&checkError{"WrongCertificate", "x"}, "WrongCertificate"},
		{fmt.Errorf("call: %w", errors.New("boom")), "ClientError"},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("errorCode(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestCountDuplicates(t *testing.T) {
	if got := countDuplicates([]string{"b", "a", "c", "a", "a"}); got != 2 {
		t.Errorf("countDuplicates = %d, want 2", got)
	}
	if got := countDuplicates(nil); got != 0 {
		t.Errorf("countDuplicates(nil) = %d, want 0", got)
	}
}

func TestCertFactoryMakesDistinctCertificates(t *testing.T) {
	f, err := newCertFactory()
	if err != nil {
		t.Fatal(err)
	}
	pems, err := f.generate(20)
	if err != nil {
		t.Fatal(err)
	}
	more, err := f.generate(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range append(pems, more...) {
		block, _ := pem.Decode([]byte(p))
		if block == nil {
			t.Fatalf("not PEM: %q", p)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		key := cert.SerialNumber.String() + "/" + cert.Subject.CommonName
		if seen[key] {
			t.Errorf("serial and name repeated: %s", key)
		}
		seen[key] = true
	}
	if len(seen) != 25 {
		t.Errorf("got %d distinct certificates, want 25", len(seen))
	}
}

// Every endpoint of a list must be loopback.
func TestParseFlagsEndpoints(t *testing.T) {
	for _, tt := range []struct {
		endpoint string
		ok       bool
	}{
		{"http://127.0.0.1:8080,http://127.0.0.1:8081", true},
		{"http://127.0.0.1:8080,http://10.0.0.1:8081", false},
		{"http://127.0.0.1:8080,", false},
	} {
		_, err := parseFlags([]string{"--endpoint", tt.endpoint, "--access-key-id", "AKIA", "--secret-access-key", "s"}, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("--endpoint %q: %v, want ok=%v", tt.endpoint, err, tt.ok)
		}
	}
}
