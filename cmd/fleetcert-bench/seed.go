package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/postgres"
	"github.com/fleetcert/fleetcert/sqlite"
)

// seedConfig holds the flags of `fleetcert-bench seed`.
type seedConfig struct {
	N           int
	DataDir     string
	DatabaseURL string
	AccountID   string
	Region      string
	UnderCA     bool
	Batch       int
	Workers     int
	Timeout     time.Duration
	IDsOut      string
	IDsSample   int
	CAFile      string
	CPUProfile  string
}

func parseSeedFlags(args []string, stderr io.Writer) (seedConfig, error) {
	var c seedConfig
	fs := flag.NewFlagSet("fleetcert-bench seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fleetcert-bench seed -n N (--data-dir DIR | --database-url URL) [flags]\n\n"+
			"Registers N new certificates (valid X.509, ACTIVE, each with its own serial and id) straight into\n"+
			"fleetcert's store, through Registry.ImportCertificates: batches of Tx.CreateCertificate and one\n"+
			"change each, as the API's registrations write them. Run it while no fleetcert serves the store, or\n"+
			"beside one (its gateway then sees the changes).")
		fs.PrintDefaults()
	}
	fs.IntVar(&c.N, "n", 1000, "certificates to register")
	fs.StringVar(&c.DataDir, "data-dir", "", "the embedded store's directory (fleetcert serve --data-dir)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "a PostgreSQL store (fleetcert serve --database-url); loopback only")
	fs.StringVar(&c.AccountID, "account-id", "123456789012", "account the certificates are registered in")
	fs.StringVar(&c.Region, "region", "us-east-1", "region the certificates are registered in")
	fs.BoolVar(&c.UnderCA, "ca", false, "sign the certificates with a new CA, registered ACTIVE in SNI_ONLY mode, and register them under it\n(RegisterCertificate); otherwise self-signed, without a CA (RegisterCertificateWithoutCA)")
	fs.StringVar(&c.CAFile, "ca-file", "", "with --ca: the seeding CA's certificate and key (PEM), made and written here when the file\ndoes not exist, reused when it does, so that several seed runs register under one CA")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the seeding to this file (go tool pprof)")
	fs.IntVar(&c.Batch, "batch", 1000, fmt.Sprintf("certificates per transaction (1–%d)", fleetcert.MaxImportBatch))
	fs.IntVar(&c.Workers, "workers", runtime.NumCPU()+1, "concurrent generators/importers")
	fs.DurationVar(&c.Timeout, "timeout", 15*time.Minute, "time limit of the whole seeding")
	fs.StringVar(&c.IDsOut, "ids-out", "", "write a sample of the registered certificate ids to this file, one a line")
	fs.IntVar(&c.IDsSample, "ids-sample", 1000, "how many ids --ids-out holds (spread over the whole run)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case (c.DataDir == "") == (c.DatabaseURL == ""):
		return c, errors.New("give one of --data-dir and --database-url")
	case c.N < 1 || c.Workers < 1 || c.IDsSample < 1:
		return c, errors.New("-n, --workers and --ids-sample must be positive")
	case c.Batch < 1 || c.Batch > fleetcert.MaxImportBatch:
		return c, fmt.Errorf("--batch %d: want 1–%d", c.Batch, fleetcert.MaxImportBatch)
	case !fleetcert.ValidAccountID(c.AccountID):
		return c, fmt.Errorf("--account-id %q: want 12 digits", c.AccountID)
	}
	if c.DatabaseURL != "" {
		if err := checkLoopbackDatabase(c.DatabaseURL); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkLoopbackDatabase refuses a PostgreSQL URL naming any host that is
// not on loopback (a Unix socket directory is local too).
func checkLoopbackDatabase(dbURL string) error {
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") || h == "localhost" {
			continue
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("--database-url: only a loopback PostgreSQL may be used (host %q)", h)
		}
	}
	return nil
}

// SeedReport is the JSON line `seed` prints last.
type SeedReport struct {
	Certificates    int     `json:"certificates"`
	Seconds         float64 `json:"seconds"`
	PerSecond       float64 `json:"perSecond"`
	CACertificateID string  `json:"caCertificateId,omitempty"`
	StoreBytes      int64   `json:"storeBytes,omitempty"` // the embedded store's files afterwards
	Batches         int     `json:"batches"`
}

func runSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseSeedFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var store fleetcert.Store
	if c.DatabaseURL != "" {
		db := postgres.NewDB(c.DatabaseURL)
		if err := db.Open(ctx); err != nil {
			return err
		}
		store = db
	} else {
		db := sqlite.NewDB(filepath.Join(c.DataDir, "fleetcert.db"))
		if err := db.Open(); err != nil {
			return err
		}
		store = db
	}
	defer store.Close()
	reg := fleetcert.NewRegistry(store, nil)
	scope := fleetcert.Scope{AccountID: c.AccountID, Region: c.Region}
	s, err := newSeeder(c.UnderCA, c.CAFile)
	if err != nil {
		return err
	}
	rep := SeedReport{}
	if c.UnderCA {
		ca, err := reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{
			CACertificatePEM: fleetcert.EncodeCertificatePEM(s.ca.Raw), Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
		switch {
		case fleetcert.ErrorCode(err) == fleetcert.EResourceAlreadyExists:
			// Registered by an earlier run with the same --ca-file.
			rep.CACertificateID = fleetcert.CertificateID(s.ca.Raw)
		case err != nil:
			return fmt.Errorf("register the seeding CA: %w", err)
		default:
			rep.CACertificateID = ca.ID
		}
	}

	var (
		next     atomic.Int64
		done     atomic.Int64
		batches  atomic.Int64
		mu       sync.Mutex
		firstErr error
		sample   = make([]string, 0, c.IDsSample)
		every    = max(1, c.N/c.IDsSample)
		wg       sync.WaitGroup
	)
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				fmt.Fprintf(stderr, "[%s] seed: %d/%d in %s\n", time.Now().Format("15:04:05"), done.Load(), c.N, time.Since(start).Round(time.Second))
			}
		}
	}()
	for range c.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				first := next.Add(int64(c.Batch)) - int64(c.Batch)
				if first >= int64(c.N) {
					return
				}
				n := min(int64(c.Batch), int64(c.N)-first)
				certs := make([]*x509.Certificate, n)
				for i := range n {
					cert, err := s.one(first + i)
					if err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						cancel()
						return
					}
					certs[i] = cert
				}
				recs, err := reg.ImportCertificates(ctx, scope, fleetcert.ImportCertificatesInput{
					Certificates: certs, CACertificateID: rep.CACertificateID, Status: fleetcert.StatusActive})
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("batch at %d: %w", first, err))
					mu.Unlock()
					cancel()
					return
				}
				batches.Add(1)
				done.Add(n)
				mu.Lock()
				for i, r := range recs {
					if (first+int64(i))%int64(every) == 0 && len(sample) < c.IDsSample {
						sample = append(sample, r.ID)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stopProgress)
	elapsed := time.Since(start)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("seeding stopped after %d of %d certificates: %w (--timeout %s)", done.Load(), c.N, ctx.Err(), c.Timeout)
	}
	if firstErr != nil {
		return firstErr
	}
	rep.Certificates = int(done.Load())
	rep.Seconds = elapsed.Seconds()
	rep.PerSecond = float64(rep.Certificates) / elapsed.Seconds()
	rep.Batches = int(batches.Load())
	if c.DataDir != "" {
		rep.StoreBytes = dirBytes(c.DataDir, "fleetcert.db")
	}
	if c.IDsOut != "" {
		if err := os.WriteFile(c.IDsOut, []byte(strings.Join(sample, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "seeded %d certificates in %.1fs (%.0f/s, %d batches)", rep.Certificates, rep.Seconds, rep.PerSecond, rep.Batches)
	if rep.CACertificateID != "" {
		fmt.Fprintf(stdout, " under CA %s", rep.CACertificateID)
	}
	fmt.Fprintln(stdout)
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", line)
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// dirBytes sums the sizes of dir's files whose names start with prefix
// (the database, its WAL and shared memory).
func dirBytes(dir, prefix string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// seeder makes the seeding's certificates: one ECDSA P-256 key pair is the
// public key of every one (generating a key each would cost more than the
// rest), each differs by serial number and common name; signed by that
// same key (self-signed) or by a CA of its own.
type seeder struct {
	key       *ecdsa.PrivateKey
	ca        *x509.Certificate // nil: self-signed
	caKey     *ecdsa.PrivateKey
	run       string
	serial    *big.Int
	notBefore time.Time
	notAfter  time.Time
}

func newSeeder(underCA bool, caFile string) (*seeder, error) {
	f, err := newCertFactory()
	if err != nil {
		return nil, err
	}
	s := &seeder{key: f.key, run: f.run, serial: f.serialBase, notBefore: f.notBefore, notAfter: f.notAfter}
	if !underCA {
		return s, nil
	}
	if caFile != "" {
		if b, err := os.ReadFile(caFile); err == nil {
			return s, s.readCA(b)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if s.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fleetcert-bench seeding CA " + s.run},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.caKey.PublicKey, s.caKey)
	if err != nil {
		return nil, err
	}
	if s.ca, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	if caFile != "" {
		keyDER, err := x509.MarshalECPrivateKey(s.caKey)
		if err != nil {
			return nil, err
		}
		b := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
		if err := os.WriteFile(caFile, b, 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readCA reads the CA certificate and key --ca-file holds.
func (s *seeder) readCA(b []byte) error {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		var err error
		switch block.Type {
		case "CERTIFICATE":
			s.ca, err = x509.ParseCertificate(block.Bytes)
		case "EC PRIVATE KEY":
			s.caKey, err = x509.ParseECPrivateKey(block.Bytes)
		}
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
	}
	if s.ca == nil || s.caKey == nil {
		return errors.New("--ca-file: want a CERTIFICATE and an EC PRIVATE KEY block")
	}
	// The seeding CA outlives the certificates it signs now.
	if s.ca.NotAfter.Before(s.notAfter) {
		s.notAfter = s.ca.NotAfter
	}
	return nil
}

// one makes certificate number n.
func (s *seeder) one(n int64) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).Add(s.serial, big.NewInt(n)),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("fleetcert-seed-%s-%d", s.run, n)},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	parent, signer := tmpl, s.key
	if s.ca != nil {
		parent, signer = s.ca, s.caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &s.key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate %d: %w", n, err)
	}
	return x509.ParseCertificate(der)
}
