package awsapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
)

// TestCertificates_Client drives every implemented operation with the real
// aws-sdk-go-v2 IoT client.
func TestCertificates_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	client := e.Client(e.KeyA, testRegion)
	start := time.Now()

	pemText, der, id := selfSignedPEM(t, "device-1")
	x509Cert, _ := x509.ParseCertificate(der)
	var registered *iot.RegisterCertificateWithoutCAOutput

	t.Run("ok/RegisterCertificateWithoutCA", func(t *testing.T) {
		out, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
			CertificatePem: aws.String(pemText), Status: types.CertificateStatusActive,
		})
		if err != nil {
			t.Fatal(err)
		}
		registered = out
		wantARN := fmt.Sprintf("arn:aws:iot:%s:%s:cert/%s", testRegion, accountA, id)
		if aws.ToString(out.CertificateId) != id || aws.ToString(out.CertificateArn) != wantARN {
			t.Fatalf("got %s %s, want %s %s", aws.ToString(out.CertificateId), aws.ToString(out.CertificateArn), id, wantARN)
		}
	})
	if registered == nil {
		t.FailNow()
	}

	t.Run("fail/RegisterCertificateWithoutCA duplicate", func(t *testing.T) {
		_, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pemText)})
		var dup *types.ResourceAlreadyExistsException
		if !errors.As(err, &dup) {
			t.Fatalf("got %v, want ResourceAlreadyExistsException", err)
		}
		if _, status := apiError(t, err); status != 409 {
			t.Errorf("status %d", status)
		}
		if aws.ToString(dup.ResourceId) != id || aws.ToString(dup.ResourceArn) != aws.ToString(registered.CertificateArn) {
			t.Errorf("resourceId %q resourceArn %q", aws.ToString(dup.ResourceId), aws.ToString(dup.ResourceArn))
		}
	})

	t.Run("ok/DescribeCertificate", func(t *testing.T) {
		out, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		d := out.CertificateDescription
		if aws.ToString(d.CertificateId) != id || aws.ToString(d.CertificateArn) != aws.ToString(registered.CertificateArn) ||
			d.Status != types.CertificateStatusActive || aws.ToString(d.CertificatePem) != pemText ||
			d.CertificateMode != types.CertificateModeSniOnly || aws.ToString(d.OwnedBy) != accountA ||
			d.CustomerVersion == nil || *d.CustomerVersion != 1 || aws.ToString(d.GenerationId) == "" {
			t.Errorf("description %+v", d)
		}
		if d.CaCertificateId != nil || d.PreviousOwnedBy != nil || d.TransferData != nil {
			t.Errorf("empty optional members sent: %+v", d)
		}
		if c := aws.ToTime(d.CreationDate); c.Before(start.Truncate(time.Second)) || c.After(time.Now()) {
			t.Errorf("creationDate %v", c)
		}
		if !aws.ToTime(d.LastModifiedDate).Equal(aws.ToTime(d.CreationDate)) {
			t.Errorf("lastModifiedDate %v", d.LastModifiedDate)
		}
		if d.Validity == nil || !aws.ToTime(d.Validity.NotBefore).Equal(x509Cert.NotBefore) || !aws.ToTime(d.Validity.NotAfter).Equal(x509Cert.NotAfter) {
			t.Errorf("validity %+v, want %v – %v", d.Validity, x509Cert.NotBefore, x509Cert.NotAfter)
		}
	})

	t.Run("fail/DeleteCertificate while ACTIVE", func(t *testing.T) {
		_, err := client.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(id)})
		var se *types.CertificateStateException
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want CertificateStateException", err)
		}
		if _, status := apiError(t, err); status != 406 {
			t.Errorf("status %d", status)
		}
	})

	t.Run("ok/UpdateCertificate", func(t *testing.T) {
		for _, st := range []types.CertificateStatus{types.CertificateStatusInactive, types.CertificateStatusInactive, types.CertificateStatusActive} {
			if _, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: st}); err != nil {
				t.Fatalf("to %s: %v", st, err)
			}
		}
		out, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil || out.CertificateDescription.Status != types.CertificateStatusActive || *out.CertificateDescription.CustomerVersion != 3 {
			t.Fatalf("after updates: %+v %v", out, err)
		}
	})

	t.Run("fail/UpdateCertificate to PENDING_TRANSFER", func(t *testing.T) {
		_, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusPendingTransfer})
		var ir *types.InvalidRequestException
		if !errors.As(err, &ir) {
			t.Fatalf("got %v, want InvalidRequestException", err)
		}
	})

	t.Run("fail/UpdateCertificate REVOKED to ACTIVE", func(t *testing.T) {
		if _, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked}); err != nil {
			t.Fatal(err)
		}
		_, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusActive})
		var se *types.CertificateStateException
		if !errors.As(err, &se) {
			t.Fatalf("got %v, want CertificateStateException", err)
		}
	})

	t.Run("ok/DeleteCertificate forceDelete", func(t *testing.T) {
		if _, err := client.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(id), ForceDelete: true}); err != nil {
			t.Fatal(err)
		}
		_, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("after delete: %v", err)
		}
		if _, status := apiError(t, err); status != 404 {
			t.Errorf("status %d", status)
		}
	})

	t.Run("ok/CreateKeysAndCertificate", func(t *testing.T) {
		out, err := client.CreateKeysAndCertificate(ctx, &iot.CreateKeysAndCertificateInput{SetAsActive: true})
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(aws.ToString(out.CertificatePem)))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		keyBlock, _ := pem.Decode([]byte(aws.ToString(out.KeyPair.PrivateKey)))
		priv, err := x509.ParsePKCS1PrivateKey(keyBlock.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !priv.PublicKey.Equal(cert.PublicKey) || !strings.Contains(aws.ToString(out.KeyPair.PublicKey), "PUBLIC KEY") {
			t.Error("key pair does not match the certificate")
		}
		d, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: out.CertificateId})
		if err != nil || d.CertificateDescription.Status != types.CertificateStatusActive || d.CertificateDescription.CertificateMode != types.CertificateModeDefault {
			t.Fatalf("%+v %v", d, err)
		}
	})

	t.Run("ok/CreateCertificateFromCsr", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "csr-device"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
		out, err := client.CreateCertificateFromCsr(ctx, &iot.CreateCertificateFromCsrInput{CertificateSigningRequest: aws.String(csrPEM)})
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(aws.ToString(out.CertificatePem)))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !key.PublicKey.Equal(cert.PublicKey) || cert.Subject.CommonName != "csr-device" {
			t.Error("certificate is not for the CSR")
		}
		d, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: out.CertificateId})
		if err != nil || d.CertificateDescription.Status != types.CertificateStatusInactive {
			t.Fatalf("%+v %v", d, err)
		}
	})

	t.Run("fail/CreateCertificateFromCsr not a CSR", func(t *testing.T) {
		_, err := client.CreateCertificateFromCsr(ctx, &iot.CreateCertificateFromCsrInput{CertificateSigningRequest: aws.String("hello")})
		var ir *types.InvalidRequestException
		if !errors.As(err, &ir) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("fail/DescribeCertificate invalid id", func(t *testing.T) {
		_, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String("abc")})
		var ir *types.InvalidRequestException
		if !errors.As(err, &ir) {
			t.Fatalf("got %v", err)
		}
		if _, status := apiError(t, err); status != 400 {
			t.Errorf("status %d", status)
		}
	})

	t.Run("fail/RegisterCertificateWithoutCA PEM too long", func(t *testing.T) {
		_, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
			// Spaces, not newlines: the body stays under the body limit, so
			// the Registry's length rule answers.
			CertificatePem: aws.String(pemText + strings.Repeat(" ", fleetcert.MaxCertificatePEM)),
		})
		var ir *types.InvalidRequestException
		if !errors.As(err, &ir) || !strings.Contains(ir.ErrorMessage(), "65536") {
			t.Fatalf("got %v", err)
		}
		if _, status := apiError(t, err); status != 400 {
			t.Errorf("status %d", status)
		}
	})

	t.Run("fail/RegisterCertificateWithoutCA not a certificate", func(t *testing.T) {
		_, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String("garbage")})
		var cv *types.CertificateValidationException
		if !errors.As(err, &cv) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestListCertificates_Client pages through a listing with the IoT client.
func TestListCertificates_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	client := e.Client(e.KeyA, testRegion)
	var ids []string // in creation order
	for i := 0; i < 5; i++ {
		ids = append(ids, e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive))
	}
	list := func(t *testing.T, ascending bool, pageSize int32) (got []string, pages int) {
		in := &iot.ListCertificatesInput{PageSize: aws.Int32(pageSize), AscendingOrder: ascending}
		for {
			out, err := client.ListCertificates(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range out.Certificates {
				if c.Status != types.CertificateStatusInactive || c.CertificateMode != types.CertificateModeSniOnly ||
					!strings.HasSuffix(aws.ToString(c.CertificateArn), ":cert/"+aws.ToString(c.CertificateId)) || c.CreationDate == nil {
					t.Errorf("item %+v", c)
				}
				got = append(got, aws.ToString(c.CertificateId))
			}
			if out.NextMarker == nil {
				return got, pages
			}
			in.Marker = out.NextMarker
		}
	}
	t.Run("ok/ascending", func(t *testing.T) {
		got, pages := list(t, true, 2)
		if !reflect.DeepEqual(got, ids) || pages != 3 {
			t.Errorf("got %v in %d pages, want %v in 3", got, pages, ids)
		}
	})
	t.Run("ok/descending by default", func(t *testing.T) {
		got, _ := list(t, false, 250)
		for i := range ids {
			if got[i] != ids[len(ids)-1-i] {
				t.Fatalf("got %v, want newest first", got)
			}
		}
	})
	for _, tt := range []struct {
		name string
		in   *iot.ListCertificatesInput
	}{
		{"fail/pageSize 0", &iot.ListCertificatesInput{PageSize: aws.Int32(0)}},
		{"fail/pageSize 251", &iot.ListCertificatesInput{PageSize: aws.Int32(251)}},
		{"fail/marker not base64", &iot.ListCertificatesInput{Marker: aws.String("!!notamarker")}},
		{"fail/marker not ours", &iot.ListCertificatesInput{Marker: aws.String("aGVsbG8=")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.ListCertificates(ctx, tt.in)
			var ir *types.InvalidRequestException
			if !errors.As(err, &ir) {
				t.Fatalf("got %v, want InvalidRequestException", err)
			}
			if _, status := apiError(t, err); status != 400 {
				t.Errorf("status %d", status)
			}
		})
	}
}

// TestCertificates_Isolation checks that accounts and regions see only
// their own certificates.
func TestCertificates_Isolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pemText, _, id := selfSignedPEM(t, "shared")
	a := e.Client(e.KeyA, testRegion)
	b := e.Client(e.KeyB, testRegion)
	aEU := e.Client(e.KeyA, "eu-west-1")
	if _, err := a.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pemText)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		client *iot.Client
	}{
		{"fail/other account", b},
		{"fail/other region", aEU},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var nf *types.ResourceNotFoundException
			_, err := tt.client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
			if !errors.As(err, &nf) {
				t.Errorf("describe: %v", err)
			}
			_, err = tt.client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked})
			if !errors.As(err, &nf) {
				t.Errorf("update: %v", err)
			}
			_, err = tt.client.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(id)})
			if !errors.As(err, &nf) {
				t.Errorf("delete: %v", err)
			}
			out, err := tt.client.ListCertificates(ctx, &iot.ListCertificatesInput{})
			if err != nil || len(out.Certificates) != 0 {
				t.Errorf("list: %+v %v", out, err)
			}
		})
	}
	t.Run("ok/same certificate in another account", func(t *testing.T) {
		out, err := b.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pemText)})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("arn:aws:iot:%s:%s:cert/%s", testRegion, accountB, id); aws.ToString(out.CertificateArn) != want {
			t.Errorf("arn %s, want %s", aws.ToString(out.CertificateArn), want)
		}
		d, err := a.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil || d.CertificateDescription.Status != types.CertificateStatusInactive || aws.ToString(d.CertificateDescription.OwnedBy) != accountA {
			t.Errorf("account A's record: %+v %v", d, err)
		}
	})
}

// TestCertificates_Wire checks the bytes on the wire: member names, omitted
// members, timestamp format, empty bodies, and how bad members are refused.
func TestCertificates_Wire(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	do := func(method, target string, body []byte) *httpResponse {
		resp := e.Do(e.Request(e.KeyA, testRegion, method, target, body, now))
		b, _ := io.ReadAll(resp.Body)
		return &httpResponse{resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), resp.Header.Get("Content-Length"), b}
	}

	t.Run("ok/DescribeCertificate members", func(t *testing.T) {
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, now)))
		d := m["certificateDescription"].(map[string]any)
		var keys []string
		for k := range d {
			keys = append(keys, k)
		}
		want := []string{"certificateArn", "certificateId", "certificateMode", "certificatePem", "creationDate",
			"customerVersion", "generationId", "lastModifiedDate", "ownedBy", "status", "validity"}
		if !sameSet(keys, want) {
			t.Errorf("members %v, want %v", keys, want)
		}
		for _, v := range []any{d["creationDate"], d["lastModifiedDate"], d["validity"].(map[string]any)["notAfter"]} {
			n, ok := v.(json.Number)
			if !ok {
				t.Fatalf("timestamp %v (%T) is not a number", v, v)
			}
			if f, err := n.Float64(); err != nil || f < 1e9 || f > 4e9 || len(strings.SplitAfter(n.String(), ".")) > 1 && len(strings.Split(n.String(), ".")[1]) > 3 {
				t.Errorf("timestamp %s is not epoch seconds with a millisecond fraction", n)
			}
		}
	})

	t.Run("ok/ListCertificates last page has no nextMarker", func(t *testing.T) {
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates?pageSize=1", nil, now)))
		if _, ok := m["nextMarker"]; ok {
			t.Errorf("nextMarker on the last page: %v", m)
		}
		item := m["certificates"].([]any)[0].(map[string]any)
		var keys []string
		for k := range item {
			keys = append(keys, k)
		}
		if want := []string{"certificateArn", "certificateId", "status", "certificateMode", "creationDate"}; !sameSet(keys, want) {
			t.Errorf("item members %v, want %v", keys, want)
		}
	})

	t.Run("ok/ListCertificates empty", func(t *testing.T) {
		r := do("GET", "/certificates", nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		other := e.Do(e.Request(e.KeyB, testRegion, "GET", "/certificates", nil, now))
		b, _ := io.ReadAll(other.Body)
		if string(b) != `{"certificates":[]}` {
			t.Errorf("empty listing %s", b)
		}
	})

	for _, tt := range []struct {
		name, method, target string
		body                 string
		status               int
		code                 string
	}{
		{"ok/UpdateCertificate empty body", "PUT", "/certificates/" + id + "?newStatus=ACTIVE", "", 200, ""},
		{"ok/unknown body members ignored", "POST", "/keys-and-certificate", `{"x":1}`, 200, ""},
		{"fail/pageSize not an integer", "GET", "/certificates?pageSize=ten", "", 400, "InvalidRequestException"},
		{"fail/isAscendingOrder not a boolean", "GET", "/certificates?isAscendingOrder=1", "", 400, "InvalidRequestException"},
		{"fail/setAsActive not a boolean", "POST", "/keys-and-certificate?setAsActive=yes", "", 400, "InvalidRequestException"},
		{"fail/forceDelete not a boolean", "DELETE", "/certificates/" + id + "?forceDelete=maybe", "", 400, "InvalidRequestException"},
		{"fail/newStatus missing", "PUT", "/certificates/" + id, "", 400, "InvalidRequestException"},
		{"fail/newStatus unknown", "PUT", "/certificates/" + id + "?newStatus=SLEEPING", "", 400, "InvalidRequestException"},
		{"fail/malformed JSON", "POST", "/certificate/register-no-ca", `{"certificatePem": `, 400, "InvalidRequestException"},
		{"fail/body not an object", "POST", "/certificate/register-no-ca", `["x"]`, 400, "InvalidRequestException"},
		{"fail/member of the wrong type", "POST", "/certificate/register-no-ca", `{"certificatePem": 5}`, 400, "InvalidRequestException"},
		{"fail/certificatePem missing", "POST", "/certificate/register-no-ca", `{"status": "ACTIVE"}`, 400, "InvalidRequestException"},
		{"fail/certificatePem null", "POST", "/certificate/register-no-ca", `{"certificatePem": null}`, 400, "InvalidRequestException"},
		{"fail/certificateSigningRequest missing", "POST", "/certificates", `{}`, 400, "InvalidRequestException"},
		{"fail/DescribeCertificate unknown id", "GET", "/certificates/" + strings.Repeat("0", 64), "", 404, "ResourceNotFoundException"},
		{"fail/DescribeCertificate id not hex", "GET", "/certificates/" + strings.Repeat("g", 64), "", 400, "InvalidRequestException"},
		{"fail/DeleteCertificate ACTIVE", "DELETE", "/certificates/" + id, "", 406, "CertificateStateException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			r := do(tt.method, tt.target, body)
			if r.status != tt.status || r.code != tt.code {
				t.Fatalf("got %d %s %s, want %d %s", r.status, r.code, r.body, tt.status, tt.code)
			}
			if tt.code == "" && tt.method == "PUT" && (len(r.body) != 0 || r.contentLength != "0") {
				t.Errorf("body %q, Content-Length %q; want empty", r.body, r.contentLength)
			}
		})
	}

	t.Run("ok/DeleteCertificate empty body", func(t *testing.T) {
		if r := do("PUT", "/certificates/"+id+"?newStatus=INACTIVE", nil); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r := do("DELETE", "/certificates/"+id+"?forceDelete=false", nil)
		if r.status != 200 || len(r.body) != 0 {
			t.Fatalf("%d %q", r.status, r.body)
		}
	})

	t.Run("fail/duplicate names the existing certificate", func(t *testing.T) {
		pemText, _, dupID := selfSignedPEM(t, "dup")
		body, _ := json.Marshal(map[string]string{"certificatePem": pemText})
		do("POST", "/certificate/register-no-ca", body)
		w := readError(t, e.Do(e.Request(e.KeyA, testRegion, "POST", "/certificate/register-no-ca", body, now)))
		if w.Status != 409 || w.Code != "ResourceAlreadyExistsException" || w.ResourceID != dupID ||
			w.ResourceARN != "arn:aws:iot:"+testRegion+":"+accountA+":cert/"+dupID {
			t.Errorf("got %+v", w)
		}
	})
}

type httpResponse struct {
	status        int
	code          string
	contentLength string
	body          []byte
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}
