package fleetcert_test

import (
	"context"
	"slices"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// TestRegistryCertificatesSignedBy: a CA's page finds the certificates it
// signed that were registered without it — by issuer and key id, confirmed
// by the signature — and not an impostor's of the same issuer name.
func TestRegistryCertificatesSignedBy(t *testing.T) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(t)
	caCert := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Signed CA"})
	impostor := testpki.New(t, testpki.Options{IsCA: true, CommonName: "Signed CA"})
	ca, err := reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	under, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{
		CertificatePEM: testpki.New(t, testpki.Options{Parent: caCert, CommonName: "under"}).PEM, Status: fleetcert.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	var without []string
	for _, cn := range []string{"without-1", "without-2", "without-3"} {
		c, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{Parent: caCert, CommonName: cn}).PEM, fleetcert.StatusActive)
		if err != nil {
			t.Fatal(err)
		}
		without = append(without, c.ID)
	}
	fake, err := reg.RegisterCertificateWithoutCA(ctx, scope, testpki.New(t, testpki.Options{Parent: impostor, CommonName: "fake"}).PEM, fleetcert.StatusActive)
	if err != nil {
		t.Fatal(err)
	}
	// Pages of 2: the walk sees every candidate once.
	var got []string
	for marker := ""; ; {
		page, err := reg.ListCertificatesSignedBy(ctx, scope, ca.ID, fleetcert.ListOptions{PageSize: ptr(2), Marker: marker, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Certificates {
			got = append(got, c.ID)
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	if !slices.Equal(got, without) {
		t.Errorf("signed by the CA, registered without it: %v, want %v", got, without)
	}
	if slices.Contains(got, fake.ID) || slices.Contains(got, under.ID) {
		t.Errorf("listed the impostor's or the one under the CA: %v", got)
	}

	// The register page's warning: the issuer is found in any status.
	if err := reg.UpdateCACertificate(ctx, scope, ca.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	found, err := reg.FindRegisteredIssuer(ctx, scope, testpki.New(t, testpki.Options{Parent: caCert, CommonName: "new"}).PEM)
	if err != nil || found == nil || found.ID != ca.ID {
		t.Errorf("FindRegisteredIssuer = %v, %v; want CA %s", found, err, ca.ID[:8])
	}
	found, err = reg.FindRegisteredIssuer(ctx, scope, testpki.New(t, testpki.Options{Parent: impostor, CommonName: "x"}).PEM)
	if err != nil || found != nil {
		t.Errorf("FindRegisteredIssuer of the impostor's = %v, %v; want none", found, err)
	}
	n, err := reg.CountCertificates(ctx, scope, fleetcert.CertificateFilter{NoCA: true}, 3)
	if err != nil || n != 3 {
		t.Errorf("CountCertificates(no CA, limit 3) = %d, %v; want 3", n, err)
	}
}
