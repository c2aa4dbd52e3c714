// Command fleetcert-bench is a load tool for any endpoint that speaks the AWS
// IoT Core certificate API (fleetcert, moto, …). It drives the endpoint with
// the real aws-sdk-go-v2 iot client and reports, per operation, the calls
// made, the errors by AWS error code, the throughput and the latency
// percentiles.
//
// Only loopback endpoints are accepted: it is a tool for measuring a server
// on the same machine, not for loading someone else's.
//
//	fleetcert-bench --endpoint http://127.0.0.1:8080 --op all
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fleetcert-bench:", err)
		}
		os.Exit(2)
	}
}

// Config holds the flags of one run.
type Config struct {
	Endpoint        string
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	Op              string
	Concurrency     int
	Duration        time.Duration
	MaxOps          int
	ListCount       int
	DescribePool    int
	SeedTimeout     time.Duration
	ScanTimeout     time.Duration
	Scans           int
	RequestTimeout  time.Duration
	Insecure        bool
	JSON            bool
	IDsFile         string
	CACertificateID string
	Pages           int
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("fleetcert-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Endpoint, "endpoint", "", "base URL of the AWS IoT compatible endpoint; loopback only (required); several,\ncomma-separated (the nodes of a cluster), take the calls in turn")
	fs.StringVar(&c.Region, "region", "us-east-1", "region of the SigV4 credential scope")
	fs.StringVar(&c.AccessKeyID, "access-key-id", os.Getenv("AWS_ACCESS_KEY_ID"), "access key id (default $AWS_ACCESS_KEY_ID)")
	fs.StringVar(&c.SecretAccessKey, "secret-access-key", os.Getenv("AWS_SECRET_ACCESS_KEY"), "secret access key (default $AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&c.Op, "op", "all", "describe | register | list-scan | update | list-by-ca | all (describe, register, list-scan)")
	fs.StringVar(&c.IDsFile, "ids-file", "", "describe and update pick random certificate ids from this file (one a line, e.g. `seed --ids-out`)\ninstead of registering a pool; update needs it")
	fs.StringVar(&c.CACertificateID, "ca-certificate-id", "", "the CA list-by-ca pages through (e.g. `seed --ca`'s)")
	fs.IntVar(&c.Pages, "pages", 200, "list-by-ca: pages of 250 timed, one after the other (following nextMarker from the start)")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "concurrent callers")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "time limit of each timed phase")
	fs.IntVar(&c.MaxOps, "max-ops", 200000, "call limit of each timed phase")
	fs.IntVar(&c.ListCount, "list-count", 100000, "certificates that must exist for list-scan; missing ones are registered first")
	fs.IntVar(&c.DescribePool, "describe-pool", 1000, "certificates registered (untimed) for describe to pick from")
	fs.DurationVar(&c.SeedTimeout, "seed-timeout", 15*time.Minute, "time limit of registering the certificates list-scan and describe need")
	fs.DurationVar(&c.ScanTimeout, "scan-timeout", 5*time.Minute, "time limit of one full ListCertificates scan")
	fs.IntVar(&c.Scans, "scans", 3, "timed full scans of list-scan")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 30*time.Second, "time limit of one call")
	fs.BoolVar(&c.Insecure, "insecure", false, "skip TLS verification of an https endpoint (self-signed loopback server)")
	fs.BoolVar(&c.JSON, "json", false, "also print the results as one JSON line, last on stdout")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.Endpoint == "":
		return c, errors.New("--endpoint is required")
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return c, errors.New("credentials required: --access-key-id/--secret-access-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
	case c.Concurrency < 1 || c.MaxOps < 1 || c.Duration <= 0 || c.Scans < 1 || c.ListCount < 0 || c.DescribePool < 1:
		return c, errors.New("--concurrency, --max-ops, --duration, --scans and --describe-pool must be positive, --list-count not negative")
	}
	switch c.Op {
	case "describe", "register", "list-scan", "all":
	case "update":
		if c.IDsFile == "" {
			return c, errors.New("--op update needs --ids-file")
		}
	case "list-by-ca":
		if c.CACertificateID == "" || c.Pages < 1 {
			return c, errors.New("--op list-by-ca needs --ca-certificate-id and a positive --pages")
		}
	default:
		return c, fmt.Errorf("--op %q: want describe, register, list-scan, update, list-by-ca or all", c.Op)
	}
	for _, e := range strings.Split(c.Endpoint, ",") {
		if err := checkLoopback(e); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkLoopback refuses an endpoint whose host is not 127.0.0.1, ::1 or
// localhost.
func checkLoopback(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("--endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--endpoint %q: want an http:// or https:// URL", endpoint)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback)) {
		return nil
	}
	return fmt.Errorf("--endpoint %q: only loopback endpoints (127.0.0.1, ::1, localhost) may be loaded", endpoint)
}

// dialLoopbackOnly refuses connections to a non-loopback address, so that a
// name like localhost cannot be resolved elsewhere behind our back.
func dialLoopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to connect to non-loopback address %s", address)
	}
	return nil
}

func newClients(c Config) []*iot.Client {
	var out []*iot.Client
	for _, e := range strings.Split(c.Endpoint, ",") {
		out = append(out, newClient(c, e))
	}
	return out
}

func newClient(c Config, endpoint string) *iot.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: dialLoopbackOnly}
	// One transport for all workers, keeping an idle connection per worker:
	// otherwise connections are closed and reopened and the run measures
	// TCP handshakes.
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        2 * c.Concurrency,
		MaxIdleConnsPerHost: 2 * c.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if c.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	cfg := aws.Config{
		Region:      c.Region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, ""),
		HTTPClient:  &http.Client{Transport: tr},
		// No retries: every failed call is counted, not hidden.
		Retryer:          func() aws.Retryer { return aws.NopRetryer{} },
		RetryMaxAttempts: 1,
	}
	return iot.NewFromConfig(cfg, func(o *iot.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// Report is the JSON form of a run.
type Report struct {
	Endpoint    string      `json:"endpoint"`
	Region      string      `json:"region"`
	Concurrency int         `json:"concurrency"`
	Duration    string      `json:"duration"`
	MaxOps      int         `json:"maxOps"`
	Results     []OpResult  `json:"results"`
	ListScan    *ScanResult `json:"listScan,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "seed":
			return runSeed(ctx, args[1:], stdout, stderr)
		case "view":
			return runView(ctx, args[1:], stdout, stderr)
		case "ceiling":
			return runCeiling(ctx, args[1:], stdout, stderr)
		}
	}
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	certs, err := newCertFactory()
	if err != nil {
		return err
	}
	b := &bench{cfg: c, clients: newClients(c), certs: certs, log: stderr}
	rep := Report{Endpoint: c.Endpoint, Region: c.Region, Concurrency: c.Concurrency, Duration: c.Duration.String(), MaxOps: c.MaxOps}
	fmt.Fprintf(stdout, "# endpoint=%s region=%s conc=%d duration=%s max-ops=%d\n", c.Endpoint, c.Region, c.Concurrency, c.Duration, c.MaxOps)

	ops := []string{c.Op}
	if c.Op == "all" {
		ops = []string{"describe", "register", "list-scan"}
	}
	var failed []string
	for _, op := range ops {
		if ctx.Err() != nil {
			break
		}
		switch op {
		case "describe":
			r, err := b.describe(ctx)
			if err != nil {
				failed = append(failed, fmt.Sprintf("describe: %v", err))
				fmt.Fprintln(stdout, "op=DescribeCertificate FAILED:", err)
				continue
			}
			r.print(stdout)
			rep.Results = append(rep.Results, r)
		case "update", "list-by-ca":
			var r OpResult
			var err error
			if op == "update" {
				r, err = b.update(ctx)
			} else {
				r, err = b.listByCA(ctx)
			}
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", op, err))
				fmt.Fprintf(stdout, "op=%s FAILED: %v\n", op, err)
				continue
			}
			r.print(stdout)
			rep.Results = append(rep.Results, r)
		case "register":
			r, err := b.register(ctx)
			if err != nil {
				failed = append(failed, fmt.Sprintf("register: %v", err))
				fmt.Fprintln(stdout, "op=RegisterCertificateWithoutCA FAILED:", err)
				continue
			}
			r.print(stdout)
			rep.Results = append(rep.Results, r)
		case "list-scan":
			seed, scan, err := b.listScan(ctx)
			if seed != nil {
				seed.print(stdout)
				rep.Results = append(rep.Results, *seed)
			}
			if scan != nil {
				scan.print(stdout)
				rep.ListScan = scan
			}
			if err != nil {
				failed = append(failed, fmt.Sprintf("list-scan: %v", err))
				fmt.Fprintln(stdout, "op=ListCertificates FAILED:", err)
			}
		}
	}
	if c.JSON {
		line, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", line)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}
