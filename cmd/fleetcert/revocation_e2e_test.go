package main_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testwait"
)

// getOK returns the body of a GET of url, which must answer 200.
func getOK(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return body
}

// openssl runs the openssl command line and returns its combined output.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// TestRevocationWithOpenSSL: a certificate fleetcert issues names its CRL
// and OCSP responder; openssl's own clients find it good, then revoked
// once revoked through the API, from the OCSP responder (with a nonce,
// POST) and from the CRL (openssl verify -crl_check).
func TestRevocationWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed: apt-get install openssl")
	}
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	out, err := c.CreateKeysAndCertificate(ctx, &iot.CreateKeysAndCertificateInput{SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "device.pem")
	if err := os.WriteFile(certFile, []byte(aws.ToString(out.CertificatePem)), 0o600); err != nil {
		t.Fatal(err)
	}
	issuerFile := filepath.Join(s.dataDir, "issuer-ca.pem")

	// The certificate carries the URLs (the API's own, by default).
	ocspURL, err := openssl(t, "x509", "-in", certFile, "-noout", "-ocsp_uri")
	ocspURL = strings.TrimSpace(ocspURL)
	if err != nil || ocspURL != s.url+"/ocsp" {
		t.Fatalf("OCSP URI %q (%v), want %s/ocsp", ocspURL, err, s.url)
	}
	text, _ := openssl(t, "x509", "-in", certFile, "-noout", "-text")
	crlURL := ""
	for _, line := range strings.Split(text, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "URI:") && strings.HasSuffix(l, ".crl") {
			crlURL = strings.TrimPrefix(l, "URI:")
		}
	}
	if !strings.HasPrefix(crlURL, s.url+"/crl/") {
		t.Fatalf("CRL distribution point %q in\n%s", crlURL, text)
	}

	ocspStatus := func() string {
		t.Helper()
		// openssl sends a nonce by default and warns when the response
		// lacks it; -CAfile checks the signature by the issuing CA.
		got, err := openssl(t, "ocsp", "-issuer", issuerFile, "-cert", certFile, "-url", ocspURL,
			"-CAfile", issuerFile, "-resp_text")
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, got)
		}
		if !strings.Contains(got, "Response verify OK") || strings.Contains(got, "WARNING") || !strings.Contains(got, "OCSP Nonce") {
			t.Fatalf("openssl ocsp:\n%s", got)
		}
		return got
	}
	fetchCRL := func() string {
		t.Helper()
		der := getOK(t, crlURL)
		derFile, pemFile := filepath.Join(dir, "crl.der"), filepath.Join(dir, "crl.pem")
		os.WriteFile(derFile, der, 0o600)
		got, err := openssl(t, "crl", "-inform", "DER", "-in", derFile, "-text", "-noout", "-CAfile", issuerFile)
		if err != nil || !strings.Contains(got, "verify OK") {
			t.Fatalf("openssl crl: %v\n%s", err, got)
		}
		if _, err := openssl(t, "crl", "-inform", "DER", "-in", derFile, "-out", pemFile); err != nil {
			t.Fatal(err)
		}
		return got
	}
	verify := func() string {
		got, _ := openssl(t, "verify", "-crl_check", "-CAfile", issuerFile, "-CRLfile", filepath.Join(dir, "crl.pem"), certFile)
		return got
	}

	if got := ocspStatus(); !strings.Contains(got, certFile+": good") {
		t.Fatalf("before revocation:\n%s", got)
	}
	crl := fetchCRL()
	if !strings.Contains(crl, "No Revoked Certificates") {
		t.Fatalf("CRL before revocation:\n%s", crl)
	}
	if got := verify(); !strings.Contains(got, ": OK") {
		t.Fatalf("openssl verify before revocation:\n%s", got)
	}

	if _, err := c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{
		CertificateId: out.CertificateId, NewStatus: types.CertificateStatusRevoked}); err != nil {
		t.Fatal(err)
	}
	if got := ocspStatus(); !strings.Contains(got, certFile+": revoked") {
		t.Fatalf("after revocation:\n%s", got)
	}
	serial, _ := openssl(t, "x509", "-in", certFile, "-noout", "-serial")
	serial = strings.TrimPrefix(strings.TrimSpace(serial), "serial=")
	testwait.For(t, "the revoked serial in the CRL", func() bool {
		return strings.Contains(fetchCRL(), "Serial Number: "+serial)
	})
	if got := verify(); !strings.Contains(got, "certificate revoked") {
		t.Fatalf("openssl verify after revocation:\n%s", got)
	}
}

// TestRevocationPublicURL: --public-url is what issued certificates name.
func TestRevocationPublicURL(t *testing.T) {
	s := &server{t: t, dataDir: t.TempDir(), env: []string{
		"FLEETCERT_ACCESS_KEY_ID=" + testKeyID, "FLEETCERT_SECRET_ACCESS_KEY=" + testSecret,
		"FLEETCERT_ACCOUNT_ID=" + testAccount, "FLEETCERT_PUBLIC_URL=https://pki.example.com/fleet/",
	}}
	s.start()
	t.Cleanup(s.stop)
	out, err := s.defaultClient().CreateKeysAndCertificate(context.Background(), &iot.CreateKeysAndCertificateInput{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "c.pem")
	os.WriteFile(f, []byte(aws.ToString(out.CertificatePem)), 0o600)
	text, _ := openssl(t, "x509", "-in", f, "-noout", "-text")
	if !strings.Contains(text, "OCSP - URI:https://pki.example.com/fleet/ocsp") ||
		!strings.Contains(text, "URI:https://pki.example.com/fleet/crl/") {
		t.Fatalf("certificate:\n%s", text)
	}
}
