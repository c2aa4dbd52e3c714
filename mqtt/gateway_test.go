package mqtt_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/mqtt"
	"github.com/fleetcert/fleetcert/sqlite"
)

const (
	accountA = "111111111111"
	accountB = "222222222222"
	region   = "us-east-1"
)

var (
	scopeA = fleetcert.Scope{AccountID: accountA, Region: region}
	scopeB = fleetcert.Scope{AccountID: accountB, Region: region}
)

// env is a Gateway on 127.0.0.1:0 with a Registry on a real SQLite store
// in a temp dir.
type env struct {
	t *testing.T
	// configure, when set, configures each gateway of e before Start.
	configure func(*mqtt.Gateway)
	path      string // the SQLite file
	reg       *fleetcert.Registry
	gw        *mqtt.Gateway
	files     mqtt.ServerFiles
	roots     *x509.CertPool
	offset    atomic.Int64 // added to the registry's clock
	logs      *testwait.Buffer
	// reads counts read transactions (Store.View) on the store: the
	// reads of certificates (and CAs), not those of the change feed or
	// its head.
	reads atomic.Int64
	// feedDelay delays each read of the change feed: the gateway then
	// learns of changes that late.
	feedDelay atomic.Int64
	// gateways are those started on e's store: their watchers' reads are
	// counted in reads too.
	gateways []*mqtt.Gateway
}

// countingStore counts the read transactions of a store, and delays reads
// of its change feed by *feedDelay.
type countingStore struct {
	fleetcert.Store
	reads     *atomic.Int64
	feedDelay *atomic.Int64
}

func (s countingStore) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	s.reads.Add(1)
	return s.Store.View(ctx, fn)
}

func (s countingStore) Changes(ctx context.Context, afterSeq int64, limit int) ([]fleetcert.Change, error) {
	time.Sleep(time.Duration(s.feedDelay.Load()))
	return s.Store.Changes(ctx, afterSeq, limit)
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// policiesOff configures a gateway without device policies: for the tests
// that count the store reads of admission alone (a device's policies are
// read once per certificate and client id, see TestPolicyReadsCached).
func policiesOff(g *mqtt.Gateway) { g.DevicePoliciesOff = true }

// newEnvWith is newEnv with every gateway configured by configure.
func newEnvWith(t *testing.T, configure func(*mqtt.Gateway)) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fleetcert.db")
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, path: path, logs: &testwait.Buffer{}, configure: configure}
	e.reg = fleetcert.NewRegistry(countingStore{Store: db, reads: &e.reads, feedDelay: &e.feedDelay}, nil)
	e.reg.Now = func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }
	files, err := mqtt.LoadOrCreateServerFiles(dir, nil, region, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.files = *files
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(caPEM)
	e.gw = e.startGateway()
	return e
}

// startGateway starts a gateway on e's registry, closed at the test's end.
func (e *env) startGateway() *mqtt.Gateway { return e.launchGateway(nil) }

// launchGateway starts a gateway on e's registry, configured by configure
// (when not nil) before Start, closed at the test's end.
func (e *env) launchGateway(configure func(*mqtt.Gateway)) *mqtt.Gateway {
	return e.launchGatewayOn(e.reg, configure)
}

// launchGatewayOn starts a gateway on reg (a registry on e's store),
// configured by configure (when not nil) before Start, closed at the
// test's end.
func (e *env) launchGatewayOn(reg mqtt.Registry, configure func(*mqtt.Gateway)) *mqtt.Gateway {
	t := e.t
	gw := mqtt.NewGateway(reg, slog.New(slog.NewTextHandler(e.logs, nil)))
	gw.Addr = "127.0.0.1:0"
	gw.CertFile, gw.KeyFile = e.files.CertFile, e.files.KeyFile
	gw.Region = region
	// scopeA's SNI_ONLY registrations serve devices that name no account,
	// as the bootstrap account's do in fleetcert serve.
	gw.DefaultAccountID = scopeA.AccountID
	gw.PollInterval = 50 * time.Millisecond
	if e.configure != nil {
		e.configure(gw)
	}
	if configure != nil {
		configure(gw)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.gateways = append(e.gateways, gw)
	t.Cleanup(func() {
		gw.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", e.logs.String())
		}
	})
	return gw
}

// register registers c without a CA in scope and, as an AWS onboarding
// script does, attaches the scope's open policy to it (allow).
func (e *env) register(c *testpki.Cert, scope fleetcert.Scope, status fleetcert.Status) *fleetcert.Certificate {
	e.t.Helper()
	cert, err := e.reg.RegisterCertificateWithoutCA(context.Background(), scope, c.PEM, status)
	if err != nil {
		e.t.Fatal(err)
	}
	e.allow(scope, cert.ID)
	return cert
}

// openPolicy lets a device connect with any client id and publish,
// subscribe and receive on any topic of its account and Region: what the
// tests that are not about policies attach to their certificates.
const openPolicy = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
	"Action": ["iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive", "iot:RetainPublish"], "Resource": "*"}]}`

// allow attaches the policy "open" (openPolicy) of scope, created on first
// use, to certificate id.
func (e *env) allow(scope fleetcert.Scope, id string) {
	e.t.Helper()
	e.attach(scope, id, "open", openPolicy)
}

// attach attaches policy name of scope (created with document on first
// use) to certificate id.
func (e *env) attach(scope fleetcert.Scope, id, name, document string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.reg.CreatePolicy(ctx, scope, name, document, nil); err != nil && fleetcert.ErrorCode(err) != fleetcert.EResourceAlreadyExists {
		e.t.Fatal(err)
	}
	arn := (&fleetcert.Certificate{Scope: scope, ID: id}).ARN()
	if err := e.reg.AttachPolicy(ctx, scope, name, arn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setStatus(scope fleetcert.Scope, id string, status fleetcert.Status) {
	e.t.Helper()
	if err := e.reg.UpdateCertificate(context.Background(), scope, id, status); err != nil {
		e.t.Fatal(err)
	}
}

// registerCA registers ca in SNI_ONLY mode.
func (e *env) registerCA(ca *testpki.Cert, scope fleetcert.Scope, active, auto bool) *fleetcert.CACertificate {
	e.t.Helper()
	c, err := e.reg.RegisterCACertificate(context.Background(), scope, fleetcert.RegisterCAInput{
		CACertificatePEM: ca.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: active, AllowAutoRegistration: auto,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// device is a paho MQTT 3.1.1 client and what it observed.
type device struct {
	paho.Client
	lost           chan error
	messages       chan paho.Message
	sessionPresent bool // the CONNACK's session present flag
}

type dialOptions struct {
	clientID   string
	serverName string // TLS SNI; "" sends none (the broker is dialled by IP)
	chain      []*testpki.Cert
	clean      *bool
	will       string // topic; payload "gone"
}

// dial connects with cert (and the extra chain), and returns the error of
// the connection attempt.
func (e *env) dial(cert *testpki.Cert, o dialOptions) (*device, error) {
	e.t.Helper()
	tlsCert := tls.Certificate{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}
	for _, c := range o.chain {
		tlsCert.Certificate = append(tlsCert.Certificate, c.Cert.Raw)
	}
	if o.clientID == "" {
		o.clientID = fmt.Sprintf("dev-%d", time.Now().UnixNano())
	}
	d := &device{lost: make(chan error, 1), messages: make(chan paho.Message, 100)}
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + e.gw.ListenAddr()).
		SetClientID(o.clientID).
		SetTLSConfig(&tls.Config{RootCAs: e.roots, ServerName: o.serverName, Certificates: []tls.Certificate{tlsCert}}).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(testwait.Hang).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.messages <- m })
	if o.serverName == "" {
		opts.TLSConfig.ServerName = "127.0.0.1"
	}
	if o.clean != nil {
		opts.SetCleanSession(*o.clean)
	}
	if o.will != "" {
		opts.SetWill(o.will, "gone", 1, false)
	}
	d.Client = paho.NewClient(opts)
	tok := d.Connect()
	if !tok.WaitTimeout(testwait.Hang) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	d.sessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	e.t.Cleanup(func() { d.Disconnect(0) })
	return d, nil
}

func (e *env) mustDial(cert *testpki.Cert, o dialOptions) *device {
	e.t.Helper()
	d, err := e.dial(cert, o)
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	return d
}

func (d *device) mustSubscribe(t *testing.T, filter string, qos byte) byte {
	t.Helper()
	tok := d.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func (d *device) mustPublish(t *testing.T, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := d.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(testwait.Hang) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// waitLost waits for the device to see its connection closed.
func (d *device) waitLost(t *testing.T) {
	t.Helper()
	select {
	case <-d.lost:
	case <-time.After(testwait.Hang):
		t.Fatalf("the device is still connected after %s", testwait.Hang)
	}
}

// next returns the next message on topic, skipping others.
func (d *device) next(t *testing.T, topic string) paho.Message {
	t.Helper()
	deadline := time.After(testwait.Hang)
	for {
		select {
		case m := <-d.messages:
			if m.Topic() == topic {
				return m
			}
		case <-deadline:
			t.Fatalf("no message on %s within %s", topic, testwait.Hang)
		}
	}
}

// refusedCount returns the refused-connection counter of reason.
func (e *env) refusedCount(reason string) int {
	return e.metric(fmt.Sprintf("fleetcert_mqtt_connections_refused_total{reason=%q}", reason))
}

// metrics returns the gateway's metrics as /metrics serves them.
func (e *env) metrics() string {
	var b bytes.Buffer
	if err := e.gw.WriteMetrics(&b); err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

func TestAdmission(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		setup  func(c *testpki.Cert) dialOptions
		reason string // "" means admitted
	}{
		{"ok/active", func(c *testpki.Cert) dialOptions {
			e.register(c, scopeA, fleetcert.StatusActive)
			return dialOptions{}
		}, ""},
		{"fail/unregistered", func(c *testpki.Cert) dialOptions { return dialOptions{} }, fleetcert.ReasonUnregistered},
		{"fail/inactive", func(c *testpki.Cert) dialOptions {
			e.register(c, scopeA, fleetcert.StatusInactive)
			return dialOptions{}
		}, fleetcert.ReasonInactive},
		{"fail/revoked", func(c *testpki.Cert) dialOptions {
			e.register(c, scopeA, fleetcert.StatusRevoked)
			return dialOptions{}
		}, fleetcert.ReasonRevoked},
		{"fail/pending-transfer", func(c *testpki.Cert) dialOptions {
			cert := e.register(c, scopeA, fleetcert.StatusInactive)
			// AWS transfers a certificate only once its policies are detached.
			if err := e.reg.DetachPolicy(ctx, scopeA, "open", cert.ARN()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.reg.TransferCertificate(ctx, scopeA, cert.ID, accountB, ""); err != nil {
				t.Fatal(err)
			}
			ep, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
			return dialOptions{serverName: ep}
		}, fleetcert.ReasonPendingTransfer},
		{"fail/pending-activation", func(c *testpki.Cert) dialOptions {
			// Registered just in time, then the device presents its leaf
			// alone after the CA stopped auto-registration.
			ca := testpki.New(t, testpki.Options{IsCA: true})
			caRec := e.registerCA(ca, scopeA, true, true)
			leaf := testpki.New(t, testpki.Options{Parent: ca})
			*c = *leaf
			reg, err := e.reg.AutoRegisterDevice(ctx, fleetcert.DeviceQuery{Chain: []*x509.Certificate{leaf.Cert, ca.Cert}, Region: region, DefaultAccountID: accountA})
			if err != nil || reg == nil {
				t.Fatalf("auto-register: %v %v", reg, err)
			}
			if err := e.reg.UpdateCACertificate(ctx, scopeA, caRec.ID, fleetcert.UpdateCAInput{NewAutoRegistrationStatus: "DISABLE"}); err != nil {
				t.Fatal(err)
			}
			return dialOptions{}
		}, fleetcert.ReasonPendingActivation},
		{"fail/expired", func(c *testpki.Cert) dialOptions {
			e.register(c, scopeA, fleetcert.StatusActive)
			e.offset.Store(int64(2 * 365 * 24 * time.Hour))
			t.Cleanup(func() { e.offset.Store(0) })
			return dialOptions{}
		}, fleetcert.ReasonExpired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := testpki.Leaf(t)
			o := tt.setup(c)
			before := e.refusedCount(tt.reason)
			d, err := e.dial(c, o)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				d.mustPublish(t, "devices/hello", 1, false, "hi")
				return
			}
			if err == nil {
				t.Fatal("admitted")
			}
			if got := e.refusedCount(tt.reason); got != before+1 {
				t.Errorf("refused{reason=%q} = %d, want %d (err %v)", tt.reason, got, before+1, err)
			}
			id := fleetcert.CertificateID(c.Cert.Raw)
			if !strings.Contains(e.logs.String(), "certificateId="+id+" reason="+tt.reason) {
				t.Errorf("no log line with the certificate id and reason %s", tt.reason)
			}
		})
		e.offset.Store(0)
	}
}

func TestRevokeAndDeactivateWhileConnected(t *testing.T) {
	e := newEnv(t)
	for _, status := range []fleetcert.Status{fleetcert.StatusInactive, fleetcert.StatusRevoked} {
		t.Run("ok/"+string(status), func(t *testing.T) {
			c := testpki.Leaf(t)
			cert := e.register(c, scopeA, fleetcert.StatusActive)
			d := e.mustDial(c, dialOptions{})
			e.setStatus(scopeA, cert.ID, status)
			d.waitLost(t)
			if _, err := e.dial(c, dialOptions{}); err == nil {
				t.Fatal("reconnected while not ACTIVE")
			}
			if status == fleetcert.StatusInactive {
				e.setStatus(scopeA, cert.ID, fleetcert.StatusActive)
				e.mustDial(c, dialOptions{})
			}
		})
	}
	// The drop is observed into the histogram after the connection is
	// closed, so the device may see the close first: wait for the count.
	var b bytes.Buffer
	testwait.For(t, "two drops in the latency histogram", func() bool {
		b.Reset()
		e.gw.WriteMetrics(&b)
		return strings.Contains(b.String(), "fleetcert_mqtt_revocation_drop_seconds_count 2\n")
	})
	t.Run("ok/delete-other-account-keeps-session", func(t *testing.T) {
		// The same certificate in two accounts: deleting it in B does not
		// drop the device connected to A.
		c := testpki.Leaf(t)
		a := e.register(c, scopeA, fleetcert.StatusActive)
		e.register(c, scopeB, fleetcert.StatusInactive)
		epA, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
		d := e.mustDial(c, dialOptions{serverName: epA})
		if err := e.reg.DeleteCertificate(context.Background(), scopeB, a.ID, true); err != nil { // detaches its policy
			t.Fatal(err)
		}
		e.dropAnother(t)
		if !d.IsConnectionOpen() {
			t.Fatal("device of account A dropped")
		}
	})
}

// dropAnother connects and revokes another device and waits for its drop:
// once it is seen, every change committed before has been applied.
func (e *env) dropAnother(t *testing.T) {
	t.Helper()
	c := testpki.Leaf(t)
	cert := e.register(c, scopeA, fleetcert.StatusActive)
	d := e.mustDial(c, dialOptions{})
	e.setStatus(scopeA, cert.ID, fleetcert.StatusRevoked)
	d.waitLost(t)
}

func TestCADeactivationKeepsDevicesConnected(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ca := testpki.New(t, testpki.Options{IsCA: true})
	caRec := e.registerCA(ca, scopeA, true, false)
	leaf := testpki.New(t, testpki.Options{Parent: ca})
	cert, err := e.reg.RegisterCertificate(ctx, scopeA, fleetcert.RegisterCertificateInput{
		CertificatePEM: leaf.PEM, CACertificatePEM: ca.PEM, Status: fleetcert.StatusActive,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.allow(scopeA, cert.ID)
	d := e.mustDial(leaf, dialOptions{})
	if err := e.reg.UpdateCACertificate(ctx, scopeA, caRec.ID, fleetcert.UpdateCAInput{NewStatus: "INACTIVE"}); err != nil {
		t.Fatal(err)
	}
	e.dropAnother(t)
	if !d.IsConnectionOpen() {
		t.Fatal("deactivating the CA dropped its device")
	}
	d.mustPublish(t, "devices/still-here", 1, false, "yes")
	e.mustDial(leaf, dialOptions{})
}

func TestJustInTimeRegistration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	provisioner := testpki.Leaf(t)
	e.register(provisioner, scopeA, fleetcert.StatusActive)
	p := e.mustDial(provisioner, dialOptions{})
	p.mustSubscribe(t, "$aws/events/certificates/registered/+", 1)

	t.Run("ok", func(t *testing.T) {
		ca := testpki.New(t, testpki.Options{IsCA: true})
		caRec := e.registerCA(ca, scopeA, true, true)
		leaf := testpki.New(t, testpki.Options{Parent: ca})
		id := fleetcert.CertificateID(leaf.Cert.Raw)
		// Refused on CONNECT (CONNACK return code 5), not in the handshake.
		if _, err := e.dial(leaf, dialOptions{chain: []*testpki.Cert{ca}}); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Fatalf("first connection: %v, want CONNACK not authorized", err)
		}
		m := p.next(t, "$aws/events/certificates/registered/"+caRec.ID)
		var ev map[string]any
		if err := json.Unmarshal(m.Payload(), &ev); err != nil {
			t.Fatal(err)
		}
		cert, err := e.reg.DescribeCertificate(ctx, scopeA, id)
		if err != nil || cert.Status != fleetcert.StatusPendingActivation {
			t.Fatalf("registered %v %v", cert, err)
		}
		if ev["certificateId"] != id || ev["caCertificateId"] != caRec.ID || ev["certificateStatus"] != "PENDING_ACTIVATION" ||
			ev["awsAccountId"] != accountA || ev["certificateRegistrationTimestamp"] != fmt.Sprint(cert.CreationDate.UnixMilli()) {
			t.Errorf("event %s", m.Payload())
		}
		if _, ok := ev["timestamp"].(float64); !ok {
			t.Errorf("timestamp is not a number: %s", m.Payload())
		}
		// The audit log names the device, from its address, as who asked.
		entries, _, err := e.reg.Audit(ctx, fleetcert.AuditQuery{CertificateID: id})
		if err != nil || len(entries) != 1 || entries[0].Operation != "JustInTimeRegistration" ||
			entries[0].Actor != fleetcert.ActorDevice || entries[0].SourceIP != "127.0.0.1" ||
			entries[0].NewStatus != fleetcert.StatusPendingActivation {
			t.Errorf("audit log %+v, %v; want JustInTimeRegistration by device from 127.0.0.1", entries, err)
		}
		// Each later attempt announces it again.
		if _, err := e.dial(leaf, dialOptions{chain: []*testpki.Cert{ca}}); err == nil {
			t.Fatal("admitted before activation")
		}
		p.next(t, "$aws/events/certificates/registered/"+caRec.ID)
		// What AWS's just-in-time registration flow does next (a rule's
		// function): attach a policy and activate the certificate.
		e.allow(scopeA, id)
		e.setStatus(scopeA, id, fleetcert.StatusActive)
		d := e.mustDial(leaf, dialOptions{chain: []*testpki.Cert{ca}})
		d.mustPublish(t, "devices/provisioned", 1, false, "hi")
	})
	for _, tt := range []struct {
		name         string
		active, auto bool
	}{
		{"fail/ca-inactive", false, true},
		{"fail/auto-registration-disabled", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca := testpki.New(t, testpki.Options{IsCA: true})
			e.registerCA(ca, scopeA, tt.active, tt.auto)
			leaf := testpki.New(t, testpki.Options{Parent: ca})
			if _, err := e.dial(leaf, dialOptions{chain: []*testpki.Cert{ca}}); err == nil {
				t.Fatal("admitted")
			}
			_, err := e.reg.DescribeCertificate(ctx, scopeA, fleetcert.CertificateID(leaf.Cert.Raw))
			if fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
				t.Fatalf("registered anyway: %v", err)
			}
		})
	}
}

func TestTopicAuthorization(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	sub := e.mustDial(c, dialOptions{})
	if rc := sub.mustSubscribe(t, "$aws/events/presence/connected/spoof", 1); rc != 1 {
		t.Fatalf("subscribe to $aws/events: rc %#x", rc)
	}
	if rc := sub.mustSubscribe(t, "$aws/things/x/shadow/update", 1); rc != 0x80 {
		t.Errorf("subscribe to $aws/things: rc %#x, want 0x80", rc)
	}
	if rc := sub.mustSubscribe(t, "$SYS/#", 0); rc != 0x80 {
		t.Errorf("subscribe to $SYS: rc %#x, want 0x80", rc)
	}
	sub.mustSubscribe(t, "open/topic", 1)
	pub := e.mustDial(c, dialOptions{})
	// QoS 0 to $aws is dropped; the next message, from the same publisher,
	// arrives after it would have.
	pub.mustPublish(t, "$aws/events/presence/connected/spoof", 0, false, "forged")
	pub.mustPublish(t, "open/topic", 0, false, "real")
	if m := sub.next(t, "open/topic"); string(m.Payload()) != "real" {
		t.Fatalf("got %s", m.Payload())
	}
	select {
	case m := <-sub.messages:
		t.Fatalf("device published on %s", m.Topic())
	default:
	}
	// MQTT 3.1.1 has no negative PUBACK: a QoS 1 publish to $aws closes
	// the connection.
	pub.Publish("$aws/things/x/shadow/update", 1, false, "{}")
	pub.waitLost(t)
}

func TestPresenceEvents(t *testing.T) {
	e := newEnv(t)
	w := testpki.Leaf(t)
	e.register(w, scopeA, fleetcert.StatusActive)
	watcher := e.mustDial(w, dialOptions{})
	watcher.mustSubscribe(t, "$aws/events/presence/+/+", 1)

	c := testpki.Leaf(t)
	cert := e.register(c, scopeA, fleetcert.StatusActive)
	event := func(kind string) map[string]any {
		t.Helper()
		m := watcher.next(t, "$aws/events/presence/"+kind+"/thermostat-1")
		var ev map[string]any
		if err := json.Unmarshal(m.Payload(), &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	d := e.mustDial(c, dialOptions{clientID: "thermostat-1"})
	ev := event("connected")
	session, _ := ev["sessionIdentifier"].(string)
	if ev["clientId"] != "thermostat-1" || ev["eventType"] != "connected" || ev["principalIdentifier"] != cert.ID ||
		ev["ipAddress"] != "127.0.0.1" || !uuid.MatchString(session) || ev["timestamp"] == nil {
		t.Errorf("connected event %v", ev)
	}
	d.Disconnect(100)
	ev = event("disconnected")
	if ev["disconnectReason"] != "CLIENT_INITIATED_DISCONNECT" || ev["clientInitiatedDisconnect"] != true || ev["principalIdentifier"] != cert.ID ||
		ev["sessionIdentifier"] != session {
		t.Errorf("disconnected event %v, want sessionIdentifier %s", ev, session)
	}
	d = e.mustDial(c, dialOptions{clientID: "thermostat-1"})
	if ev := event("connected"); ev["sessionIdentifier"] == session || !uuid.MatchString(ev["sessionIdentifier"].(string)) {
		t.Errorf("second connection's sessionIdentifier %v, want a new UUID", ev["sessionIdentifier"])
	}
	e.setStatus(scopeA, cert.ID, fleetcert.StatusRevoked)
	ev = event("disconnected")
	if ev["disconnectReason"] != "AUTH_ERROR" || ev["clientInitiatedDisconnect"] != false {
		t.Errorf("disconnected event after revocation %v", ev)
	}
}

func TestMessaging(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	a := e.mustDial(c, dialOptions{})
	b := e.mustDial(c, dialOptions{})

	t.Run("ok/qos1", func(t *testing.T) {
		b.mustSubscribe(t, "fleet/qos1", 1)
		a.mustPublish(t, "fleet/qos1", 1, false, "one")
		if m := b.next(t, "fleet/qos1"); string(m.Payload()) != "one" || m.Qos() != 1 {
			t.Fatalf("got %q qos %d", m.Payload(), m.Qos())
		}
	})
	t.Run("ok/retained", func(t *testing.T) {
		a.mustPublish(t, "fleet/config", 1, true, "v2")
		b.mustSubscribe(t, "fleet/config", 1)
		if m := b.next(t, "fleet/config"); string(m.Payload()) != "v2" || !m.Retained() {
			t.Fatalf("got %q retained %v", m.Payload(), m.Retained())
		}
	})
	t.Run("ok/persistent-session", func(t *testing.T) {
		no := false
		p := e.mustDial(c, dialOptions{clientID: "persistent-1", clean: &no})
		p.mustSubscribe(t, "fleet/offline", 1)
		p.Disconnect(100)
		a.mustPublish(t, "fleet/offline", 1, false, "while away")
		p = e.mustDial(c, dialOptions{clientID: "persistent-1", clean: &no})
		if m := p.next(t, "fleet/offline"); string(m.Payload()) != "while away" {
			t.Fatalf("got %q", m.Payload())
		}
	})
	t.Run("ok/will-on-revocation", func(t *testing.T) {
		wc := testpki.Leaf(t)
		cert := e.register(wc, scopeA, fleetcert.StatusActive)
		b.mustSubscribe(t, "fleet/will", 1)
		w := e.mustDial(wc, dialOptions{will: "fleet/will"})
		e.setStatus(scopeA, cert.ID, fleetcert.StatusInactive)
		w.waitLost(t)
		if m := b.next(t, "fleet/will"); string(m.Payload()) != "gone" {
			t.Fatalf("got %q", m.Payload())
		}
	})
}

func TestServerNameSelectsAccount(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	e.register(c, scopeB, fleetcert.StatusInactive)
	epA, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
	epB, _ := mqtt.EndpointAddress("localhost", scopeB, mqtt.EndpointData)
	// No server name: the default account's (A's) registration, which B's
	// copy does not make ambiguous.
	e.mustDial(c, dialOptions{})
	// Registered in B only, SNI_ONLY: a device must name B.
	bOnly := testpki.Leaf(t)
	e.register(bOnly, scopeB, fleetcert.StatusActive)
	if _, err := e.dial(bOnly, dialOptions{}); err == nil || e.refusedCount(fleetcert.ReasonUnregistered) != 1 {
		t.Errorf("SNI_ONLY in another account without a server name: %v", err)
	}
	e.mustDial(bOnly, dialOptions{serverName: epB})
	if _, err := e.dial(c, dialOptions{serverName: epB}); err == nil || e.refusedCount(fleetcert.ReasonInactive) != 1 {
		t.Errorf("account B (INACTIVE): %v", err)
	}
	e.mustDial(c, dialOptions{serverName: epA})
	// Another region in the name: not registered there.
	other, _ := mqtt.EndpointAddress("localhost", fleetcert.Scope{AccountID: accountA, Region: "eu-west-1"}, mqtt.EndpointDataATS)
	if _, err := e.dial(c, dialOptions{serverName: other}); err == nil {
		t.Error("admitted in a region where the certificate is not registered")
	}
}

func TestEndpointAddress(t *testing.T) {
	for _, tt := range []struct{ typ, want, code string }{
		{"iot:Data-ATS", "111111111111-ats.iot.us-east-1.iot.example.com", ""},
		{"iot:Data", "111111111111.iot.us-east-1.iot.example.com", ""},
		{"", "111111111111.iot.us-east-1.iot.example.com", ""},
		{"iot:CredentialProvider", "111111111111.credentials.iot.us-east-1.iot.example.com", ""},
		{"iot:Jobs", "111111111111.jobs.iot.us-east-1.iot.example.com", ""},
		{"iot:data-ats", "", fleetcert.EInvalidRequest},
	} {
		got, err := mqtt.EndpointAddress("iot.example.com", scopeA, tt.typ)
		if got != tt.want || fleetcert.ErrorCode(err) != tt.code && !(tt.code == "" && err == nil) {
			t.Errorf("%q: %q %v", tt.typ, got, err)
		}
		if tt.code == "" && !strings.Contains(tt.typ, "Credential") && !strings.Contains(tt.typ, "Jobs") {
			acct, reg, ok := mqtt.ParseServerName(got)
			if !ok || acct != accountA || reg != region {
				t.Errorf("ParseServerName(%q) = %q %q %v", got, acct, reg, ok)
			}
		}
	}
	for _, name := range []string{"", "localhost", "127.0.0.1", "iot.us-east-1.localhost", "12345.iot.us-east-1.localhost", "111111111111.jobs.iot.us-east-1.x"} {
		if _, _, ok := mqtt.ParseServerName(name); ok {
			t.Errorf("ParseServerName(%q) ok", name)
		}
	}
}

// TestSessionsList: the console's view of live sessions, by certificate
// and by account.
func TestSessionsList(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	cert := e.register(c, scopeA, fleetcert.StatusActive)
	d := e.mustDial(c, dialOptions{clientID: "thermostat-7"})
	testwait.For(t, "the session listed", func() bool { return len(e.gw.SessionsOf(scopeA, cert.ID)) != 0 })
	got := e.gw.SessionsOf(scopeA, cert.ID)
	if len(got) != 1 || got[0].ClientID != "thermostat-7" || got[0].CertificateID != cert.ID || got[0].RemoteAddr == "" || got[0].ConnectedAt.IsZero() {
		t.Fatalf("sessions of the certificate: %+v", got)
	}
	if all := e.gw.Sessions(scopeA); len(all) != 1 {
		t.Fatalf("sessions of the account: %+v", all)
	}
	if other := e.gw.Sessions(scopeB); len(other) != 0 {
		t.Fatalf("another account sees the session: %+v", other)
	}
	d.Disconnect(0)
	testwait.For(t, "the closed session unlisted", func() bool { return len(e.gw.Sessions(scopeA)) == 0 })
}

// expect fails unless the next message d receives is payload on topic.
func (d *device) expect(t *testing.T, topic, payload string) {
	t.Helper()
	select {
	case m := <-d.messages:
		if m.Topic() != topic || string(m.Payload()) != payload {
			t.Fatalf("got %q on %s, want %q on %s", m.Payload(), m.Topic(), payload, topic)
		}
	case <-time.After(testwait.Hang):
		t.Fatalf("no message on %s within %s", topic, testwait.Hang)
	}
}

// quiet fails if d receives a message within a short while.
func (d *device) quiet(t *testing.T) {
	t.Helper()
	select {
	case m := <-d.messages:
		t.Fatalf("unexpected %q on %s", m.Payload(), m.Topic())
	case <-time.After(300 * time.Millisecond):
	}
}

// TestAccountTopicSpaces: each account and region has a topic space of
// its own, as on AWS; devices see their own topic names. Account A's
// devices use a certificate registered in both accounts (chosen by server
// name), account B's also one registered in B only.
func TestAccountTopicSpaces(t *testing.T) {
	e := newEnv(t)
	shared := testpki.Leaf(t)
	e.register(shared, scopeA, fleetcert.StatusActive)
	e.register(shared, scopeB, fleetcert.StatusActive)
	bOnly := testpki.Leaf(t)
	e.register(bOnly, scopeB, fleetcert.StatusActive)
	epA, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
	epB, _ := mqtt.EndpointAddress("localhost", scopeB, mqtt.EndpointDataATS)
	inA := func() *device { return e.mustDial(shared, dialOptions{serverName: epA}) }
	inB := func() *device { return e.mustDial(shared, dialOptions{serverName: epB}) }
	inBOnly := func() *device { return e.mustDial(bOnly, dialOptions{serverName: epB}) }

	t.Run("live", func(t *testing.T) {
		subA, subB, subB2 := inA(), inB(), inBOnly()
		for _, d := range []*device{subA, subB, subB2} {
			d.mustSubscribe(t, "fleet/+/temp", 1)
		}
		pubA, pubB := inA(), inBOnly()
		pubA.mustPublish(t, "fleet/1/temp", 1, false, "from A")
		subA.expect(t, "fleet/1/temp", "from A")
		pubB.mustPublish(t, "fleet/1/temp", 1, false, "from B")
		subB.expect(t, "fleet/1/temp", "from B")
		subB2.expect(t, "fleet/1/temp", "from B")
		subA.quiet(t)
		subB.quiet(t)
	})
	t.Run("shared-subscription", func(t *testing.T) {
		subA, subB := inA(), inB()
		subA.mustSubscribe(t, "$share/g/fleet/jobs", 1)
		subB.mustSubscribe(t, "$share/g/fleet/jobs", 1)
		inA().mustPublish(t, "fleet/jobs", 1, false, "job A")
		subA.expect(t, "fleet/jobs", "job A")
		inBOnly().mustPublish(t, "fleet/jobs", 1, false, "job B")
		subB.expect(t, "fleet/jobs", "job B")
		subA.quiet(t)
		subB.quiet(t)
	})
	t.Run("retained", func(t *testing.T) {
		inA().mustPublish(t, "config/a-only", 1, true, "A's")
		inA().mustPublish(t, "config/both", 1, true, "A's")
		inB().mustPublish(t, "config/both", 1, true, "B's")
		subB := inBOnly()
		subB.mustSubscribe(t, "config/a-only", 1)
		subB.mustSubscribe(t, "config/both", 1)
		subB.expect(t, "config/both", "B's")
		subB.quiet(t)
		subA := inA()
		subA.mustSubscribe(t, "config/#", 1)
		m := subA.next(t, "config/a-only")
		if string(m.Payload()) != "A's" || !m.Retained() {
			t.Fatalf("got %q retained %v", m.Payload(), m.Retained())
		}
		subA2 := inA()
		subA2.mustSubscribe(t, "config/both", 1)
		subA2.expect(t, "config/both", "A's")
	})
	t.Run("will", func(t *testing.T) {
		subA, subB := inA(), inB()
		subA.mustSubscribe(t, "fleet/will", 1)
		subB.mustSubscribe(t, "fleet/will", 1)
		wc := testpki.Leaf(t)
		cert := e.register(wc, scopeA, fleetcert.StatusActive)
		w := e.mustDial(wc, dialOptions{will: "fleet/will"})
		e.setStatus(scopeA, cert.ID, fleetcert.StatusInactive)
		w.waitLost(t)
		subA.expect(t, "fleet/will", "gone")
		subB.quiet(t)
	})
	t.Run("registered-event", func(t *testing.T) {
		const filter = "$aws/events/certificates/registered/+"
		subA, subB := inA(), inB()
		subA.mustSubscribe(t, filter, 1)
		subB.mustSubscribe(t, filter, 1)
		for _, tt := range []struct {
			scope       fleetcert.Scope
			sees, blind *device
		}{{scopeA, subA, subB}, {scopeB, subB, subA}} {
			ca := testpki.New(t, testpki.Options{IsCA: true})
			caRec := e.registerCA(ca, tt.scope, true, true)
			leaf := testpki.New(t, testpki.Options{Parent: ca})
			// The CA is SNI_ONLY: the device names the account.
			ep, _ := mqtt.EndpointAddress("localhost", tt.scope, mqtt.EndpointDataATS)
			if _, err := e.dial(leaf, dialOptions{chain: []*testpki.Cert{ca}, serverName: ep}); err == nil {
				t.Fatal("admitted before activation")
			}
			m := tt.sees.next(t, "$aws/events/certificates/registered/"+caRec.ID)
			var ev map[string]any
			if err := json.Unmarshal(m.Payload(), &ev); err != nil || ev["awsAccountId"] != tt.scope.AccountID {
				t.Fatalf("event %s: %v", m.Payload(), err)
			}
			tt.blind.quiet(t)
		}
	})
	t.Run("presence", func(t *testing.T) {
		watchA, watchB, hashA := inA(), inB(), inA()
		watchA.mustSubscribe(t, "$aws/events/presence/+/iso-1", 1)
		watchB.mustSubscribe(t, "$aws/events/presence/+/iso-1", 1)
		// A filter beginning with a wildcard matches no $ topic
		// [MQTT-4.7.1-1].
		hashA.mustSubscribe(t, "+/events/presence/#", 1)
		d := e.mustDial(shared, dialOptions{serverName: epA, clientID: "iso-1"})
		for _, kind := range []string{"connected", "disconnected"} {
			m := watchA.next(t, "$aws/events/presence/"+kind+"/iso-1")
			var ev map[string]any
			if err := json.Unmarshal(m.Payload(), &ev); err != nil || ev["eventType"] != kind || ev["clientId"] != "iso-1" {
				t.Fatalf("event %s: %v", m.Payload(), err)
			}
			d.Disconnect(100)
		}
		watchB.quiet(t)
		hashA.quiet(t)
		// The same client id in B: its events are B's.
		d = e.mustDial(bOnly, dialOptions{serverName: epB, clientID: "iso-1"})
		watchB.next(t, "$aws/events/presence/connected/iso-1")
		watchA.quiet(t)
		d.Disconnect(100)
	})
}

// stillConnected fails if d loses its connection within a short while.
func (d *device) stillConnected(t *testing.T) {
	t.Helper()
	select {
	case err := <-d.lost:
		t.Fatalf("connection lost: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestClientIDsPerAccount: as on AWS, a client id names a session within
// one account and region; the same id in another account is another
// session. The first two subtests fail when the broker shares client ids
// across accounts; the third checks that events still carry the id the
// device sent.
func TestClientIDsPerAccount(t *testing.T) {
	e := newEnv(t)
	shared := testpki.Leaf(t)
	e.register(shared, scopeA, fleetcert.StatusActive)
	e.register(shared, scopeB, fleetcert.StatusActive)
	epA, _ := mqtt.EndpointAddress("localhost", scopeA, mqtt.EndpointDataATS)
	epB, _ := mqtt.EndpointAddress("localhost", scopeB, mqtt.EndpointDataATS)
	dialA := func(o dialOptions) *device { o.serverName = epA; return e.mustDial(shared, o) }
	dialB := func(o dialOptions) *device { o.serverName = epB; return e.mustDial(shared, o) }
	persistent := false

	t.Run("ok/no-takeover-across-accounts", func(t *testing.T) {
		a := dialA(dialOptions{clientID: "same-1"})
		b := dialB(dialOptions{clientID: "same-1"})
		a.stillConnected(t)
		b.stillConnected(t)
		if got := len(e.gw.Sessions(scopeA)); got != 1 {
			t.Fatalf("sessions in A: %d", got)
		}
		if s := e.gw.Sessions(scopeB); len(s) != 1 || s[0].ClientID != "same-1" {
			t.Fatalf("sessions in B: %+v", s)
		}
		// Within one account the id still takes the session over.
		dialA(dialOptions{clientID: "same-1"})
		a.waitLost(t)
		b.stillConnected(t)
		b.Disconnect(100)
	})
	t.Run("ok/persistent-session-stays-in-its-account", func(t *testing.T) {
		a := dialA(dialOptions{clientID: "same-2", clean: &persistent})
		a.mustSubscribe(t, "fleet/offline", 1)
		a.Disconnect(100)
		dialA(dialOptions{}).mustPublish(t, "fleet/offline", 1, false, "for A")
		b := dialB(dialOptions{clientID: "same-2", clean: &persistent})
		if b.sessionPresent {
			t.Fatal("B resumed A's session")
		}
		b.quiet(t)
		b.Disconnect(100)
		a = dialA(dialOptions{clientID: "same-2", clean: &persistent})
		if !a.sessionPresent {
			t.Fatal("A's session is gone")
		}
		a.expect(t, "fleet/offline", "for A")
	})
	t.Run("ok/presence-events-name-the-device-id", func(t *testing.T) {
		w := dialB(dialOptions{})
		w.mustSubscribe(t, "$aws/events/presence/connected/+", 1)
		dialB(dialOptions{clientID: "same-3"})
		m := w.next(t, "$aws/events/presence/connected/same-3")
		var ev map[string]any
		if err := json.Unmarshal(m.Payload(), &ev); err != nil || ev["clientId"] != "same-3" {
			t.Fatalf("event %s: %v", m.Payload(), err)
		}
	})
}

// connack5 connects with cert over MQTT 5 with clientID (and stays
// connected until the test ends) and returns the CONNACK.
func (e *env) connack5(t *testing.T, cert *testpki.Cert, clientID string) packets.Packet {
	t.Helper()
	tlsCert := tls.Certificate{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}
	c, err := tls.Dial("tcp", e.gw.ListenAddr(), &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{tlsCert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(testwait.Deadline())
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID}}
	var buf bytes.Buffer
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	hb, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	ack := packets.Packet{ProtocolVersion: 5}
	if err := ack.FixedHeader.Decode(hb); err != nil || ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("not a CONNACK: %x %v", hb, err)
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	if err := ack.ConnackDecode(body); err != nil {
		t.Fatal(err)
	}
	return ack
}

// TestAssignedClientID: an MQTT 5 device that sends no client id gets
// the id the broker assigned, as it is named in lifecycle events and
// listings, never the internal per-account one.
func TestAssignedClientID(t *testing.T) {
	e := newEnv(t)
	c := testpki.Leaf(t)
	e.register(c, scopeA, fleetcert.StatusActive)
	ack := e.connack5(t, c, "")
	id := ack.Properties.AssignedClientID
	if ack.ReasonCode != 0 || id == "" || strings.Contains(id, accountA) {
		t.Fatalf("CONNACK reason %#x, assigned client id %q", ack.ReasonCode, id)
	}
	testwait.For(t, "the session listed with client id "+id, func() bool {
		s := e.gw.Sessions(scopeA)
		return len(s) == 1 && s[0].ClientID == id
	})
	if ack := e.connack5(t, c, "dev-5"); ack.ReasonCode != 0 || ack.Properties.AssignedClientID != "" {
		t.Fatalf("CONNACK reason %#x, assigned client id %q", ack.ReasonCode, ack.Properties.AssignedClientID)
	}
}
