package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// TestNginxHonoursRevocation: nginx (Debian's package), checking client
// certificates that fleetcert issued as the README configures it, refuses
// one once it is revoked through the API: at its next handshake where
// nginx asks fleetcert's OCSP responder (the URL the certificate names),
// and where nginx checks the CRL, once it has read the regenerated CRL
// again (a reload, as the README's timer does). The other certificate is
// accepted by both throughout.
func TestNginxHonoursRevocation(t *testing.T) {
	nginxBin := lookNginx(t)
	s := startServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	kept, revoked := issueDevice(t, c), issueDevice(t, c)

	dir := t.TempDir()
	crlFile := filepath.Join(dir, "fleetcert.crl.pem")
	crlURL := kept.leaf.CRLDistributionPoints[0]
	fetchCRL(t, crlURL, crlFile)
	ngx := startNginx(t, nginxBin, dir, filepath.Join(s.dataDir, "issuer-ca.pem"), crlFile)

	for _, door := range []string{"crl", "ocsp"} {
		for _, d := range []*device{kept, revoked} {
			if code, body := ngx.get(t, door, d); code != http.StatusOK || body != "SUCCESS" {
				t.Fatalf("before revocation, the %s door answered %s with %d %q", door, d.id, code, body)
			}
		}
	}

	if _, err := c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{
		CertificateId: aws.String(revoked.id), NewStatus: types.CertificateStatusRevoked}); err != nil {
		t.Fatal(err)
	}
	// OCSP: nginx asks at each handshake, so the very next one is refused.
	if code, body := ngx.get(t, "ocsp", revoked); code != http.StatusBadRequest {
		t.Fatalf("after revocation, the OCSP door answered the revoked certificate with %d %q", code, body)
	}
	if code, body := ngx.get(t, "ocsp", kept); code != http.StatusOK || body != "SUCCESS" {
		t.Fatalf("after revocation, the OCSP door answered the kept certificate with %d %q", code, body)
	}
	// The CRL: regenerated within a second; nginx reads it when reloaded.
	testwait.For(t, "the revoked serial in fleetcert's CRL", func() bool {
		return slices.ContainsFunc(fetchCRL(t, crlURL, crlFile), func(n *big.Int) bool { return n.Cmp(revoked.leaf.SerialNumber) == 0 })
	})
	ngx.reload(t)
	testwait.For(t, "nginx refusing the revoked certificate by the CRL", func() bool {
		code, _ := ngx.get(t, "crl", revoked)
		return code == http.StatusBadRequest
	})
	if code, body := ngx.get(t, "crl", kept); code != http.StatusOK || body != "SUCCESS" {
		t.Fatalf("after revocation, the CRL door answered the kept certificate with %d %q", code, body)
	}
	// nginx's log says why each door refused: OpenSSL's CRL check
	// (X509_V_ERR_CERT_REVOKED, 23) and nginx's own OCSP check.
	for _, why := range []string{"verify error: (23:certificate revoked)", "verify error: certificate revoked"} {
		testwait.For(t, "nginx logging "+why, func() bool {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return strings.Contains(string(log), why)
		})
	}
}

// device is a certificate fleetcert issued, with its key.
type device struct {
	id   string
	leaf *x509.Certificate
	tls  tls.Certificate
}

func issueDevice(t *testing.T, c *iot.Client) *device {
	t.Helper()
	out, err := c.CreateKeysAndCertificate(context.Background(), &iot.CreateKeysAndCertificateInput{SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(aws.ToString(out.CertificatePem)), []byte(aws.ToString(out.KeyPair.PrivateKey)))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.CRLDistributionPoints) != 1 || len(leaf.OCSPServer) != 1 {
		t.Fatalf("issued certificate names CRLs %q and OCSP responders %q", leaf.CRLDistributionPoints, leaf.OCSPServer)
	}
	return &device{id: aws.ToString(out.CertificateId), leaf: leaf, tls: pair}
}

// fetchCRL writes the CRL at url to file as PEM, for nginx, and returns
// the serials it revokes.
func fetchCRL(t *testing.T, url, file string) []*big.Int {
	t.Helper()
	der := getOK(t, url)
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var serials []*big.Int
	for _, e := range crl.RevokedCertificateEntries {
		serials = append(serials, e.SerialNumber)
	}
	return serials
}

// nginx is an nginx master process in the foreground, stopped by PID when
// the test ends, with two TLS doors on loopback ports that require a
// client certificate signed by fleetcert's issuing CA: one checks its
// revocation with a CRL file, the other with OCSP.
type nginx struct {
	cmd    *exec.Cmd
	exited chan error
	doors  map[string]string // door → address
	server *x509.CertPool    // trusts the doors' certificate
}

// lookNginx returns the nginx to run: FLEETCERT_NGINX, as for
// scripts/install-tools, or the one in PATH, or Debian's.
func lookNginx(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FLEETCERT_NGINX"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx" // Debian's, outside a user's PATH
	}
	t.Skip("nginx is not installed (Debian: apt-get install nginx; scripts/install-tools does)")
	return ""
}

func startNginx(t *testing.T, bin, dir, issuerFile, crlFile string) *nginx {
	t.Helper()
	serverCert := testpki.New(t, testpki.Options{CommonName: "nginx", Hosts: []string{"127.0.0.1"}})
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverCert.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, []byte(serverCert.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &nginx{doors: map[string]string{"crl": freeLoopback(t), "ocsp": freeLoopback(t)}, server: x509.NewCertPool()}
	n.server.AddCert(serverCert.Cert)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // its workers read nothing the test's root-only temp dir would refuse them
	}
	door := func(addr, check string) string {
		return fmt.Sprintf(`
	server {
		listen %s ssl;
		ssl_certificate %s;
		ssl_certificate_key %s;
		ssl_client_certificate %s;
		ssl_verify_client on;
		%s
		location / { return 200 "$ssl_client_verify"; }
	}`, addr, certFile, keyFile, issuerFile, check)
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	%[3]s
	%[4]s
}
`, user, dir,
		door(n.doors["crl"], "ssl_crl "+crlFile+";"),
		// The responder the certificate names (its authority information
		// access), asked at every handshake: nginx caches no answer unless
		// ssl_ocsp_cache says so.
		door(n.doors["ocsp"], "ssl_ocsp on;"))
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-p", dir+"/", "-c", confFile, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	out := &testwait.Buffer{}
	n.cmd.Stdout, n.cmd.Stderr = out, out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan error, 1)
	go func() { n.exited <- n.cmd.Wait() }()
	t.Cleanup(func() { n.stop(t) })
	testwait.For(t, "nginx listening on both doors", func() bool {
		select {
		case err := <-n.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, out, log)
		default:
		}
		for _, addr := range n.doors {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return false
			}
			conn.Close()
		}
		return true
	})
	return n
}

// get makes a request through door with d's certificate, on a connection
// of its own (a new handshake), and returns the status and body.
func (n *nginx) get(t *testing.T, door string, d *device) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: n.server, Certificates: []tls.Certificate{d.tls}},
	}}
	resp, err := client.Get("https://" + n.doors[door] + "/")
	if err != nil {
		t.Fatalf("through nginx's %s door: %v", door, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(body)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// reload asks the master to read its configuration and files again (SIGHUP).
func (n *nginx) reload(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// stop ends nginx by its PID: gracefully (SIGQUIT), then SIGKILL.
func (n *nginx) stop(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// freeLoopback returns a loopback address no one listens on now.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
