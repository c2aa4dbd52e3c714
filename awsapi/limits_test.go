package awsapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// spyBody is a request body that records whether anyone read it.
type spyBody struct {
	r    io.Reader
	read atomic.Bool
}

func (b *spyBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

func (b *spyBody) Close() error { return nil }

// TestAuthenticate_BodyUnread proves that the body is read only once the
// access key id, the credential scope and the date check out: an
// unauthenticated caller cannot make the server read (or wait for) a body.
func TestAuthenticate_BodyUnread(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	pemText, _, _ := selfSignedPEM(t, "device")
	body, _ := json.Marshal(map[string]string{"certificatePem": pemText})
	stranger := &fleetcert.AccessKey{ID: unknownKeyID, Secret: strings.Repeat("s", 40), AccountID: accountA}
	signed := func(key *fleetcert.AccessKey, region, service string, at time.Time) func() *http.Request {
		return func() *http.Request {
			r := newRequest("POST", "/certificate/register-no-ca", body)
			signRequest(t, r, key.ID, key.Secret, region, service, body, at)
			return r
		}
	}
	for _, tt := range []struct {
		name     string
		req      func() *http.Request
		code     string
		readBody bool
	}{
		{"ok/signed request", signed(e.KeyA, testRegion, "iot", now), "", true},
		{"fail/unknown access key id", signed(stranger, testRegion, "iot", now), "UnrecognizedClientException", false},
		{"fail/stale date", signed(e.KeyA, testRegion, "iot", now.Add(-time.Hour)), "InvalidSignatureException", false},
		{"fail/future date", signed(e.KeyA, testRegion, "iot", now.Add(time.Hour)), "InvalidSignatureException", false},
		{"fail/stale date of an unknown key", signed(stranger, testRegion, "iot", now.Add(-time.Hour)), "InvalidSignatureException", false},
		{"fail/scope of another service", signed(e.KeyA, testRegion, "s3", now), "UnknownOperationException", false},
		{"fail/invalid region", signed(e.KeyA, "Not A Region", "iot", now), "InvalidSignatureException", false},
		{"fail/scope date is not the request date", func() *http.Request {
			r := signed(e.KeyA, testRegion, "iot", now)()
			day := now.UTC().Format("20060102")
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/"+day+"/", "/20200101/", 1))
			return r
		}, "InvalidSignatureException", false},
		{"fail/malformed date", func() *http.Request {
			r := signed(e.KeyA, testRegion, "iot", now)()
			r.Header.Set("X-Amz-Date", "yesterday")
			return r
		}, "IncompleteSignatureException", false},
		{"fail/no authorization", func() *http.Request {
			return newRequest("POST", "/certificate/register-no-ca", body)
		}, "MissingAuthenticationTokenException", false},
		{"fail/malformed authorization", func() *http.Request {
			r := signed(e.KeyA, testRegion, "iot", now)()
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
			return r
		}, "IncompleteSignatureException", false},
		{"fail/unknown route", func() *http.Request {
			r := newRequest("POST", "/things", body)
			signRequest(t, r, stranger.ID, stranger.Secret, testRegion, "iot", body, now)
			return r
		}, "UnrecognizedClientException", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			spy := &spyBody{r: r.Body}
			r.Body = spy
			w := readError(t, e.Do(r))
			if w.Code != tt.code {
				t.Fatalf("got %d %s %q, want %s", w.Status, w.Code, w.Message, tt.code)
			}
			if spy.read.Load() != tt.readBody {
				t.Errorf("body read: %v, want %v", spy.read.Load(), tt.readBody)
			}
		})
	}
}

// largestRequest builds the largest RegisterCACertificate body the model
// allows, as DefaultMaxBodyBytes's comment reckons it: both PEM members at
// their maxLength in 64-character CRLF lines, a templateBody of quotes, the
// other strings at their maxLength, and 50 tags (AWS IoT's limit per
// resource; the model sets none).
func largestRequest(tb testing.TB) []byte {
	tb.Helper()
	var m struct {
		Shapes map[string]struct {
			Max int `json:"max"`
		} `json:"shapes"`
	}
	b, err := os.ReadFile("testdata/iot-certificate-api.json")
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	max := func(shape string) int {
		n := m.Shapes[shape].Max
		if n == 0 {
			tb.Fatalf("the model gives %s no max", shape)
		}
		return n
	}
	pem := func(n int) string {
		var sb strings.Builder
		for sb.Len() < n {
			line := strings.Repeat("A", 64) + "\r\n"
			sb.WriteString(line[:min(len(line), n-sb.Len())])
		}
		return sb.String()
	}
	type tag struct{ Key, Value string }
	tags := make([]tag, 50)
	for i := range tags {
		tags[i] = tag{fmt.Sprintf("%0*d", max("TagKey"), i), strings.Repeat("v", max("TagValue"))}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err = enc.Encode(map[string]any{
		"caCertificate":           pem(max("CertificatePem")),
		"verificationCertificate": pem(max("CertificatePem")),
		"certificateMode":         "SNI_ONLY",
		"registrationConfig": map[string]string{
			"templateBody": strings.Repeat(`"`, max("TemplateBody")),
			"roleArn":      strings.Repeat("r", max("RoleArn")),
			"templateName": strings.Repeat("t", max("TemplateName")),
		},
		"tags": tags,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}

// TestMaxBody_Model checks DefaultMaxBodyBytes against the model: the
// largest request fits, with less than 4 KiB to spare, and a byte more than
// the limit is refused unread.
func TestMaxBody_Model(t *testing.T) {
	e := newEnv(t)
	largest := largestRequest(t)
	if n := int64(len(largest)); n > awsapi.DefaultMaxBodyBytes || awsapi.DefaultMaxBodyBytes-n > 4<<10 {
		t.Fatalf("the largest request has %d bytes, the limit is %d: want the limit just above it", n, awsapi.DefaultMaxBodyBytes)
	}
	over := append(bytes.Clone(largest), bytes.Repeat([]byte(" "), int(awsapi.DefaultMaxBodyBytes)-len(largest)+1)...)
	for _, tt := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		// Refused by the registry for its content (not a certificate), not
		// for its size.
		{"ok/largest request", largest, 400, "CertificateValidationException"},
		{"fail/one byte over the limit", over, 413, "InvalidRequestException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.Request(e.KeyA, testRegion, "POST", "/cacertificate", tt.body, time.Now())
			w := readError(t, e.Do(r))
			if w.Status != tt.status || w.Code != tt.code {
				t.Fatalf("got %d %s %q, want %d %s", w.Status, w.Code, w.Message, tt.status, tt.code)
			}
		})
	}
}

// TestBodyReadTimeout sends bodies byte by byte over a raw connection to a
// real server whose own ReadTimeout is 30 s: a body trickled slower than
// BodyReadTimeout is cut with a clear error and the connection closed long
// before the server's timeout; one that arrives in time is served.
func TestBodyReadTimeout(t *testing.T) {
	e := newEnv(t)
	const readTimeout = 30 * time.Second
	e.Handler.BodyReadTimeout = time.Second
	srv := httptest.NewUnstartedServer(e.Handler)
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	t.Cleanup(srv.Close)

	all := func(n int) int { return n }
	for _, tt := range []struct {
		name   string
		prompt func(n int) int // of n bytes of body, how many are sent at once
		pause  time.Duration   // between the bytes after those
		status int
		code   string
		msg    string
	}{
		{"ok/body at once", all, 0, 200, "", ""},
		{"ok/body trickled within the timeout", func(n int) int { return n - 5 }, 10 * time.Millisecond, 200, "", ""},
		{"fail/body trickled", func(int) int { return 10 }, 50 * time.Millisecond, 408, "InvalidRequestException",
			"The request body did not arrive within 1s"},
		{"fail/body stalled", func(n int) int { return n / 2 }, readTimeout, 408, "InvalidRequestException",
			"The request body did not arrive within 1s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(testwait.Deadline())

			// A fresh certificate each time, so that a served request is 200.
			pemText, _, _ := selfSignedPEM(t, "device")
			body, _ := json.Marshal(map[string]string{"certificatePem": pemText})
			r := e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", body, time.Now())
			var head bytes.Buffer
			fmt.Fprintf(&head, "POST /certificate/register-no-ca HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", testHost, len(body))
			r.Header.Write(&head)
			head.WriteString("\r\n")
			prompt := tt.prompt(len(body))
			if _, err := conn.Write(append(head.Bytes(), body[:prompt]...)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() {
				defer close(trickled)
				for i := prompt; i < len(body); i++ {
					select {
					case <-stop:
						return
					case <-time.After(tt.pause):
					}
					if _, err := conn.Write(body[i : i+1]); err != nil {
						return // the server closed the connection
					}
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			close(stop)
			<-trickled
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			if tt.code == "" {
				if m := readJSON(t, resp); m["certificateId"] == nil {
					t.Fatalf("response %v", m)
				}
				return
			}
			w := readError(t, resp)
			if w.Status != tt.status || w.Code != tt.code || !strings.Contains(w.Message, tt.msg) {
				t.Fatalf("got %d %s %q, want %d %s %q", w.Status, w.Code, w.Message, tt.status, tt.code, tt.msg)
			}
			if elapsed >= readTimeout {
				t.Errorf("cut after %v, not before the server's ReadTimeout", elapsed)
			}
			if !resp.Close {
				t.Error("the response does not say Connection: close")
			}
			// The server lets go of the connection: no wait for the rest.
			if n, err := conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Errorf("connection still open after the response: %d, %v", n, err)
			}
			if rec := e.Logs.Last(t); rec["status"] != "408" || rec["errorCode"] != tt.code || rec["operation"] != "RegisterCertificateWithoutCA" {
				t.Errorf("logged %v", rec)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestBodyReadTimeout_HTTP2 trickles a body over HTTP/2 (TLS), where the
// deadline is the stream's, not the connection's.
func TestBodyReadTimeout_HTTP2(t *testing.T) {
	e := newEnv(t)
	e.Handler.BodyReadTimeout = time.Second
	srv := httptest.NewUnstartedServer(e.Handler)
	srv.EnableHTTP2 = true
	srv.Config.ReadTimeout = 30 * time.Second
	srv.StartTLS()
	t.Cleanup(srv.Close)

	pemText, _, _ := selfSignedPEM(t, "device")
	body, _ := json.Marshal(map[string]string{"certificatePem": pemText})
	signed := e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", body, time.Now())
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", srv.URL+"/certificate/register-no-ca", pr)
	req.Header = signed.Header
	req.Host = testHost
	req.ContentLength = int64(len(body))
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for i := range body {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := pw.Write(body[i : i+1]); err != nil {
				return
			}
		}
	}()
	resp, err := srv.Client().Do(req)
	close(stop)
	pw.CloseWithError(io.ErrClosedPipe)
	<-trickled
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s", resp.Proto)
	}
	if w := readError(t, resp); w.Status != 408 || w.Code != "InvalidRequestException" || !strings.Contains(w.Message, "did not arrive within 1s") {
		t.Fatalf("got %d %s %q", w.Status, w.Code, w.Message)
	}
}
