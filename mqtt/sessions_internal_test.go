package mqtt

import (
	"fmt"
	"slices"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/fleetcert/fleetcert"
)

// The index finds every session of a certificate, whatever the order in
// which sessions come and go.
func TestSessionsIndexByCertificate(t *testing.T) {
	scope := fleetcert.Scope{AccountID: "111111111111", Region: "us-east-1"}
	tests := []struct {
		name   string
		remove []int // indexes into the sessions of certificate "a", in order
	}{
		{"none removed", nil},
		{"first added", []int{0}},
		{"last added", []int{2}},
		{"middle", []int{1}},
		{"all, oldest first", []int{0, 1, 2}},
		{"all, newest first", []int{2, 1, 0}},
		{"all, middle first", []int{1, 0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newSessions()
			var a []*session
			for i := range 3 {
				s := &session{cl: &mochi.Client{ID: fmt.Sprint("a", i)}, certificateID: "a", scope: scope}
				x.add(s)
				x.add(s) // indexing again changes nothing
				a = append(a, s)
			}
			b := &session{cl: &mochi.Client{ID: "b"}, certificateID: "b", scope: scope}
			x.add(b)
			want := slices.Clone(a)
			for _, i := range tt.remove {
				if got := x.remove(a[i].cl); got != a[i] {
					t.Fatalf("remove(a%d) = %v", i, got)
				}
				want = slices.DeleteFunc(want, func(s *session) bool { return s == a[i] })
			}
			got := x.forCertificate(scope, "a")
			if len(got) != len(want) {
				t.Fatalf("forCertificate(a) has %d sessions, want %d", len(got), len(want))
			}
			for _, s := range want {
				if !slices.Contains(got, s) {
					t.Errorf("forCertificate(a) lacks %s", s.cl.ID)
				}
			}
			if got := x.forCertificate(scope, "b"); len(got) != 1 || got[0] != b {
				t.Errorf("forCertificate(b) = %v", got)
			}
			if _, ok := x.byCert["a"]; ok != (len(want) > 0) {
				t.Errorf("certificate a indexed: %v, with %d sessions", ok, len(want))
			}
			if n := x.len(); n != len(want)+1 {
				t.Errorf("len = %d, want %d", n, len(want)+1)
			}
		})
	}
}
