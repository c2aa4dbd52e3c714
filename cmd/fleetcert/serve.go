package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/internal/connlimit"
	"github.com/fleetcert/fleetcert/internal/logwriter"
	"github.com/fleetcert/fleetcert/mqtt"
	"github.com/fleetcert/fleetcert/postgres"
	"github.com/fleetcert/fleetcert/revocation"
	"github.com/fleetcert/fleetcert/sqlite"
)

// runServe is "fleetcert serve": it runs until ctx ends (SIGINT, SIGTERM).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// One log line per request, written in batches: a system call per line
	// was 7 % of the server's CPU under load (logwriter).
	logs := logwriter.New(stderr)
	defer logs.Close() // after Close's last lines, before main reports an error
	m := NewMain()
	m.Logger = slog.New(slog.NewTextHandler(logs, nil))
	m.Stdout = stdout
	c := &m.Config
	fs := newFlagSet("serve", "fleetcert serve [flags]", `
Runs the AWS IoT certificate API and the web console (HTTP, or HTTPS with
--api-cert) and the MQTT device gateway (mutual TLS) on one registry. The
bootstrap access key comes from FLEETCERT_ACCESS_KEY_ID,
FLEETCERT_SECRET_ACCESS_KEY and FLEETCERT_ACCOUNT_ID; without them the first
start generates one and prints it once. GET /healthz answers 200 when ready.`)
	fs.StringVar(&c.DataDir, "data-dir", "./fleetcert-data", "directory of the embedded store and keys")
	fs.StringVar(&c.APIAddr, "api-addr", "127.0.0.1:8080", "address of the AWS API and the console")
	fs.StringVar(&c.APICert, "api-cert", "", "PEM server certificate (and chain) for the API and the console: they then\nserve HTTPS only (empty: plain HTTP)")
	fs.StringVar(&c.APIKey, "api-key", "", "PEM key of --api-cert")
	fs.StringVar(&c.MQTTAddr, "mqtt-addr", "127.0.0.1:8883", "address of the MQTT device gateway (mutual TLS); empty disables it")
	fs.StringVar(&c.MQTTCert, "mqtt-cert", "", "PEM server certificate (and chain) of the MQTT gateway (empty: generated in --data-dir)")
	fs.StringVar(&c.MQTTKey, "mqtt-key", "", "PEM key of --mqtt-cert")
	fs.Var(&hostnameList{names: &c.MQTTHostnames}, "mqtt-hostname", "host name devices reach the gateway by; repeatable or comma-separated; the first\nnames DescribeEndpoint's endpoints (empty: localhost)")
	fs.StringVar(&c.Region, "region", "us-east-1", "region of devices whose TLS server name names none")
	fs.StringVar(&c.DefaultAccount, "default-account", "", "account whose SNI_ONLY certificates and CAs serve devices that name no account in\ntheir TLS server name (empty: the bootstrap account; none: no account, as on AWS)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "postgres:// URL of a shared database (empty: embedded SQLite in --data-dir)")
	fs.Var(onOff{&c.DevicePoliciesOff}, "device-policies", "on: a device needs AWS IoT policies allowing iot:Connect, iot:Publish, iot:Subscribe\nand iot:Receive, as on AWS; off: any ACTIVE certificate may do all of them in its\naccount and region (for labs)")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL relying parties reach the API by, written into the certificates fleetcert\nissues from now on as their CRL distribution point ({url}/crl/{ca-id}.crl) and OCSP\nresponder ({url}/ocsp) (empty: the API's own http(s)://{api-addr})")
	fs.BoolVar(&c.OCSPAnyRegistered, "ocsp-any-registered", false, "the OCSP responder also answers for registered certificates of other CAs, signed\nby fleetcert's issuing CA, which such relying parties must trust as their responder")
	fs.DurationVar(&c.ChangeRetention, "change-retention", DefaultChangeRetention, "how long the change feed keeps an entry before it is pruned (0: never pruned)")
	fs.IntVar(&c.DescribeCache, "describe-cache", fleetcert.DefaultDescribeCacheSize, "certificates DescribeCertificate keeps in memory, each dropped by the change feed when\nit changes in any process, so an answer is never older than a read of the store\n(about 2 KB each; 0: every call reads the store)")
	fs.DurationVar(&c.JobLease, "job-lease", fleetcert.DefaultJobLease, "how long a bulk job stays a node's after its last batch: another node (or a restart)\ntakes over a crashed node's job this long after it died")
	fs.DurationVar(&c.AuditRetention, "audit-retention", DefaultAuditRetention, "how long the audit log keeps an entry before it is pruned (0: kept for ever)")
	addLimitFlags(fs, &c.Limits)
	addNATSFlags(fs, &c.NATS)
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "loopback address serving Go's profiles under /debug/pprof/, for profiling under load\n(empty: not served)")
	memLimit := fs.String("memory-limit", "", "soft memory limit of the process, e.g. 900MiB, or off (empty: GOMEMLIMIT, else\n90% of the container's memory limit)")
	gcHeadroom := fs.String("gc-headroom", formatSize(defaultGCHeadroom), "the least the heap may grow between two garbage collections, e.g. 64MiB, or off\n(Go's GOGC alone; GOGC set in the environment also turns it off)")
	fs.emptyMeans = map[string]bool{"mqtt-addr": true}
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	// Values that parse as flags but mean nothing: refused before anything
	// is opened or created.
	if c.DescribeCache < 0 {
		return usagef("--describe-cache %d: want 0 or more certificates", c.DescribeCache)
	}
	if _, err := awsapi.ParseThrottle(c.Limits.Throttle); err != nil {
		return usagef("--throttle: %w", err)
	}
	if _, err := m.defaultAccount(); err != nil {
		return usageError{err}
	}
	if err := checkPublicURL(c.PublicURL); err != nil {
		return usageError{err}
	}
	if err := c.NATS.check(); err != nil {
		return usageError{err}
	}
	if err := checkPprofAddr(c.PprofAddr); err != nil {
		return usageError{err}
	}
	headroom, err := parseGCHeadroom(*gcHeadroom)
	if err != nil {
		return usageError{err}
	}
	if err := applyMemoryLimit(*memLimit, m.Logger); err != nil {
		return err
	}
	defer startGCTuner(headroom, m.Logger)()
	c.AccessKeyID = os.Getenv("FLEETCERT_ACCESS_KEY_ID")
	c.SecretAccessKey = os.Getenv("FLEETCERT_SECRET_ACCESS_KEY")
	c.AccountID = os.Getenv("FLEETCERT_ACCOUNT_ID")

	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	return m.Close()
}

// Config is what `fleetcert serve` is told by flags and environment.
type Config struct {
	DataDir     string
	APIAddr     string
	MQTTAddr    string
	DatabaseURL string

	// APICert and APIKey, when set, make the API and the console serve
	// HTTPS only.
	APICert string
	APIKey  string

	// Device gateway: host names for endpoints and the server certificate,
	// the certificate to use instead of a generated one, and the region of
	// devices whose TLS server name names none.
	MQTTHostnames []string
	MQTTCert      string
	MQTTKey       string
	Region        string
	// DefaultAccount is the account whose SNI_ONLY registrations serve
	// devices that send no account in their server name: "" for the
	// bootstrap account, "none" for no account.
	DefaultAccount string

	// Limits cap connections, requests and device traffic.
	Limits Limits

	// PublicURL is the base of the CRL and OCSP URLs written into issued
	// certificates; "" for the API's own URL. OCSPAnyRegistered makes the
	// OCSP responder answer for certificates fleetcert did not issue.
	PublicURL         string
	OCSPAnyRegistered bool

	// DevicePoliciesOff admits devices without AWS IoT policy checks
	// (--device-policies off).
	DevicePoliciesOff bool

	// NATS joins the node to the cluster's message fabric (nats.go).
	NATS NATS

	// ChangeRetention is how long the change feed keeps an entry; 0
	// never prunes it.
	ChangeRetention time.Duration

	// DescribeCache is how many certificates DescribeCertificate keeps
	// in memory (fleetcert.Registry.DescribeCacheSize); 0 keeps none.
	DescribeCache int

	// JobLease is how long a bulk job stays this node's after its last
	// batch (fleetcert.JobRunner.Lease).
	JobLease time.Duration

	// AuditRetention is how long the audit log keeps an entry; 0 keeps
	// it for ever.
	AuditRetention time.Duration

	// PprofAddr, when set, is a loopback address serving Go's profiles.
	PprofAddr string

	// Bootstrap access key; generated and printed once when unset and no
	// key exists yet.
	AccessKeyID     string
	SecretAccessKey string
	AccountID       string
}

// Main is the running program: the store, the registry and the doors, wired
// by plain field assignment. End-to-end tests reuse it in-process.
type Main struct {
	Config Config
	Logger *slog.Logger
	Stdout io.Writer

	Store      fleetcert.Store // SQLite in --data-dir, or PostgreSQL at --database-url
	Registry   *fleetcert.Registry
	Gateway    *mqtt.Gateway // nil when --mqtt-addr is empty
	Console    *console.Handler
	Revocation *revocation.Handler
	Jobs       *fleetcert.JobRunner // bulk jobs (started by Run)

	apiListener *connlimit.Listener
	apiServer   *http.Server
	pprof       *http.Server
	pruner      *changePruner
	auditPruner *changePruner
	stopKeys    func() // ends the access-key watcher and waits for it
	stopJobs    func() // ends the job runner and waits for it
	ready       atomic.Bool
}

// accessKeyPoll is how often the access-key watcher reads the change feed
// for deletions by other processes, when the store does not notify (SQLite:
// `fleetcert keys delete` beside a running server). PostgreSQL's
// notifications wake it within milliseconds.
const accessKeyPoll = 250 * time.Millisecond

// NewMain returns a Main with defaults.
func NewMain() *Main {
	return &Main{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Stdout: os.Stdout,
	}
}

// APIAddr returns the address the API listens on, once Run has returned.
func (m *Main) APIAddr() string { return m.apiListener.Addr().String() }

// Run opens the store and starts the doors. It returns once they listen.
func (m *Main) Run(ctx context.Context) error {
	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	store, err := openStore(ctx, m.Config, m.Logger)
	if err != nil {
		return err
	}
	m.Store = store
	// The issuing CA is the store's, shared by every node on it; a data dir
	// from before keeps the CA it made as files.
	iss, err := fleetcert.LoadOrCreateIssuer(ctx, store,
		filepath.Join(m.Config.DataDir, "issuer-ca.pem"),
		filepath.Join(m.Config.DataDir, "issuer-ca.key"), time.Now())
	if err != nil {
		return fmt.Errorf("issuing CA: %w", err)
	}
	// A public copy of its certificate, for the operator and verifiers.
	if err := writeIfChanged(filepath.Join(m.Config.DataDir, "issuer-ca.pem"),
		[]byte(fleetcert.EncodeCertificatePEM(iss.Certificate.Raw)), 0o644); err != nil {
		return fmt.Errorf("issuing CA: %w", err)
	}
	m.Registry = fleetcert.NewRegistry(store, iss)
	m.Registry.DescribeCacheSize = m.Config.DescribeCache
	m.pruner = startChangePruner(m.Registry, m.Config.ChangeRetention, m.Logger)
	m.auditPruner = startAuditPruner(m.Registry, m.Config.AuditRetention, m.Logger)

	// Every listener is bound before the bootstrap key is made: a start
	// that fails on a taken port must not spend the key it would print.
	var apiTLS *tls.Config
	if apiTLS, err = m.apiTLSConfig(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.Config.APIAddr)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	m.apiListener = m.Config.Limits.apiListener(ln, m)
	api := awsapi.NewHandler(m.Registry, m.Logger)
	if api.Throttle, err = awsapi.ParseThrottle(m.Config.Limits.Throttle); err != nil {
		return fmt.Errorf("--throttle: %w", err)
	}
	if api.Throttle != nil {
		m.Logger.Info("api throttling", "rates", api.Throttle.String())
	}
	// A deleted access key is forgotten at once: by this process when it
	// deletes it, by the watcher when another process (keys delete, another
	// node) did. Started before any request is served, so that no deletion
	// after a key's first read goes unseen.
	m.Registry.OnAccessKeyDeleted(api.ForgetAccessKey)
	keysCtx, stopKeys := context.WithCancel(context.Background())
	waitKeys, err := m.Registry.WatchAccessKeys(keysCtx, accessKeyPoll)
	if err != nil {
		stopKeys()
		return err
	}
	m.stopKeys = func() { stopKeys(); waitKeys() }
	if err := m.startGateway(ctx, api); err != nil {
		return err
	}
	if err := m.bootstrapKey(ctx); err != nil {
		return err
	}
	m.startJobs()

	// Revocation for other doors: CRL and OCSP on the API's listener,
	// unauthenticated (relying parties have no key), under the API's
	// limits.
	public := m.Config.PublicURL
	if public == "" {
		public = m.APIURL()
	}
	iss.SetPublicURL(public)
	defaultAccount, _ := m.defaultAccount()
	m.Revocation = &revocation.Handler{Registry: m.Registry, Issuer: iss, Logger: m.Logger,
		AnyRegistered: m.Config.OCSPAnyRegistered, Region: m.Config.Region, DefaultAccountID: defaultAccount}
	if err := m.Revocation.Start(ctx); err != nil {
		return fmt.Errorf("revocation: %w", err)
	}

	mux := http.NewServeMux()
	for _, p := range revocation.Patterns {
		mux.Handle(p, m.Revocation)
	}
	mux.HandleFunc("GET /healthz", m.healthz)
	mux.HandleFunc("GET /metrics", m.metrics)
	mux.Handle("/", api)
	// The web console; "/" alone (a browser's first request) goes to it.
	m.Console = console.NewHandler(m.Registry, m.Logger)
	m.Console.TrustedProxies = m.Config.Limits.TrustedProxies
	m.Console.JobRunner = m.Jobs // one node name for the leases this process holds
	if m.Config.DatabaseURL != "" {
		// A cluster: any node serves any signed-in browser.
		st := &console.StoreState{Store: m.Store, MaxAge: m.Console.MaxSessionAge}
		m.Console.Logins, m.Console.Flashes, m.Console.Results = st, st, st
		m.Console.SignInLimitStore = m.Store
	}
	if m.Gateway != nil {
		m.Console.Sessions = gatewaySessions{m.Gateway}
	}
	mux.Handle(console.Prefix, m.Console)
	mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
	m.apiServer = &http.Server{
		Handler:           mux,
		TLSConfig:         apiTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       m.Config.Limits.APIIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		var err error
		if apiTLS != nil {
			err = m.apiServer.ServeTLS(m.apiListener, "", "") // the certificate is in TLSConfig
		} else {
			err = m.apiServer.Serve(m.apiListener)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("api server stopped", "err", err)
		}
	}()
	if m.Config.PprofAddr != "" {
		if m.pprof, err = startPprof(m.Config.PprofAddr, m.Logger.Info); err != nil {
			return err
		}
	}
	m.ready.Store(true)
	m.Logger.Info("fleetcert ready", "api", m.APIAddr(), "url", m.APIURL(), "dataDir", m.Config.DataDir)
	return nil
}

// startJobs starts this node's bulk job runner: it takes up the jobs the
// API and the console start, and those of a node (or a CLI) that died.
func (m *Main) startJobs() {
	m.Jobs = fleetcert.NewJobRunner(m.Registry, m.Logger)
	if m.Config.JobLease > 0 {
		m.Jobs.Lease = m.Config.JobLease
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Jobs.Run(ctx)
	}()
	m.stopJobs = func() { cancel(); <-done }
}

// apiTLSConfig loads --api-cert and --api-key; nil when neither is set.
func (m *Main) apiTLSConfig() (*tls.Config, error) {
	c := m.Config
	switch {
	case c.APICert == "" && c.APIKey == "":
		return nil, nil
	case c.APICert == "" || c.APIKey == "":
		return nil, errors.New("set both --api-cert and --api-key, or neither to serve plain HTTP")
	}
	cert, err := tls.LoadX509KeyPair(c.APICert, c.APIKey)
	if err != nil {
		return nil, fmt.Errorf("--api-cert/--api-key: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// APIURL returns the base URL of the API and the console, once Run has
// returned.
func (m *Main) APIURL() string {
	if m.Config.APICert != "" {
		return "https://" + m.APIAddr()
	}
	return "http://" + m.APIAddr()
}

// Close stops accepting requests, lets running ones finish (up to 10 s) and
// closes the store.
func (m *Main) Close() error {
	m.ready.Store(false)
	var errs []error
	m.pruner.stop()
	m.auditPruner.stop()
	if m.stopKeys != nil {
		m.stopKeys()
	}
	if m.stopJobs != nil {
		m.stopJobs() // gives its jobs' leases back: another node goes on at once
	}
	errs = append(errs, m.closeGateway())
	if m.apiServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errs = append(errs, m.apiServer.Shutdown(ctx))
	} else if m.apiListener != nil {
		m.apiListener.Close() // Run failed after binding it
	}
	errs = append(errs, stopPprof(m.pprof))
	if m.Console != nil {
		errs = append(errs, m.Console.Close()) // ends running bulk actions
	}
	if m.Revocation != nil {
		errs = append(errs, m.Revocation.Close())
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

func (m *Main) healthz(w http.ResponseWriter, r *http.Request) {
	if !m.ready.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if m.Gateway != nil && !m.Gateway.ClusterConnected() {
		// Still serving: devices here reach each other, the API works.
		io.WriteString(w, "degraded: NATS unreachable, MQTT messages reach this node's devices only\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// bootstrapKey makes sure the first account can sign requests: the key from
// the environment, or a generated one printed once.
func (m *Main) bootstrapKey(ctx context.Context) error {
	c := m.Config
	accountID := m.bootstrapAccount()
	if c.AccessKeyID != "" || c.SecretAccessKey != "" {
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return errors.New("set both FLEETCERT_ACCESS_KEY_ID and FLEETCERT_SECRET_ACCESS_KEY, or neither")
		}
		k := &fleetcert.AccessKey{ID: c.AccessKeyID, Secret: c.SecretAccessKey, AccountID: accountID}
		if err := m.Registry.EnsureAccessKey(ctx, k); err != nil {
			return fmt.Errorf("bootstrap access key: %s", errorText(err))
		}
		m.Logger.Info("bootstrap access key from environment", "accessKeyId", k.ID, "accountId", accountID)
		return nil
	}
	// Of nodes starting together on an empty store, one makes the key.
	k, err := m.Registry.CreateBootstrapAccessKey(ctx, accountID)
	if err != nil {
		return fmt.Errorf("bootstrap access key: %s", errorText(err))
	}
	if k == nil {
		return nil
	}
	// Printed on stdout, once, to the operator; never logged.
	fmt.Fprintln(m.Stdout, "fleetcert: generated the bootstrap access key; it is shown only this once:")
	return json.NewEncoder(m.Stdout).Encode(keyJSON{AccessKeyID: k.ID, SecretAccessKey: k.Secret, AccountID: k.AccountID})
}

// storeFile is the embedded store's file in the data dir.
const storeFile = "fleetcert.db"

// bootstrapAccount is the account of the bootstrap access key.
func (m *Main) bootstrapAccount() string {
	if m.Config.AccountID != "" {
		return m.Config.AccountID
	}
	return fleetcert.DefaultAccountID
}

// defaultAccount is the account whose SNI_ONLY registrations serve devices
// that name none (--default-account), "" for none.
func (m *Main) defaultAccount() (string, error) {
	switch a := m.Config.DefaultAccount; {
	case a == "":
		return m.bootstrapAccount(), nil
	case a == "none":
		return "", nil
	case !fleetcert.ValidAccountID(a):
		return "", fmt.Errorf("--default-account %q: want a 12-digit account id, or none", a)
	default:
		return a, nil
	}
}

// openStore opens the store c names: PostgreSQL at --database-url, else
// the embedded store in --data-dir, created if needed.
func openStore(ctx context.Context, c Config, logger *slog.Logger) (fleetcert.Store, error) {
	if c.DatabaseURL != "" {
		db := postgres.NewDB(c.DatabaseURL)
		db.Logger = logger
		if err := db.Open(ctx); err != nil {
			return nil, fmt.Errorf("open store: %s", errorText(err))
		}
		return db, nil
	}
	db := sqlite.NewDB(filepath.Join(c.DataDir, storeFile))
	if err := db.Open(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// checkPublicURL refuses a --public-url that cannot be the base of the
// URLs written into certificates.
func checkPublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--public-url %q: want an http:// or https:// URL with a host and no query, e.g. https://pki.example.com", s)
	}
	return nil
}

// writeIfChanged writes b to path unless the file already holds it.
func writeIfChanged(path string, b []byte, mode os.FileMode) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		return nil
	}
	return os.WriteFile(path, b, mode)
}

// errorText is an error for the operator's terminal: the registry's message
// when there is one.
func errorText(err error) string {
	if fleetcert.ErrorCode(err) != fleetcert.EInternalFailure {
		return fleetcert.ErrorMessage(err)
	}
	return err.Error()
}

// onOff is a flag whose value is "on" or "off", stored as whether it is
// off (so that the zero Config is "on").
type onOff struct{ off *bool }

func (f onOff) String() string {
	if f.off != nil && *f.off {
		return "off"
	}
	return "on"
}

func (f onOff) Set(v string) error {
	switch v {
	case "on":
		*f.off = false
	case "off":
		*f.off = true
	default:
		return fmt.Errorf("%q is neither on nor off", v)
	}
	return nil
}
