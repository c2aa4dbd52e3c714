package awsapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func TestListCertificatesExpiring(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	scopeA := fleetcert.Scope{AccountID: accountA, Region: "us-east-1"}
	scopeB := fleetcert.Scope{AccountID: accountB, Region: "us-east-1"}
	register := func(scope fleetcert.Scope, days int) string {
		cert := testpki.New(t, testpki.Options{CommonName: "dev", NotAfter: time.Now().Add(time.Duration(days)*24*time.Hour - time.Hour)})
		c, err := e.Registry.RegisterCertificateWithoutCA(ctx, scope, cert.PEM, fleetcert.StatusActive)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	in60 := register(scopeA, 60)
	in10 := register(scopeA, 10)
	in2 := register(scopeA, 2)
	register(scopeB, 1) // another account's: never listed

	type page struct {
		Certificates []struct {
			CertificateID string `json:"certificateId"`
			Validity      struct {
				NotAfter float64 `json:"notAfter"`
			} `json:"validity"`
		} `json:"certificates"`
		NextMarker string `json:"nextMarker"`
	}
	get := func(query string) (int, page) {
		resp := e.Do(e.Request(e.KeyA, "us-east-1", http.MethodGet, "/fleetcert/certificates-expiring"+query, nil, time.Now()))
		defer resp.Body.Close()
		var p page
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, p
	}
	ids := func(p page) []string {
		var out []string
		for _, c := range p.Certificates {
			out = append(out, c.CertificateID)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		query string
		want  []string
	}{
		{"ok/default-30-days", "", []string{in2, in10}},
		{"ok/5-days", "?days=5", []string{in2}},
		{"ok/90-days", "?days=90", []string{in2, in10, in60}},
		{"ok/0-days", "?days=0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, p := get(tc.query)
			if st != http.StatusOK || len(ids(p)) != len(tc.want) {
				t.Fatalf("%d %v, want %v", st, ids(p), tc.want)
			}
			for i, id := range tc.want {
				if ids(p)[i] != id {
					t.Fatalf("got %v, want %v", ids(p), tc.want)
				}
			}
		})
	}
	t.Run("ok/paged", func(t *testing.T) {
		var got []string
		query := "?days=90&pageSize=1"
		for range 5 {
			st, p := get(query)
			if st != http.StatusOK {
				t.Fatalf("status %d", st)
			}
			got = append(got, ids(p)...)
			if p.NextMarker == "" {
				break
			}
			query = "?days=90&pageSize=1&marker=" + url.QueryEscape(p.NextMarker)
		}
		if len(got) != 3 || got[0] != in2 || got[1] != in10 || got[2] != in60 {
			t.Fatalf("paged %v", got)
		}
	})
	for _, q := range []string{"?days=-1", "?days=x", "?days=99999"} {
		t.Run("fail/"+q, func(t *testing.T) {
			resp := e.Do(e.Request(e.KeyA, "us-east-1", http.MethodGet, "/fleetcert/certificates-expiring"+q, nil, time.Now()))
			if w := readError(t, resp); resp.StatusCode != http.StatusBadRequest || w.Code != "InvalidRequestException" {
				t.Fatalf("%d %+v", resp.StatusCode, w)
			}
		})
	}
	t.Run("fail/unsigned", func(t *testing.T) {
		resp := e.Do(newRequest(http.MethodGet, "/fleetcert/certificates-expiring", nil))
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("unsigned: %d", resp.StatusCode)
		}
	})
}
