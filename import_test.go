package fleetcert_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

func TestImportCertificates(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	ca := testpki.New(t, testpki.Options{IsCA: true, CommonName: "import CA"})
	caRec := registerCA(t, reg, scope, ca, fleetcert.RegisterCAInput{SetAsActive: true})
	inactiveCA := testpki.New(t, testpki.Options{IsCA: true, CommonName: "inactive CA"})
	inactiveRec := registerCA(t, reg, scope, inactiveCA, fleetcert.RegisterCAInput{})
	registered := testpki.Leaf(t)
	if _, err := reg.RegisterCertificateWithoutCA(ctx, scope, registered.PEM, fleetcert.StatusActive); err != nil {
		t.Fatal(err)
	}

	leaves := func(n int, parent *testpki.Cert) []*x509.Certificate {
		var out []*x509.Certificate
		for range n {
			out = append(out, testpki.New(t, testpki.Options{Parent: parent}).Cert)
		}
		return out
	}
	expired := testpki.New(t, testpki.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}).Cert
	tooMany := make([]*x509.Certificate, fleetcert.MaxImportBatch+1)
	for i := range tooMany {
		tooMany[i] = registered.Cert
	}

	tests := []struct {
		name     string
		in       fleetcert.ImportCertificatesInput
		wantCode string
		wantMode fleetcert.CertificateMode
	}{
		{"ok/without-ca", fleetcert.ImportCertificatesInput{Certificates: leaves(3, nil), Status: fleetcert.StatusActive}, "", fleetcert.ModeSNIOnly},
		{"ok/under-ca", fleetcert.ImportCertificatesInput{Certificates: leaves(3, ca), CACertificateID: caRec.ID, Status: fleetcert.StatusActive}, "", fleetcert.ModeDefault},
		{"ok/default-status-inactive", fleetcert.ImportCertificatesInput{Certificates: leaves(1, nil)}, "", fleetcert.ModeSNIOnly},
		{"fail/one-already-registered", fleetcert.ImportCertificatesInput{Certificates: append(leaves(2, nil), registered.Cert)}, fleetcert.EResourceAlreadyExists, ""},
		{"fail/not-signed-by-ca", fleetcert.ImportCertificatesInput{Certificates: append(leaves(1, ca), leaves(1, nil)...), CACertificateID: caRec.ID}, fleetcert.ECertificateValidation, ""},
		{"fail/ca-inactive", fleetcert.ImportCertificatesInput{Certificates: leaves(1, inactiveCA), CACertificateID: inactiveRec.ID}, fleetcert.ECertificateState, ""},
		{"fail/ca-unknown", fleetcert.ImportCertificatesInput{Certificates: leaves(1, nil), CACertificateID: fleetcert.CertificateID([]byte("no such CA"))}, fleetcert.EResourceNotFound, ""},
		{"fail/expired", fleetcert.ImportCertificatesInput{Certificates: []*x509.Certificate{expired}}, fleetcert.ECertificateValidation, ""},
		{"fail/bad-status", fleetcert.ImportCertificatesInput{Certificates: leaves(1, nil), Status: "NOT_A_STATUS"}, fleetcert.EInvalidRequest, ""},
		{"fail/too-many", fleetcert.ImportCertificatesInput{Certificates: tooMany}, fleetcert.EInvalidRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head0, err := reg.Store.ChangesHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := reg.ImportCertificates(ctx, scope, tt.in)
			if tt.wantCode != "" || tt.wantMode == "" {
				if err == nil {
					t.Fatalf("ImportCertificates: no error, want %s", tt.wantCode)
				}
				if tt.wantCode != "" && fleetcert.ErrorCode(err) != tt.wantCode {
					t.Fatalf("ImportCertificates: %v (code %s), want %s", err, fleetcert.ErrorCode(err), tt.wantCode)
				}
				// All or nothing: none of the batch is stored, no change appended.
				for _, c := range tt.in.Certificates {
					if c == registered.Cert {
						continue
					}
					if _, err := reg.DescribeCertificate(ctx, scope, fleetcert.CertificateID(c.Raw)); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
						t.Fatalf("certificate of a refused batch: %v, want ResourceNotFoundException", err)
					}
				}
				if head, _ := reg.Store.ChangesHead(ctx); head != head0 {
					t.Fatalf("change head moved from %d to %d for a refused batch", head0, head)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.in.Certificates) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.in.Certificates))
			}
			wantStatus := tt.in.Status
			if wantStatus == "" {
				wantStatus = fleetcert.StatusInactive
			}
			for i, cert := range tt.in.Certificates {
				d, err := reg.DescribeCertificate(ctx, scope, fleetcert.CertificateID(cert.Raw))
				if err != nil {
					t.Fatal(err)
				}
				if d.Status != wantStatus || d.Mode != tt.wantMode || d.CACertificateID != tt.in.CACertificateID || d.PEM != fleetcert.EncodeCertificatePEM(cert.Raw) || d.ID != got[i].ID {
					t.Fatalf("stored %+v", d)
				}
			}
			chs, err := reg.Store.Changes(ctx, head0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(chs) != len(tt.in.Certificates) {
				t.Fatalf("%d changes appended, want one per certificate (%d)", len(chs), len(tt.in.Certificates))
			}
			for i, ch := range chs {
				if ch.Kind != fleetcert.ChangeCertificateCreated || ch.CertificateID != got[i].ID || ch.NewStatus != wantStatus {
					t.Fatalf("change %d: %+v", i, ch)
				}
			}
		})
	}
}
