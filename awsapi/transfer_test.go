package awsapi_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// TestTransfer_Client moves certificates between accounts A and B with the
// real aws-sdk-go-v2 IoT client: accept, reject, cancel, and every refusal.
func TestTransfer_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.Client(e.KeyA, testRegion)
	b := e.Client(e.KeyB, testRegion)
	start := time.Now()

	describe := func(t *testing.T, client *iot.Client, id string) *types.CertificateDescription {
		t.Helper()
		out, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return out.CertificateDescription
	}
	gone := func(t *testing.T, client *iot.Client, id string) {
		t.Helper()
		_, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		wantError[*types.ResourceNotFoundException](t, err, 404)
	}
	transfer := func(t *testing.T, id, message string) {
		t.Helper()
		out, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(id), TargetAwsAccount: aws.String(accountB), TransferMessage: aws.String(message)})
		if err != nil {
			t.Fatal(err)
		}
		// The ARN names the certificate in the target account, as AWS.
		if want := fmt.Sprintf("arn:aws:iot:%s:%s:cert/%s", testRegion, accountB, id); aws.ToString(out.TransferredCertificateArn) != want {
			t.Errorf("transferredCertificateArn %s, want %s", aws.ToString(out.TransferredCertificateArn), want)
		}
	}
	outgoing := func(t *testing.T) []types.OutgoingCertificate {
		t.Helper()
		out, err := a.ListOutgoingCertificates(ctx, &iot.ListOutgoingCertificatesInput{})
		if err != nil {
			t.Fatal(err)
		}
		return out.OutgoingCertificates
	}

	accepted := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
	t.Run("ok/TransferCertificate", func(t *testing.T) {
		transfer(t, accepted, "for fleet B")
		d := describe(t, a, accepted)
		if d.Status != types.CertificateStatusPendingTransfer || d.TransferData == nil {
			t.Fatalf("source's certificate %+v", d)
		}
		td := d.TransferData
		if aws.ToString(td.TransferMessage) != "for fleet B" || td.TransferDate == nil || aws.ToTime(td.TransferDate).Before(start.Truncate(time.Second)) ||
			td.AcceptDate != nil || td.RejectDate != nil || td.RejectReason != nil {
			t.Errorf("transferData %+v", td)
		}
		in := describe(t, b, accepted)
		if in.Status != types.CertificateStatusPendingTransfer || aws.ToString(in.OwnedBy) != accountA {
			t.Errorf("target's certificate %+v", in)
		}
		list, err := b.ListCertificates(ctx, &iot.ListCertificatesInput{})
		if err != nil || len(list.Certificates) != 1 || aws.ToString(list.Certificates[0].CertificateId) != accepted {
			t.Errorf("target's listing %+v %v", list, err)
		}
	})

	t.Run("ok/ListOutgoingCertificates", func(t *testing.T) {
		out := outgoing(t)
		if len(out) != 1 {
			t.Fatalf("outgoing %+v", out)
		}
		o := out[0]
		if aws.ToString(o.CertificateId) != accepted || aws.ToString(o.CertificateArn) != fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountA, Region: testRegion}, accepted) ||
			aws.ToString(o.TransferredTo) != accountB || aws.ToString(o.TransferMessage) != "for fleet B" || o.TransferDate == nil || o.CreationDate == nil {
			t.Errorf("outgoing %+v", o)
		}
		in, err := b.ListOutgoingCertificates(ctx, &iot.ListOutgoingCertificatesInput{})
		if err != nil || len(in.OutgoingCertificates) != 0 {
			t.Errorf("target's outgoing %+v %v", in, err)
		}
	})

	t.Run("fail/while pending", func(t *testing.T) {
		_, err := a.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(accepted), NewStatus: types.CertificateStatusActive})
		wantError[*types.CertificateStateException](t, err, 406)
		_, err = a.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(accepted)})
		wantError[*types.CertificateStateException](t, err, 406)
		_, err = a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(accepted), TargetAwsAccount: aws.String("333333333333")})
		wantError[*types.CertificateStateException](t, err, 406)
		// Each side ends the transfer its own way.
		_, err = a.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(accepted)})
		wantError[*types.InvalidRequestException](t, err, 400)
		_, err = a.RejectCertificateTransfer(ctx, &iot.RejectCertificateTransferInput{CertificateId: aws.String(accepted)})
		wantError[*types.InvalidRequestException](t, err, 400)
		_, err = b.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(accepted)})
		wantError[*types.InvalidRequestException](t, err, 400)
		_, err = b.RejectCertificateTransfer(ctx, &iot.RejectCertificateTransferInput{CertificateId: aws.String(accepted), RejectReason: aws.String(strings.Repeat("x", 129))})
		wantError[*types.InvalidRequestException](t, err, 400)
	})

	t.Run("ok/AcceptCertificateTransfer setAsActive", func(t *testing.T) {
		if _, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(accepted), SetAsActive: true}); err != nil {
			t.Fatal(err)
		}
		d := describe(t, b, accepted)
		if d.Status != types.CertificateStatusActive || aws.ToString(d.OwnedBy) != accountB || aws.ToString(d.PreviousOwnedBy) != accountA {
			t.Errorf("accepted certificate %+v", d)
		}
		if td := d.TransferData; td == nil || td.AcceptDate == nil || td.TransferDate == nil || aws.ToString(td.TransferMessage) != "for fleet B" ||
			td.RejectDate != nil || td.RejectReason != nil {
			t.Errorf("transferData %+v", td)
		}
		gone(t, a, accepted)
		if out := outgoing(t); len(out) != 0 {
			t.Errorf("still outgoing: %+v", out)
		}
	})

	t.Run("fail/accepted transfer is over", func(t *testing.T) {
		_, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(accepted)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
		_, err = b.RejectCertificateTransfer(ctx, &iot.RejectCertificateTransferInput{CertificateId: aws.String(accepted)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
		_, err = a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(accepted)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
	})

	rejected := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
	t.Run("ok/RejectCertificateTransfer with reason", func(t *testing.T) {
		transfer(t, rejected, "")
		if _, err := b.RejectCertificateTransfer(ctx, &iot.RejectCertificateTransferInput{CertificateId: aws.String(rejected), RejectReason: aws.String("not ours")}); err != nil {
			t.Fatal(err)
		}
		d := describe(t, a, rejected)
		if d.Status != types.CertificateStatusInactive || aws.ToString(d.OwnedBy) != accountA || d.PreviousOwnedBy != nil {
			t.Errorf("rejected certificate %+v", d)
		}
		if td := d.TransferData; td == nil || aws.ToString(td.RejectReason) != "not ours" || td.RejectDate == nil || td.TransferDate == nil ||
			td.AcceptDate != nil || td.TransferMessage != nil {
			t.Errorf("transferData %+v", td)
		}
		gone(t, b, rejected)
		_, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(rejected)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
		_, err = a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(rejected)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
	})

	t.Run("ok/transfer again after a rejection", func(t *testing.T) {
		transfer(t, rejected, "second try")
		if _, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(rejected)}); err != nil {
			t.Fatal(err)
		}
		if d := describe(t, b, rejected); d.Status != types.CertificateStatusInactive || aws.ToString(d.OwnedBy) != accountB {
			t.Errorf("accepted certificate %+v", d)
		}
	})

	cancelled := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
	t.Run("ok/CancelCertificateTransfer", func(t *testing.T) {
		transfer(t, cancelled, "oops")
		if _, err := a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(cancelled)}); err != nil {
			t.Fatal(err)
		}
		d := describe(t, a, cancelled)
		if d.Status != types.CertificateStatusInactive || aws.ToString(d.OwnedBy) != accountA {
			t.Errorf("cancelled certificate %+v", d)
		}
		gone(t, b, cancelled)
		if out := outgoing(t); len(out) != 0 {
			t.Errorf("still outgoing: %+v", out)
		}
		_, err := a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(cancelled)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
		_, err = b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(cancelled)})
		wantError[*types.TransferAlreadyCompletedException](t, err, 410)
	})

	t.Run("fail/ACTIVE certificate", func(t *testing.T) {
		id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
		_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(id), TargetAwsAccount: aws.String(accountB)})
		wantError[*types.CertificateStateException](t, err, 406)
	})

	t.Run("fail/certificate registered under a CA", func(t *testing.T) {
		ca := testpki.New(t, testpki.Options{IsCA: true})
		mustRegisterCA(t, a, ca, types.CertificateModeSniOnly, true)
		out, err := a.RegisterCertificate(ctx, &iot.RegisterCertificateInput{CertificatePem: aws.String(testpki.New(t, testpki.Options{Parent: ca}).PEM)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: out.CertificateId, TargetAwsAccount: aws.String(accountB)})
		wantError[*types.CertificateStateException](t, err, 406)
	})

	t.Run("fail/target already has the certificate", func(t *testing.T) {
		pemText, _, id := selfSignedPEM(t, "both")
		for _, c := range []*iot.Client{a, b} {
			if _, err := c.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pemText)}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(id), TargetAwsAccount: aws.String(accountB)})
		wantError[*types.TransferConflictException](t, err, 409)
	})

	unknown := strings.Repeat("0", 64)
	inactive := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
	for _, tt := range []struct {
		name  string
		call  func() error
		check func(t *testing.T, err error)
	}{
		{"fail/TransferCertificate unknown certificate", func() error {
			_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(unknown), TargetAwsAccount: aws.String(accountB)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.ResourceNotFoundException](t, err, 404) }},
		{"fail/TransferCertificate another account's certificate", func() error {
			_, err := b.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(inactive), TargetAwsAccount: aws.String(accountA)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.ResourceNotFoundException](t, err, 404) }},
		{"fail/TransferCertificate to its owner", func() error {
			_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(inactive), TargetAwsAccount: aws.String(accountA)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/TransferCertificate targetAwsAccount not an account", func() error {
			_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(inactive), TargetAwsAccount: aws.String("12345")})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/TransferCertificate message too long", func() error {
			_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String(inactive), TargetAwsAccount: aws.String(accountB),
				TransferMessage: aws.String(strings.Repeat("m", 129))})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/TransferCertificate invalid id", func() error {
			_, err := a.TransferCertificate(ctx, &iot.TransferCertificateInput{CertificateId: aws.String("abc"), TargetAwsAccount: aws.String(accountB)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/AcceptCertificateTransfer no transfer", func() error {
			_, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String(inactive)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.ResourceNotFoundException](t, err, 404) }},
		{"fail/RejectCertificateTransfer no transfer", func() error {
			_, err := b.RejectCertificateTransfer(ctx, &iot.RejectCertificateTransferInput{CertificateId: aws.String(unknown)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.ResourceNotFoundException](t, err, 404) }},
		{"fail/CancelCertificateTransfer no transfer", func() error {
			_, err := a.CancelCertificateTransfer(ctx, &iot.CancelCertificateTransferInput{CertificateId: aws.String(inactive)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.ResourceNotFoundException](t, err, 404) }},
		{"fail/AcceptCertificateTransfer invalid id", func() error {
			_, err := b.AcceptCertificateTransfer(ctx, &iot.AcceptCertificateTransferInput{CertificateId: aws.String("xyz")})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/ListOutgoingCertificates pageSize 0", func() error {
			_, err := a.ListOutgoingCertificates(ctx, &iot.ListOutgoingCertificatesInput{PageSize: aws.Int32(0)})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
		{"fail/ListOutgoingCertificates marker not ours", func() error {
			_, err := a.ListOutgoingCertificates(ctx, &iot.ListOutgoingCertificatesInput{Marker: aws.String("aGVsbG8=")})
			return err
		}, func(t *testing.T, err error) { wantError[*types.InvalidRequestException](t, err, 400) }},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, tt.call()) })
	}

	t.Run("ok/ListOutgoingCertificates pages", func(t *testing.T) {
		var ids []string
		for i := 0; i < 3; i++ {
			id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
			transfer(t, id, fmt.Sprint("batch ", i))
			ids = append(ids, id)
		}
		var got []string
		in := &iot.ListOutgoingCertificatesInput{PageSize: aws.Int32(2), AscendingOrder: true}
		pages := 0
		for {
			out, err := a.ListOutgoingCertificates(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, o := range out.OutgoingCertificates {
				got = append(got, aws.ToString(o.CertificateId))
			}
			if out.NextMarker == nil {
				break
			}
			in.Marker = out.NextMarker
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") || pages != 2 {
			t.Errorf("got %v in %d pages, want %v in 2", got, pages, ids)
		}
	})
}

// TestTransfer_Wire checks the members of the transfer responses on the
// wire: transferData with only the dates that happened, the outgoing list's
// member names, and empty bodies.
func TestTransfer_Wire(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	id := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusInactive)
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return ks
	}
	do := func(key *fleetcert.AccessKey, method, target, body string) *httpResponse {
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		resp := e.Do(e.Request(key, testRegion, method, target, b, now))
		rb, _ := io.ReadAll(resp.Body)
		return &httpResponse{resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), resp.Header.Get("Content-Length"), rb}
	}

	for _, tt := range []struct {
		name, target, body string
		status             int
		code               string
	}{
		{"fail/targetAwsAccount missing", "/transfer-certificate/" + id, "", 400, "InvalidRequestException"},
		{"fail/transferMessage not a string", "/transfer-certificate/" + id + "?targetAwsAccount=" + accountB, `{"transferMessage":5}`, 400, "InvalidRequestException"},
		{"fail/setAsActive not a boolean", "/accept-certificate-transfer/" + id + "?setAsActive=maybe", "", 400, "InvalidRequestException"},
		{"fail/rejectReason not a string", "/reject-certificate-transfer/" + id, `{"rejectReason":["no"]}`, 400, "InvalidRequestException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := e.KeyA
			if strings.HasPrefix(tt.target, "/accept") || strings.HasPrefix(tt.target, "/reject") {
				key = e.KeyB
			}
			if r := do(key, "PATCH", tt.target, tt.body); r.status != tt.status || r.code != tt.code {
				t.Fatalf("got %d %s %s, want %d %s", r.status, r.code, r.body, tt.status, tt.code)
			}
		})
	}

	if r := do(e.KeyA, "GET", "/certificates-out-going", ""); r.status != 200 || string(r.body) != `{"outgoingCertificates":[]}` {
		t.Fatalf("empty outgoing list: %d %s", r.status, r.body)
	}
	m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "PATCH", "/transfer-certificate/"+id+"?targetAwsAccount="+accountB, []byte(`{"transferMessage":"hi"}`), now)))
	if !sameSet(keys(m), []string{"transferredCertificateArn"}) {
		t.Fatalf("TransferCertificate %v", m)
	}

	t.Run("ok/ListOutgoingCertificates members", func(t *testing.T) {
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates-out-going?pageSize=1", nil, now)))
		items, _ := m["outgoingCertificates"].([]any)
		if len(m) != 1 || len(items) != 1 {
			t.Fatalf("got %v", m)
		}
		want := []string{"certificateArn", "certificateId", "transferredTo", "transferDate", "transferMessage", "creationDate"}
		if item := items[0].(map[string]any); !sameSet(keys(item), want) || item["transferredTo"] != accountB {
			t.Errorf("item %v, want members %v", item, want)
		}
	})

	t.Run("ok/transferData while pending", func(t *testing.T) {
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, now)))
		td, _ := m["certificateDescription"].(map[string]any)["transferData"].(map[string]any)
		if want := []string{"transferMessage", "transferDate"}; !sameSet(keys(td), want) {
			t.Errorf("transferData %v, want members %v", td, want)
		}
	})

	t.Run("ok/RejectCertificateTransfer empty body", func(t *testing.T) {
		r := do(e.KeyB, "PATCH", "/reject-certificate-transfer/"+id, `{"rejectReason":"no thanks"}`)
		if r.status != 200 || len(r.body) != 0 || r.contentLength != "0" {
			t.Fatalf("%d %q", r.status, r.body)
		}
		m := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, now)))
		d := m["certificateDescription"].(map[string]any)
		td, _ := d["transferData"].(map[string]any)
		if want := []string{"transferMessage", "transferDate", "rejectReason", "rejectDate"}; !sameSet(keys(td), want) {
			t.Errorf("transferData %v, want members %v", td, want)
		}
		if _, ok := d["previousOwnedBy"]; ok {
			t.Errorf("previousOwnedBy sent: %v", d)
		}
	})

	t.Run("fail/RejectCertificateTransfer again", func(t *testing.T) {
		if r := do(e.KeyB, "PATCH", "/reject-certificate-transfer/"+id, ""); r.status != 410 || r.code != "TransferAlreadyCompletedException" {
			t.Fatalf("got %d %s %s", r.status, r.code, r.body)
		}
	})

	t.Run("ok/cancel leaves no transferData", func(t *testing.T) {
		r := do(e.KeyA, "PATCH", "/transfer-certificate/"+id+"?targetAwsAccount="+accountB, "")
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := do(e.KeyA, "PATCH", "/cancel-certificate-transfer/"+id, ""); r.status != 200 || len(r.body) != 0 {
			t.Fatalf("%d %q", r.status, r.body)
		}
		d := readJSON(t, e.Do(e.Request(e.KeyA, testRegion, "GET", "/certificates/"+id, nil, now)))["certificateDescription"].(map[string]any)
		if _, ok := d["transferData"]; ok || d["status"] != "INACTIVE" {
			t.Errorf("after cancel %v", d)
		}
	})
}
