package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
)

// node is one fleetcert process of a cluster on a PostgreSQL database.
type node struct {
	*server
	mqttAddr string
	caFile   string // the gateway CA devices trust (the cluster's, copied)
}

// newNode returns a node on the database at dbURL with its own data dir,
// not started; env adds to the test account's bootstrap key variables.
func newNode(t *testing.T, dbURL string, env ...string) *node {
	s := &server{t: t, dataDir: t.TempDir(), args: []string{"--database-url", dbURL}, env: append([]string{
		"FLEETCERT_ACCESS_KEY_ID=" + testKeyID,
		"FLEETCERT_SECRET_ACCESS_KEY=" + testSecret,
		"FLEETCERT_ACCOUNT_ID=" + testAccount,
		"FLEETCERT_REGION=" + testRegion,
	}, env...)}
	t.Cleanup(s.stop)
	return &node{server: s, caFile: filepath.Join(s.dataDir, "mqtt-ca.pem")}
}

// startNode starts a node on dbURL and waits until it is ready.
func startNode(t *testing.T, dbURL string, env ...string) *node {
	t.Helper()
	n := newNode(t, dbURL, env...)
	n.start()
	return n
}

func (n *node) start() {
	n.t.Helper()
	n.server.start()
	m := mqttReadyLine.FindStringSubmatch(n.stderr.String())
	if m == nil {
		n.t.Fatalf("no mqtt gateway ready line:\n%s", n.stderr.String())
	}
	n.mqttAddr = m[1]
}

// connectDevice connects cert to the node's gateway as clientID (MQTT
// 3.1.1, paho); lost receives once the connection is closed.
func (n *node) connectDevice(t *testing.T, cert *testpki.Cert, clientID string) (paho.Client, <-chan error, error) {
	t.Helper()
	caPEM, err := os.ReadFile(n.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + n.mqttAddr).
		SetClientID(clientID).
		SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1",
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}}}).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(testwait.Hang).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(testwait.Hang) {
		return nil, nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, lost, nil
}

// TestClusterSharedState starts three nodes at once on an empty database:
// one bootstrap key is made and printed, every node has the same issuing
// CA and gateway CA, and what one node writes the others read.
func TestClusterSharedState(t *testing.T) {
	dbURL := testpg.NewDatabase(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		// No key in the environment: the cluster makes one.
		nodes[i] = newNode(t, dbURL)
		nodes[i].env = []string{"FLEETCERT_REGION=" + testRegion}
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		wg.Go(func() {
			testwait.For(t, "node ready", func() bool { return readyLine.MatchString(n.stderr.String()) })
		})
	}
	wg.Wait()
	for _, n := range nodes {
		m := readyLine.FindStringSubmatch(n.stderr.String())
		n.addr, n.url = m[1], m[2]
		n.mqttAddr = mqttReadyLine.FindStringSubmatch(n.stderr.String())[1]
	}

	var printed []string
	for _, n := range nodes {
		if line := printedKey.FindString(n.stdout.String()); line != "" {
			printed = append(printed, line)
		}
	}
	if len(printed) != 1 {
		t.Fatalf("%d nodes printed a bootstrap key, want 1: %q", len(printed), printed)
	}
	keyID := regexp.MustCompile(`"accessKeyId":"([^"]+)"`).FindStringSubmatch(printed[0])[1]
	secret := regexp.MustCompile(`"secretAccessKey":"([^"]+)"`).FindStringSubmatch(printed[0])[1]

	for _, file := range []string{"mqtt-ca.pem", "issuer-ca.pem"} {
		first, err := os.ReadFile(filepath.Join(nodes[0].dataDir, file))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes[1:] {
			b, err := os.ReadFile(filepath.Join(n.dataDir, file))
			if err != nil || string(b) != string(first) {
				t.Fatalf("node %d's %s differs from node 0's (%v)", i+1, file, err)
			}
		}
	}

	// Written through one node, read through each; a certificate issued by
	// one node verifies against the CA every node shows.
	ctx := context.Background()
	c0 := nodes[0].client(keyID, secret, testRegion)
	out, err := c0.CreateKeysAndCertificate(ctx, &iot.CreateKeysAndCertificateInput{SetAsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		d, err := n.client(keyID, secret, testRegion).DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: out.CertificateId})
		if err != nil || d.CertificateDescription.Status != types.CertificateStatusActive {
			t.Fatalf("node %d: describe: %v", i, err)
		}
	}
	issuerPEM, _ := os.ReadFile(filepath.Join(nodes[2].dataDir, "issuer-ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(issuerPEM)
	leaf, err := x509.ParseCertificate(pemBlock(t, aws.ToString(out.CertificatePem)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate issued by node 0 does not verify against node 2's issuing CA: %v", err)
	}

	// A device trusting the cluster's CA connects to any node.
	dev, id := registerDevice(t, c0, types.CertificateStatusActive)
	for i, n := range nodes {
		c, _, err := n.connectDevice(t, dev, fmt.Sprintf("shared-%d", i))
		if err != nil {
			t.Fatalf("node %d: device %s: %v", i, id[:10], err)
		}
		c.Disconnect(0)
	}
}

func pemBlock(t *testing.T, s string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("no PEM in %q", s)
	}
	return b.Bytes
}

// TestClusterRevocation revokes, through node A, a device connected to node
// B: B closes its session, and a connection to B right after the API
// answered is refused — B never trusts a view older than the revocation.
func TestClusterRevocation(t *testing.T) {
	dbURL := testpg.NewDatabase(t)
	a := startNode(t, dbURL)
	b := startNode(t, dbURL)
	ctx := context.Background()
	api := a.defaultClient()
	for i := range 5 {
		dev, id := registerDevice(t, api, types.CertificateStatusActive)
		_, lost, err := b.connectDevice(t, dev, fmt.Sprintf("revoked-%d", i))
		if err != nil {
			t.Fatalf("connect to node B: %v", err)
		}
		if _, err := api.UpdateCertificate(ctx, &iot.UpdateCertificateInput{
			CertificateId: aws.String(id), NewStatus: types.CertificateStatusRevoked,
		}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.connectDevice(t, dev, fmt.Sprintf("again-%d", i)); err == nil {
			t.Fatalf("round %d: node B admitted a certificate revoked through node A", i)
		}
		select {
		case <-lost:
		case <-time.After(testwait.Hang):
			t.Fatalf("round %d: node B kept the revoked device connected", i)
		}
	}
}

// TestClusterPolicyChange detaches, through node A, the policy of a device
// connected to node B as its thing: iot:Connect is no longer allowed, so B
// closes its session at once (AWS takes minutes), and B refuses it again.
func TestClusterPolicyChange(t *testing.T) {
	dbURL := testpg.NewDatabase(t)
	a := startNode(t, dbURL)
	b := startNode(t, dbURL)
	ctx := context.Background()
	api := a.defaultClient()
	dev := onboardThing(t, api, "sensor-1")
	_, lost, err := b.connectDevice(t, dev, "sensor-1")
	if err != nil {
		t.Fatalf("connect to node B as its thing: %v", err)
	}
	if _, _, err := b.connectDevice(t, dev, "not-its-thing"); err == nil {
		t.Fatal("node B admitted a client id the policy does not allow")
	}
	arn := (&fleetcert.Certificate{Scope: fleetcert.Scope{AccountID: testAccount, Region: testRegion}, ID: fleetcert.CertificateID(dev.Cert.Raw)}).ARN()
	if _, err := api.DetachPolicy(ctx, &iot.DetachPolicyInput{PolicyName: aws.String("thing-topics"), Target: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(testwait.Hang):
		t.Fatal("node B kept connected a device whose policy was detached through node A")
	}
	if _, _, err := b.connectDevice(t, dev, "sensor-1"); err == nil {
		t.Fatal("node B admitted a device without a policy")
	}
}

// TestClusterDatabaseLoss stops PostgreSQL under a running node: API calls
// answer ServiceUnavailableException quickly, new devices are refused,
// connected devices stay, the console says the database is unreachable;
// when the database returns, everything works again by itself.
func TestClusterDatabaseLoss(t *testing.T) {
	pg := testpg.Start(t)
	n := startNode(t, pg.NewDatabase(t))
	ctx := context.Background()
	api := n.defaultClient()
	connected, _ := registerDevice(t, api, types.CertificateStatusActive)
	waiting, waitingID := registerDevice(t, api, types.CertificateStatusActive)
	_, lost, err := n.connectDevice(t, connected, "stays")
	if err != nil {
		t.Fatal(err)
	}
	console := consoleClient(t, n)

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = api.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(waitingID)})
	if took := time.Since(start); errorCode(err) != "ServiceUnavailableException" || httpStatus(err) != 503 || took > testwait.Hang {
		t.Fatalf("describe with the database down: %v (%s), want ServiceUnavailableException 503", err, took)
	}
	t.Logf("ServiceUnavailableException after %s", time.Since(start))
	if _, _, err := n.connectDevice(t, waiting, "refused"); err == nil {
		t.Fatal("a new device was admitted while the database was down")
	}
	page := httpGet(t, console, n.url+"/console/certificates")
	if !strings.Contains(page, "database is unreachable") {
		t.Fatalf("console page with the database down says nothing of it:\n%s", page)
	}
	select {
	case err := <-lost:
		t.Fatalf("a connected device was dropped when the database went down: %v", err)
	default:
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the API to answer again", func() bool {
		_, err := api.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(waitingID)})
		return err == nil
	})
	testwait.For(t, "a new device to be admitted again", func() bool {
		c, _, err := n.connectDevice(t, waiting, "after")
		if err == nil {
			c.Disconnect(0)
		}
		return err == nil
	})
	select {
	case err := <-lost:
		t.Fatalf("the connected device was dropped: %v", err)
	default:
	}
}

// consoleClient signs in to the node's console with the test key and
// returns an HTTP client holding the session.
func consoleClient(t *testing.T, n *node) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar, Timeout: testwait.Hang}
	page := httpGet(t, hc, n.url+"/console/signin")
	m := regexp.MustCompile(`name="signin_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-in token on the sign-in page:\n%s", page)
	}
	resp, err := hc.PostForm(n.url+"/console/signin", url.Values{
		"signin_token": {m[1]}, "access_key_id": {testKeyID}, "secret_access_key": {testSecret}, "region": {testRegion},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if strings.HasSuffix(resp.Request.URL.Path, "/signin") {
		t.Fatalf("sign-in failed: %s", resp.Status)
	}
	return hc
}

func httpGet(t *testing.T, hc *http.Client, u string) string {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMigrate copies a node's embedded store into PostgreSQL and starts a
// node there: the same certificates, keys and issuing CA.
func TestMigrate(t *testing.T) {
	s := startServer(t)
	c := s.defaultClient()
	var ids []string
	for range 3 {
		ids = append(ids, register(t, c, testpki.Leaf(t).PEM, types.CertificateStatusActive))
	}
	issuerBefore, err := os.ReadFile(filepath.Join(s.dataDir, "issuer-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.stop()

	dbURL := testpg.NewDatabase(t)
	code, stdout, stderr := runFleetcert(t, nil, "migrate", "--from-sqlite", s.dataDir, "--database-url", dbURL)
	if code != 0 {
		t.Fatalf("migrate exited %d: %s%s", code, stdout, stderr)
	}
	for _, want := range []string{"certificates       3", "accessKeys         1", "settings           2", "checksum           sha256:"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("migrate printed no %q:\n%s", want, stdout)
		}
	}
	// Again: the target is no longer empty.
	if code, _, stderr := runFleetcert(t, nil, "migrate", "--from-sqlite", s.dataDir, "--database-url", dbURL); code != 1 || !strings.Contains(stderr, "already holds records") {
		t.Fatalf("second migrate exited %d: %s", code, stderr)
	}

	n := startNode(t, dbURL)
	got := listAll(t, n.defaultClient(), 10, true)
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("certificates after migrate %v, want %v", got, ids)
	}
	issuerAfter, err := os.ReadFile(filepath.Join(n.dataDir, "issuer-ca.pem"))
	if err != nil || string(issuerAfter) != string(issuerBefore) {
		t.Fatalf("the cluster's issuing CA is not the embedded store's (%v)", err)
	}
}

// TestClusterClientIDTakeover connects one client id to node A, then to
// node B: A's session ends (MQTT's takeover rule, across the cluster) and
// B's stays. The time from B's CONNACK to A's connection closing is logged
// (BENCHMARKS.md).
func TestClusterClientIDTakeover(t *testing.T) {
	dbURL := testpg.NewDatabase(t)
	a := startNode(t, dbURL)
	b := startNode(t, dbURL)
	dev, _ := registerDevice(t, a.defaultClient(), types.CertificateStatusActive)
	var worst time.Duration
	for i := range 5 {
		clientID := fmt.Sprint("takeover-", i)
		_, lostA, err := a.connectDevice(t, dev, clientID)
		if err != nil {
			t.Fatal(err)
		}
		// The connection announced last stays; node A logs a connection
		// once it is announced.
		testwait.For(t, "node A's connection announced", func() bool {
			return regexp.MustCompile(`msg="device connected" certificateId=\S+ clientId=` + clientID + ` `).MatchString(a.stderr.String())
		})
		cb, lostB, err := b.connectDevice(t, dev, clientID)
		if err != nil {
			t.Fatal(err)
		}
		connected := time.Now()
		select {
		case <-lostA:
		case <-time.After(testwait.Hang):
			t.Fatalf("round %d: node A kept the session node B took over", i)
		}
		worst = max(worst, time.Since(connected))
		testwait.For(t, "node A's log of the takeover", func() bool {
			return strings.Contains(a.stderr.String(), "clientId="+clientID+" reason=DUPLICATE_CLIENTID")
		})
		select {
		case err := <-lostB:
			t.Fatalf("round %d: node B dropped the newer session: %v", i, err)
		default:
		}
		cb.Disconnect(0)
	}
	t.Logf("the older session ended at most %s after the newer one's CONNACK", worst)
}

// TestClusterConsoleSession signs in to the console through node A and
// goes on through node B, as a browser behind a load balancer would.
func TestClusterConsoleSession(t *testing.T) {
	dbURL := testpg.NewDatabase(t)
	a := startNode(t, dbURL)
	b := startNode(t, dbURL)
	browser := consoleClient(t, a) // cookies are per host, not per port
	resp, err := browser.Get(b.url + "/console/certificates")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/certificates" {
		t.Fatalf("node B: %s at %s, want the signed-in page", resp.Status, resp.Request.URL)
	}
}
