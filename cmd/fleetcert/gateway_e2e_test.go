package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

var mqttReadyLine = regexp.MustCompile(`msg="mqtt gateway ready" mqtt=(\S+)`)

// startGatewayServer starts fleetcert with the gateway serving the test
// region (and more serve flags args), and returns it with the gateway's
// address and CA file.
func startGatewayServer(t *testing.T, args ...string) (s *server, mqttAddr, caFile string) {
	t.Helper()
	s = &server{t: t, dataDir: t.TempDir(), args: args, env: []string{
		"FLEETCERT_ACCESS_KEY_ID=" + testKeyID,
		"FLEETCERT_SECRET_ACCESS_KEY=" + testSecret,
		"FLEETCERT_ACCOUNT_ID=" + testAccount,
		"FLEETCERT_REGION=" + testRegion,
	}}
	s.start()
	t.Cleanup(s.stop)
	m := mqttReadyLine.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no mqtt gateway ready line:\n%s", s.stderr.String())
	}
	return s, m[1], filepath.Join(s.dataDir, "mqtt-ca.pem")
}

// deviceFiles writes c's certificate and key as PEM files.
func deviceFiles(t *testing.T, c *testpki.Cert) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "device.pem"), filepath.Join(dir, "device.key")
	if err := os.WriteFile(certFile, []byte(c.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func registerDevice(t *testing.T, c *iot.Client, status types.CertificateStatus) (*testpki.Cert, string) {
	t.Helper()
	cert := testpki.Leaf(t)
	out, err := c.RegisterCertificateWithoutCA(context.Background(), &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(cert.PEM), Status: status,
	})
	if err != nil {
		t.Fatal(err)
	}
	allowDevice(t, c, aws.ToString(out.CertificateArn))
	return cert, aws.ToString(out.CertificateId)
}

// devicePolicy lets a device connect with any client id and publish,
// subscribe and receive on any topic of its account and Region.
const devicePolicy = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
	"Action": ["iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive", "iot:RetainPublish"], "Resource": "*"}]}`

// allowDevice attaches the policy "devices" (devicePolicy), created on
// first use, to certificate arn, as an AWS onboarding script does: AWS IoT
// admits no device without a policy.
func allowDevice(t *testing.T, c *iot.Client, arn string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("devices"), PolicyDocument: aws.String(devicePolicy)})
	if exists := new(types.ResourceAlreadyExistsException); err != nil && !errors.As(err, &exists) {
		t.Fatal(err)
	}
	if _, err := c.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("devices"), Target: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
}

// mosquittoArgs are the connection arguments of mosquitto_pub/_sub.
func mosquittoArgs(addr, caFile, certFile, keyFile string) []string {
	host, port, _ := strings.Cut(addr, ":")
	return []string{"-h", host, "-p", port, "--cafile", caFile, "--cert", certFile, "--key", keyFile}
}

func TestGatewayMosquitto(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("mosquitto_pub not installed (Debian package mosquitto-clients; scripts/test installs it)")
	}
	s, addr, caFile := startGatewayServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	pub := func(cert *testpki.Cert, extra ...string) (string, error) {
		certFile, keyFile := deviceFiles(t, cert)
		args := append(mosquittoArgs(addr, caFile, certFile, keyFile), "-t", "fleet/e2e", "-m", "hello", "-q", "1")
		cmd := exec.Command("mosquitto_pub", append(args, extra...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	active, _ := registerDevice(t, c, types.CertificateStatusActive)
	t.Run("ok/active-mqtt311", func(t *testing.T) {
		if out, err := pub(active); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("ok/active-mqtt5", func(t *testing.T) {
		if out, err := pub(active, "-V", "5"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	})
	for _, tt := range []struct {
		name   string
		status types.CertificateStatus // "" means not registered
	}{
		{"fail/unregistered", ""},
		{"fail/inactive", types.CertificateStatusInactive},
		{"fail/revoked", types.CertificateStatusRevoked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cert := testpki.Leaf(t)
			if tt.status != "" {
				cert, _ = registerDevice(t, c, tt.status)
			}
			if out, err := pub(cert); err == nil {
				t.Fatalf("published: %s", out)
			}
		})
	}

	t.Run("ok/revoke-while-connected", func(t *testing.T) {
		cert, id := registerDevice(t, c, types.CertificateStatusActive)
		certFile, keyFile := deviceFiles(t, cert)
		out := &testwait.Buffer{}
		sub := exec.Command("mosquitto_sub", append(mosquittoArgs(addr, caFile, certFile, keyFile), "-t", "fleet/#", "-d")...)
		sub.Stdout, sub.Stderr = out, out
		if err := sub.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- sub.Wait() }()
		t.Cleanup(func() {
			if sub.ProcessState == nil {
				sub.Process.Kill()
				<-exited
			}
		})
		// mosquitto_sub's stdout is buffered: the gateway's log says when it
		// is connected.
		waitFor(t, "mosquitto_sub connected", func() bool {
			return strings.Contains(s.stderr.String(), `msg="device connected" certificateId=`+id)
		})
		if _, err := c.UpdateCertificate(ctx, &iot.UpdateCertificateInput{
			CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked,
		}); err != nil {
			t.Fatal(err)
		}
		// mosquitto_sub sees the connection closed, reconnects, is refused
		// in the handshake, and exits.
		select {
		case err := <-exited:
			if err == nil || !strings.Contains(out.String(), "connection was lost") {
				t.Fatalf("mosquitto_sub exit %v:\n%s", err, out.String())
			}
		case <-time.After(testwait.Hang):
			t.Fatalf("mosquitto_sub still connected %s after revocation:\n%s", testwait.Hang, out.String())
		}
	})

	t.Run("ok/metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + s.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`fleetcert_mqtt_connections_refused_total{reason="inactive"} 1`,
			`fleetcert_mqtt_connections_refused_total{reason="revoked"} `,
			`fleetcert_mqtt_connections_refused_total{reason="unregistered"} 1`,
			"fleetcert_mqtt_revocation_drop_seconds_count 1",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics has no %q:\n%s", want, b)
			}
		}
	})
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, cond)
}

func TestGatewayDescribeEndpoint(t *testing.T) {
	s, addr, caFile := startGatewayServer(t)
	c := s.defaultClient()
	ctx := context.Background()
	out, err := c.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Data-ATS")})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := aws.ToString(out.EndpointAddress)
	if want := testAccount + "-ats.iot." + testRegion + ".localhost"; endpoint != want {
		t.Fatalf("endpointAddress %q, want %q", endpoint, want)
	}
	_, err = c.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Unknown")})
	wantError(t, err, "InvalidRequestException", 400)

	// A certificate registered in two accounts: the device reaches the
	// account whose endpoint it names in SNI, and the server certificate
	// is valid for that name.
	other := s.secondAccount(t, "444455556666")
	cert, id := registerDevice(t, c, types.CertificateStatusActive)
	reg, err := other.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(cert.PEM), Status: types.CertificateStatusInactive,
	})
	if err != nil {
		t.Fatal(err)
	}
	allowDevice(t, other, aws.ToString(reg.CertificateArn))
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	connect := func(serverName string) error {
		opts := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("sni-" + serverName).
			SetAutoReconnect(false).SetConnectTimeout(testwait.Hang).
			SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: serverName, Certificates: []tls.Certificate{{
				Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key,
			}}})
		cl := paho.NewClient(opts)
		tok := cl.Connect()
		if !tok.WaitTimeout(testwait.Hang) {
			return errors.New("connect timed out")
		}
		if tok.Error() == nil {
			cl.Disconnect(0)
		}
		return tok.Error()
	}
	if err := connect(endpoint); err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	// Naming no account: the default account's (the bootstrap account's)
	// registration; the other account's copy does not compete.
	if err := connect("localhost"); err != nil {
		t.Errorf("the default account's device, naming no account: %v", err)
	}
	otherEndpoint := "444455556666-ats.iot." + testRegion + ".localhost"
	if err := connect(otherEndpoint); err == nil {
		t.Error("admitted on the account where the certificate is INACTIVE")
	}
	// Logged before the refusal, written within a millisecond (internal/logwriter).
	testwait.For(t, "the refusal in account 444455556666 logged", func() bool {
		return strings.Contains(s.stderr.String(), "certificateId="+id+" reason=inactive account=444455556666")
	})
}

// TestDeviceEndpointByName follows the README: a device reaches an
// account's endpoint by its DescribeEndpoint name, resolved by a hosts
// entry, and mosquitto's clients send that name as SNI. The hosts entry is
// made in a private mount namespace, so the machine's /etc/hosts is not
// touched.
func TestDeviceEndpointByName(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("mosquitto_pub not installed (Debian package mosquitto-clients; scripts/test installs it)")
	}
	if err := exec.Command("unshare", "--mount", "true").Run(); err != nil {
		t.Skipf("a private /etc/hosts needs unshare --mount (root): %v", err)
	}
	s, addr, caFile := startGatewayServer(t)
	other := s.secondAccount(t, "444455556666")
	ctx := context.Background()
	out, err := other.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Data-ATS")})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := aws.ToString(out.EndpointAddress)
	// Registered without a CA (SNI_ONLY) in an account other than the
	// default one: only a device that names it by SNI is admitted.
	cert := testpki.Leaf(t)
	reg, err := other.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(cert.PEM), Status: types.CertificateStatusActive,
	})
	if err != nil {
		t.Fatal(err)
	}
	allowDevice(t, other, aws.ToString(reg.CertificateArn))
	certFile, keyFile := deviceFiles(t, cert)
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n127.0.0.1 "+endpoint+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	pub := func(host string) (string, error) {
		args := []string{"-h", host, "-p", port, "--cafile", caFile, "--cert", certFile, "--key", keyFile, "-t", "fleet/x", "-m", "hi", "-i", "by-name"}
		script := `mount --bind "$1" /etc/hosts && shift && exec mosquitto_pub "$@"`
		b, err := exec.Command("unshare", append([]string{"--mount", "sh", "-c", script, "sh", hosts}, args...)...).CombinedOutput()
		return string(b), err
	}
	if out, err := pub(endpoint); err != nil {
		t.Fatalf("mosquitto_pub -h %s: %v %s", endpoint, err, out)
	}
	waitFor(t, "the device connected in account 444455556666", func() bool {
		return strings.Contains(s.stderr.String(), "clientId=by-name account=444455556666")
	})
	if out, err := pub("127.0.0.1"); err == nil {
		t.Fatalf("an SNI_ONLY certificate of a non-default account was admitted by IP address: %s", out)
	}
}
