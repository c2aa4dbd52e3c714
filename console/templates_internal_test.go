package console

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// BenchmarkRenderRows renders a 25-row certificate table alone: the part
// of a page that is not the store (1.43 ms when certRow embedded the
// certificate, 0.90 ms with its fields copied).
//
//	go test -run '^$' -bench RenderRows ./console/
func BenchmarkRenderRows(b *testing.B) {
	pages := parsePages()
	var certs []*fleetcert.Certificate
	now := time.Now()
	for i := range 25 {
		certs = append(certs, &fleetcert.Certificate{ID: fleetcert.CertificateID(fmt.Appendf(nil, "x%d", i)), Status: fleetcert.StatusActive,
			CommonName: "sensor-000001", CACertificateID: fleetcert.CertificateID([]byte("ca")), CreationDate: now, NotAfter: now.AddDate(1, 0, 0)})
	}
	args := certTableArgs{rows(certs, map[string]string{}), "/console/cas/abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789?after=xyz", "csrftokenvalue"}
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := pages.ExecuteTemplate(&buf, "certtable", args); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes")
}

func TestCountText(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "0 certificates"},
		{1, "1 certificate"},
		{1234, "1,234 certificates"},
		{countLimit, "5,000 certificates"}, // exactly the limit is still exact
		{countLimit + 1, "More than 5,000 certificates"},
	} {
		if got := countText(tc.n); got != tc.want {
			t.Errorf("countText(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestRegionOptions checks that the header's Region list, rendered once,
// selects the signed-in Region and escapes like the page would.
func TestRegionOptions(t *testing.T) {
	got := string(regionOptions("eu-west-1"))
	if strings.Count(got, "<option") != len(Regions) || strings.Count(got, " selected") != 1 ||
		!strings.Contains(got, `<option value="eu-west-1" selected>eu-west-1</option>`) {
		t.Errorf("regionOptions(eu-west-1) = %s", got)
	}
	if got := string(regionOptions(`x"<y`)); strings.Contains(got, " selected") || strings.Contains(got, `x"<y`) {
		t.Errorf("an unknown Region is selected or unescaped: %s", got)
	}
}

func TestHighlightJSON(t *testing.T) {
	got := highlightJSON(`{"a\"b":[1.5,true,null,"x<y"]}`)
	want := []jsonPart{
		{"j-punct", "{"}, {"", "\n  "}, {"j-key", `"a\"b"`}, {"j-punct", ":"}, {"", " "}, {"j-punct", "["}, {"", "\n    "},
		{"j-num", "1.5"}, {"j-punct", ","}, {"", "\n    "}, {"j-lit", "true"}, {"j-punct", ","}, {"", "\n    "},
		{"j-lit", "null"}, {"j-punct", ","}, {"", "\n    "}, {"j-str", `"x<y"`}, {"", "\n  "}, {"j-punct", "]"}, {"", "\n"}, {"j-punct", "}"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("highlightJSON:\n got %q\nwant %q", got, want)
	}
	if got := highlightJSON("not json"); len(got) != 1 || got[0] != (jsonPart{Text: "not json"}) {
		t.Errorf("not JSON: %q", got)
	}
}
