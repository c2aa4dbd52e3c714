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
	nginxBin := lookTool(t, "FLEETCERT_NGINX", "nginx", "/usr/sbin/nginx")
	sc := newRevocationScene(t)
	kept, revoked := sc.kept, sc.revoked
	ngx := startNginx(t, nginxBin, sc.dir, sc.issuerFile, sc.crlFile)

	for _, door := range []string{"crl", "ocsp"} {
		for _, d := range []*device{kept, revoked} {
			if code, body := ngx.get(t, door, d); code != http.StatusOK || body != "SUCCESS" {
				t.Fatalf("before revocation, the %s door answered %s with %d %q", door, d.id, code, body)
			}
		}
	}

	sc.revoke(t)
	// OCSP: nginx asks at each handshake, so the very next one is refused.
	if code, body := ngx.get(t, "ocsp", revoked); code != http.StatusBadRequest {
		t.Fatalf("after revocation, the OCSP door answered the revoked certificate with %d %q", code, body)
	}
	if code, body := ngx.get(t, "ocsp", kept); code != http.StatusOK || body != "SUCCESS" {
		t.Fatalf("after revocation, the OCSP door answered the kept certificate with %d %q", code, body)
	}
	// The CRL: regenerated within a second; nginx reads it when reloaded.
	sc.waitCRL(t)
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
			log, _ := os.ReadFile(filepath.Join(sc.dir, "error.log"))
			return strings.Contains(string(log), why)
		})
	}
}

// revocationScene is where both relying-party tests start: fleetcert
// running, two certificates it issued, both ACTIVE, and its CRL (listing
// neither) in crlFile, in dir.
type revocationScene struct {
	c                                *iot.Client
	kept, revoked                    *device
	dir, crlFile, crlURL, issuerFile string
}

func newRevocationScene(t *testing.T) *revocationScene {
	t.Helper()
	s := startServer(t)
	sc := &revocationScene{c: s.defaultClient(), dir: t.TempDir(), issuerFile: filepath.Join(s.dataDir, "issuer-ca.pem")}
	sc.kept, sc.revoked = issueDevice(t, sc.c), issueDevice(t, sc.c)
	sc.crlFile, sc.crlURL = filepath.Join(sc.dir, "fleetcert.crl.pem"), sc.kept.leaf.CRLDistributionPoints[0]
	fetchCRL(t, sc.crlURL, sc.crlFile)
	return sc
}

// revoke revokes sc.revoked through the API.
func (sc *revocationScene) revoke(t *testing.T) {
	t.Helper()
	if _, err := sc.c.UpdateCertificate(context.Background(), &iot.UpdateCertificateInput{
		CertificateId: aws.String(sc.revoked.id), NewStatus: types.CertificateStatusRevoked}); err != nil {
		t.Fatal(err)
	}
}

// waitCRL waits until fleetcert's CRL lists sc.revoked (regenerated within
// a second of the change), and leaves it in sc.crlFile.
func (sc *revocationScene) waitCRL(t *testing.T) {
	t.Helper()
	testwait.For(t, "the revoked serial in fleetcert's CRL", func() bool {
		return slices.ContainsFunc(fetchCRL(t, sc.crlURL, sc.crlFile), func(n *big.Int) bool {
			return n.Cmp(sc.revoked.leaf.SerialNumber) == 0
		})
	})
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

// process is a relying party's server process in the foreground, stopped
// by its PID when the test ends.
type process struct {
	cmd    *exec.Cmd
	exited chan error
	out    *testwait.Buffer
}

// startProcess starts cmd, waits until it listens on every address of
// addrs, and stops it when the test ends: with signal stop, then SIGKILL.
func startProcess(t *testing.T, cmd *exec.Cmd, stop syscall.Signal, addrs ...string) *process {
	t.Helper()
	p := &process{cmd: cmd, exited: make(chan error, 1), out: &testwait.Buffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(stop)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
	})
	testwait.For(t, filepath.Base(cmd.Path)+" listening", func() bool {
		select {
		case err := <-p.exited:
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, p.out)
		default:
		}
		for _, addr := range addrs {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return false
			}
			conn.Close()
		}
		return true
	})
	return p
}

// lookTool returns the program to run: the one env names, or name in PATH,
// or where Debian's package puts it (outside a user's PATH); the test
// skips when there is none (scripts/install-tools installs it).
func lookTool(t *testing.T, env, name, debian string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	t.Skipf("%s is not installed (Debian: apt-get install %s; scripts/install-tools does)", name, name)
	return ""
}

// loopbackServerCert is a TLS server certificate for 127.0.0.1 and a pool
// that trusts it.
func loopbackServerCert(t *testing.T) (*testpki.Cert, *x509.CertPool) {
	t.Helper()
	c := testpki.New(t, testpki.Options{CommonName: "relying party", Hosts: []string{"127.0.0.1"}})
	pool := x509.NewCertPool()
	pool.AddCert(c.Cert)
	return c, pool
}

// nginx is an nginx master process with two TLS doors on loopback ports
// that require a client certificate signed by fleetcert's issuing CA: one
// checks its revocation with a CRL file, the other with OCSP.
type nginx struct {
	*process
	doors  map[string]string // door → address
	server *x509.CertPool    // trusts the doors' certificate
}

func startNginx(t *testing.T, bin, dir, issuerFile, crlFile string) *nginx {
	t.Helper()
	serverCert, pool := loopbackServerCert(t)
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
	n := &nginx{doors: map[string]string{"crl": freeLoopback(t), "ocsp": freeLoopback(t)}, server: pool}
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
	// "daemon off": the master stays in the foreground, its PID the one to
	// stop (SIGQUIT: gracefully).
	n.process = startProcess(t, exec.Command(bin, "-p", dir+"/", "-c", confFile, "-e", filepath.Join(dir, "error.log"),
		"-g", "daemon off;"), syscall.SIGQUIT, n.doors["crl"], n.doors["ocsp"])
	return n
}

// get makes a request through door with d's certificate, and returns the
// status and body.
func (n *nginx) get(t *testing.T, door string, d *device) (int, string) {
	t.Helper()
	code, body, err := getWithCert(n.doors[door], n.server, d)
	if err != nil {
		t.Fatalf("through nginx's %s door: %v", door, err)
	}
	return code, body
}

// getWithCert makes a request to https://addr/ with d's certificate on a
// connection of its own (a new handshake), trusting server, and returns
// the status and the body (trimmed).
func getWithCert(addr string, server *x509.CertPool, d *device) (int, string, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: server, Certificates: []tls.Certificate{d.tls}},
	}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// reload asks the master to read its configuration and files again (SIGHUP).
func (n *nginx) reload(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
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

// TestHAProxyHonoursRevocation: HAProxy (Debian's package), with the
// README's `bind … ssl verify required ca-file … crl-file …`, refuses a
// certificate fleetcert issued once it is revoked through the API and the
// regenerated CRL is handed to HAProxy on its runtime API (`set ssl
// crl-file`, `commit ssl crl-file`), with no reload; the other certificate
// passes throughout.
func TestHAProxyHonoursRevocation(t *testing.T) {
	bin := lookTool(t, "FLEETCERT_HAPROXY", "haproxy", "/usr/sbin/haproxy")
	sc := newRevocationScene(t)
	kept, revoked, dir, crlFile := sc.kept, sc.revoked, sc.dir, sc.crlFile
	serverCert, serverPool := loopbackServerCert(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverCert.Key)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "server.pem") // HAProxy's crt: the certificate and its key
	if err := os.WriteFile(pemFile, append([]byte(serverCert.PEM),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, sock := freeLoopback(t), filepath.Join(dir, "admin.sock")
	conf := fmt.Sprintf(`global
	stats socket %s level admin
defaults
	mode http
	timeout connect 10s
	timeout client 30s
	timeout server 30s
frontend door
	bind %s ssl crt %s ca-file %s crl-file %s verify required
	http-request return status 200 content-type text/plain string SUCCESS
`, sock, addr, pemFile, sc.issuerFile, crlFile)
	confFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// -db: in the foreground, so the PID is the process to stop.
	proc := startProcess(t, exec.Command(bin, "-db", "-f", confFile), syscall.SIGUSR1, addr)

	get := func(d *device) error {
		code, body, err := getWithCert(addr, serverPool, d)
		if err == nil && (code != http.StatusOK || body != "SUCCESS") {
			err = fmt.Errorf("%d %q", code, body)
		}
		return err
	}
	for _, d := range []*device{kept, revoked} {
		if err := get(d); err != nil {
			t.Fatalf("before revocation, HAProxy refused %s: %v\n%s", d.id, err, proc.out)
		}
	}

	sc.revoke(t)
	sc.waitCRL(t)
	crlPEM, err := os.ReadFile(crlFile)
	if err != nil {
		t.Fatal(err)
	}
	// The runtime API's payload ends at an empty line.
	if got := haproxyCLI(t, sock, "set ssl crl-file "+crlFile+" <<\n"+string(crlPEM)+"\n"); !strings.Contains(strings.ToLower(got), "transaction created") {
		t.Fatalf("set ssl crl-file: %q", got)
	}
	if got := haproxyCLI(t, sock, "commit ssl crl-file "+crlFile+"\n"); !strings.Contains(got, "Success!") {
		t.Fatalf("commit ssl crl-file: %q", got)
	}
	if err := get(revoked); err == nil || !strings.Contains(err.Error(), "tls: revoked certificate") {
		t.Fatalf("after revocation, HAProxy answered the revoked certificate with %v, want the TLS alert certificate_revoked", err)
	}
	if err := get(kept); err != nil {
		t.Fatalf("after revocation, HAProxy refused the kept certificate: %v\n%s", err, proc.out)
	}
}

// haproxyCLI sends one command to HAProxy's runtime API on sock and
// returns its answer.
func haproxyCLI(t *testing.T, sock, command string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, command); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(answer)
}
