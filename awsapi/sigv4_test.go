package awsapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
)

// TestAuthenticate signs requests with the AWS SDK's own SigV4 signer and
// tampers with them after signing.
func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	target := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	pemText, _, newID := selfSignedPEM(t, "new device")
	registerBody, _ := json.Marshal(map[string]string{"certificatePem": pemText, "status": "ACTIVE"})
	stranger := &fleetcert.AccessKey{ID: unknownKeyID, Secret: strings.Repeat("s", 40), AccountID: accountA}
	wrongSecret := *e.KeyA
	wrongSecret.Secret = strings.Repeat("x", 40)

	type want struct {
		status int
		code   string
		msg    string // substring of the message
	}
	for _, tt := range []struct {
		name string
		req  func() *http.Request
		want want
	}{
		{"ok/query with several params", func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET",
				"/certificates?pageSize=2&isAscendingOrder=true&zz=a%20b%2Fc~&aa=1&aa=0", nil, now)
		}, want{status: 200}},
		{"ok/body", func() *http.Request {
			return e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", registerBody, now)
		}, want{status: 200}},
		{"ok/x-amz-content-sha256 matching the body", func() *http.Request {
			r := newRequest("GET", "/certificates/"+target, nil)
			r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
			signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "iot", nil, now)
			return r
		}, want{status: 200}},
		{"ok/14 minutes old", func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now.Add(-14*time.Minute))
		}, want{status: 200}},
		{"ok/Date header instead of X-Amz-Date", func() *http.Request {
			r := newRequest("GET", "/certificates/"+target, nil)
			signWithDate(r, e.KeyA, testRegion, now)
			return r
		}, want{status: 200}},
		{"ok/body of unknown length", func() *http.Request {
			r := newRequest("POST", "/certificate/register-no-ca", nil)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(registerBody)))
			r.ContentLength = -1 // chunked: content-length is not signed
			signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "iot", registerBody, now)
			return r
		}, want{409, "ResourceAlreadyExistsException", "already provisioned or registered"}},
		{"fail/Date header tampered", func() *http.Request {
			r := newRequest("GET", "/certificates/"+target, nil)
			signWithDate(r, e.KeyA, testRegion, now)
			r.Header.Set("Date", now.Add(time.Second).UTC().Format(http.TimeFormat))
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/Date header stale", func() *http.Request {
			r := newRequest("GET", "/certificates/"+target, nil)
			signWithDate(r, e.KeyA, testRegion, now.Add(-time.Hour))
			return r
		}, want{403, "InvalidSignatureException", "Signature expired"}},
		{"fail/no authorization header", func() *http.Request {
			return newRequest("GET", "/certificates/"+target, nil)
		}, want{403, "MissingAuthenticationTokenException", "Missing Authentication Token"}},
		{"fail/unknown access key", func() *http.Request {
			return e.Request(stranger, testRegion, "GET", "/certificates/"+target, nil, now)
		}, want{403, "UnrecognizedClientException", "The security token included in the request is invalid."}},
		{"fail/wrong secret", func() *http.Request {
			return e.Request(&wrongSecret, testRegion, "GET", "/certificates/"+target, nil, now)
		}, want{403, "InvalidSignatureException", "The request signature we calculated does not match"}},
		{"fail/tampered body", func() *http.Request {
			// Same length, so only the payload hash can tell.
			body := bytes.Replace(registerBody, []byte(`"ACTIVE"`), []byte(`"REVOKE"`), 1)
			r := e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", registerBody, now)
			r2 := newRequest("POST", "/certificate/register-no-ca", body)
			r2.Header = r.Header
			return r2
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/tampered query", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "PUT", "/certificates/"+target+"?newStatus=INACTIVE", nil, now)
			r.URL.RawQuery = "newStatus=REVOKED"
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/added query parameter", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "DELETE", "/certificates/"+target, nil, now)
			r.URL.RawQuery = "forceDelete=true"
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/tampered path", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "PUT", "/certificates/"+strings.Repeat("0", 64)+"?newStatus=REVOKED", nil, now)
			r.URL.Path = "/certificates/" + target
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/tampered method", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Method = "DELETE"
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/tampered host", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Host = "elsewhere.test"
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/tampered x-amz-date", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("X-Amz-Date", now.Add(time.Second).UTC().Format("20060102T150405Z"))
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/region changed after signing", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/"+testRegion+"/", "/eu-west-1/", 1))
			return r
		}, want{403, "InvalidSignatureException", "does not match"}},
		{"fail/stale date", func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now.Add(-16*time.Minute))
		}, want{403, "InvalidSignatureException", "Signature expired: "}},
		{"fail/future date", func() *http.Request {
			return e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now.Add(16*time.Minute))
		}, want{403, "InvalidSignatureException", "Signature not yet current: "}},
		{"fail/other service", func() *http.Request {
			r := newRequest("GET", "/certificates/"+target, nil)
			signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "s3", nil, now)
			return r
		}, want{404, "UnknownOperationException", "fleetcert does not support the 's3' API; it serves the AWS IoT certificate API"}},
		// What aws iot-data publish sends.
		{"fail/iot data plane", func() *http.Request {
			r := newRequest("POST", "/topics/fleet%2Fx?qos=1", []byte("hi"))
			signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "iotdata", []byte("hi"), now)
			return r
		}, want{404, "UnknownOperationException", "fleetcert does not support the AWS IoT data plane (aws iot-data: Publish"}},
		{"fail/invalid region", func() *http.Request {
			return e.Request(e.KeyA, "US_EAST_1", "GET", "/certificates/"+target, nil, now)
		}, want{403, "InvalidSignatureException", "valid region"}},
		{"fail/unsigned payload", func() *http.Request {
			r := newRequest("POST", "/certificate/register-no-ca", registerBody)
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			creds := aws.Credentials{AccessKeyID: e.KeyA.ID, SecretAccessKey: e.KeyA.Secret}
			if err := v4.NewSigner().SignHTTP(ctx, creds, r, "UNSIGNED-PAYLOAD", "iot", testRegion, now); err != nil {
				t.Fatal(err)
			}
			return r
		}, want{403, "InvalidSignatureException", "x-amz-content-sha256"}},
		{"fail/x-amz-content-sha256 of another body", func() *http.Request {
			r := newRequest("GET", "/certificates/"+target, nil)
			r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64))
			signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "iot", nil, now)
			return r
		}, want{403, "InvalidSignatureException", "x-amz-content-sha256"}},
		{"fail/scope date is not the request date", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			day := now.UTC().Format("20060102")
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/"+day+"/", "/20200101/", 1))
			return r
		}, want{403, "InvalidSignatureException", "Date in Credential scope does not match"}},
		{"fail/no date", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Del("X-Amz-Date")
			return r
		}, want{403, "IncompleteSignatureException", "'X-Amz-Date' or a 'Date' header"}},
		{"fail/malformed date", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("X-Amz-Date", "yesterday")
			return r
		}, want{403, "IncompleteSignatureException", "ISO-8601"}},
		{"fail/other algorithm", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1))
			return r
		}, want{403, "IncompleteSignatureException", "AWS4-HMAC-SHA256"}},
		{"fail/malformed header", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+e.KeyA.ID)
			return r
		}, want{403, "IncompleteSignatureException", "requires 'Signature' parameter"}},
		{"fail/short credential", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/aws4_request", "", 1))
			return r
		}, want{403, "IncompleteSignatureException", "5 slash-delimited elements"}},
		{"fail/host not signed", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;", "SignedHeaders=", 1))
			return r
		}, want{403, "IncompleteSignatureException", "'Host'"}},
		{"fail/signature not hex", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-64]+strings.Repeat("z", 64))
			return r
		}, want{403, "IncompleteSignatureException", "hexadecimal"}},
		{"fail/presigned query only", func() *http.Request {
			r := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+target, nil, now)
			q := url.Values{"X-Amz-Signature": {"00"}}
			r.URL.RawQuery = q.Encode()
			r.Header.Del("Authorization")
			return r
		}, want{403, "MissingAuthenticationTokenException", "Missing Authentication Token"}},
		{"fail/body of unknown length over the limit", func() *http.Request {
			body := make([]byte, awsapi.DefaultMaxBodyBytes+1)
			r := newRequest("POST", "/certificate/register-no-ca", nil)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body)))
			r.ContentLength = -1
			signRequest(t, r, e.KeyA.ID, e.KeyA.Secret, testRegion, "iot", body, now)
			return r
		}, want{413, "InvalidRequestException", "larger than"}},
		{"fail/body over the limit", func() *http.Request {
			body := make([]byte, awsapi.DefaultMaxBodyBytes+1)
			return e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", body, now)
		}, want{413, "InvalidRequestException", "larger than"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.Do(tt.req())
			w := readError(t, resp)
			if w.Status != tt.want.status || w.Code != tt.want.code || !strings.Contains(w.Message, tt.want.msg) {
				t.Fatalf("got %d %s %q, want %d %s %q", w.Status, w.Code, w.Message, tt.want.status, tt.want.code, tt.want.msg)
			}
			if w.Status != 200 {
				if w.ContentType != "application/json" {
					t.Errorf("Content-Type %q", w.ContentType)
				}
				if got := e.Logs.Last(t)["errorCode"]; got != tt.want.code {
					t.Errorf("logged error code %q", got)
				}
			}
		})
	}

	// Nothing the refused requests asked for happened.
	c, err := e.Registry.DescribeCertificate(ctx, fleetcert.Scope{AccountID: accountA, Region: testRegion}, target)
	if err != nil || c.Status != fleetcert.StatusActive || c.CustomerVersion != 1 {
		t.Errorf("target certificate changed: %+v, %v", c, err)
	}
	page, err := e.Registry.ListCertificates(ctx, fleetcert.Scope{AccountID: accountA, Region: testRegion}, fleetcert.ListOptions{})
	if err != nil || len(page.Certificates) != 2 {
		t.Errorf("account holds %d certificates, want the target and %s: %v", len(page.Certificates), newID, err)
	}
	if strings.Contains(e.Logs.String(), e.KeyA.Secret) || strings.Contains(e.Logs.String(), wrongSecret.Secret) {
		t.Error("a secret reached the log")
	}
}

// TestAuthenticate_Client drives the real IoT client with good and bad
// credentials: the SDK sees AWS's codes.
func TestAuthenticate_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	wrongSecret := *e.KeyA
	wrongSecret.Secret = strings.Repeat("x", 40)
	for _, tt := range []struct {
		name   string
		key    *fleetcert.AccessKey
		code   string
		status int
	}{
		{"ok/valid key", e.KeyA, "", 200},
		{"fail/wrong secret", &wrongSecret, "InvalidSignatureException", 403},
		{"fail/unknown key", &fleetcert.AccessKey{ID: unknownKeyID, Secret: e.KeyA.Secret}, "UnrecognizedClientException", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Client(tt.key, testRegion).ListCertificates(ctx, &iot.ListCertificatesInput{PageSize: aws.Int32(5), AscendingOrder: true})
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if code, status := apiError(t, err); code != tt.code || status != tt.status {
				t.Fatalf("got %s %d, want %s %d", code, status, tt.code, tt.status)
			}
		})
	}
}

// TestAuthenticate_NewKey proves that unknown keys are not cached: a key
// stored after it was refused (as `fleetcert keys create` does from another
// process) is accepted on its next request.
func TestAuthenticate_NewKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key := &fleetcert.AccessKey{ID: "AKIANEWKEYNEWKEY0000", Secret: strings.Repeat("n", 40), AccountID: accountB, CreatedAt: time.Now()}
	client := e.Client(key, testRegion)
	_, err := client.ListCertificates(ctx, &iot.ListCertificatesInput{})
	if code, _ := apiError(t, err); code != "UnrecognizedClientException" {
		t.Fatalf("before: %v", err)
	}
	if err := e.Registry.EnsureAccessKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ListCertificates(ctx, &iot.ListCertificatesInput{}); err != nil {
		t.Fatalf("after: %v", err)
	}
}

// signWithDate signs r with a Date header instead of X-Amz-Date, which the
// SDK signers never do: an independent implementation of the SigV4 steps
// for a GET without query or body.
func signWithDate(r *http.Request, key *fleetcert.AccessKey, region string, at time.Time) {
	r.Header.Set("Date", at.UTC().Format(http.TimeFormat))
	amzDate := at.UTC().Format("20060102T150405Z")
	day := amzDate[:8]
	canonical := strings.Join([]string{
		r.Method, r.URL.EscapedPath(), "",
		"date:" + r.Header.Get("Date") + "\nhost:" + r.Host + "\n",
		"date;host", emptySHA256,
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	scope := day + "/" + region + "/iot/aws4_request"
	stringToSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	mac := func(k []byte, data string) []byte {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(data))
		return m.Sum(nil)
	}
	k := mac(mac(mac(mac([]byte("AWS4"+key.Secret), day), region), "iot"), "aws4_request")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key.ID+"/"+scope+
		", SignedHeaders=date;host, Signature="+hex.EncodeToString(mac(k, stringToSign)))
}
