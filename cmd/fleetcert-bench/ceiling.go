package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
)

// The ceiling server is the least any AWS-compatible server must do per
// DescribeCertificate and RegisterCertificateWithoutCA call: net/http,
// SigV4 verification (awsapi's own verifier, so exactly the API's work:
// canonical request, HMAC, constant-time compare), an in-memory map, and
// JSON encoding of the model's response. No rules beyond parsing the
// certificate, no store, no logs. Measured beside fleetcert in the same
// run, it says how much of the machine fleetcert's own work takes.

// ceilingConfig holds the flags of `fleetcert-bench ceiling`.
type ceilingConfig struct {
	Addr            string
	AccessKeyID     string
	SecretAccessKey string
	AccountID       string
	AddrFile        string
}

func parseCeilingFlags(args []string, stderr io.Writer) (ceilingConfig, error) {
	var c ceilingConfig
	fs := flag.NewFlagSet("fleetcert-bench ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:0", "loopback address to listen on")
	fs.StringVar(&c.AccessKeyID, "access-key-id", "", "the one access key id the server accepts (required)")
	fs.StringVar(&c.SecretAccessKey, "secret-access-key", "", "its secret (required)")
	fs.StringVar(&c.AccountID, "account-id", "123456789012", "the key's account, in the ARNs")
	fs.StringVar(&c.AddrFile, "addr-file", "", "write the address listened on to this file once listening")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return c, errors.New("--access-key-id and --secret-access-key are required")
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return c, fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return c, fmt.Errorf("--addr %q: only a loopback address", c.Addr)
	}
	return c, nil
}

func runCeiling(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseCeilingFlags(args, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newCeiling(c.AccessKeyID, c.SecretAccessKey, c.AccountID),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "ceiling listening on http://%s\n", ln.Addr())
	if c.AddrFile != "" {
		if err := writeFileAtomic(c.AddrFile, []byte(ln.Addr().String()+"\n")); err != nil {
			ln.Close()
			return err
		}
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ceiling is the ceiling server's handler.
type ceiling struct {
	verifier  *awsapi.SigV4Verifier
	accountID string
	requests  atomic.Uint64

	mu    sync.RWMutex
	certs map[string]*ceilingCert // by region + "/" + id
}

type ceilingCert struct {
	desc ceilingDescription // encoded on every DescribeCertificate, as any server must
}

func newCeiling(accessKeyID, secret, accountID string) *ceiling {
	return &ceiling{
		verifier: &awsapi.SigV4Verifier{
			Secret: func(id string) (string, bool) { return secret, id == accessKeyID },
			Now:    time.Now,
		},
		accountID: accountID,
		certs:     map[string]*ceilingCert{},
	}
}

// maxCeilingBody is the API's body limit (ARCHITECTURE.md).
const maxCeilingBody = 176 << 10

func (s *ceiling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		// For scripts waiting on it to start, as on fleetcert.
		w.Write([]byte("ok\n"))
		return
	}
	w.Header().Set("x-amzn-RequestId", strconv.FormatUint(s.requests.Add(1), 16))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCeilingBody+1))
	if err != nil || len(body) > maxCeilingBody {
		writeCeilingError(w, http.StatusBadRequest, "InvalidRequestException", "could not read the body")
		return
	}
	_, region, err := s.verifier.Verify(r, body)
	if err != nil {
		writeCeilingError(w, http.StatusForbidden, fleetcert.ErrorCode(err), fleetcert.ErrorMessage(err))
		return
	}
	switch {
	case r.Method == http.MethodGet && len(r.URL.Path) == len("/certificates/")+64 && r.URL.Path[:len("/certificates/")] == "/certificates/":
		s.describe(w, region, r.URL.Path[len("/certificates/"):])
	case r.Method == http.MethodPost && r.URL.Path == "/certificate/register-no-ca":
		s.register(w, region, body)
	default:
		writeCeilingError(w, http.StatusNotFound, "UnknownOperationException", "the ceiling serves DescribeCertificate and RegisterCertificateWithoutCA only")
	}
}

func (s *ceiling) describe(w http.ResponseWriter, region, id string) {
	s.mu.RLock()
	c := s.certs[region+"/"+id]
	s.mu.RUnlock()
	if c == nil {
		writeCeilingError(w, http.StatusNotFound, "ResourceNotFoundException", "The certificate "+id+" does not exist")
		return
	}
	b, err := json.Marshal(&c.desc)
	if err != nil {
		writeCeilingError(w, http.StatusInternalServerError, "InternalFailureException", "encode")
		return
	}
	writeCeilingJSON(w, b)
}

// ceilingDescription is DescribeCertificate's output in the model's shape.
type ceilingDescription struct {
	CertificateDescription struct {
		CertificateARN   string  `json:"certificateArn"`
		CertificateID    string  `json:"certificateId"`
		Status           string  `json:"status"`
		CertificatePEM   string  `json:"certificatePem"`
		OwnedBy          string  `json:"ownedBy"`
		CreationDate     float64 `json:"creationDate"`
		LastModifiedDate float64 `json:"lastModifiedDate"`
		CustomerVersion  int     `json:"customerVersion"`
		GenerationID     string  `json:"generationId"`
		Validity         struct {
			NotBefore float64 `json:"notBefore"`
			NotAfter  float64 `json:"notAfter"`
		} `json:"validity"`
		CertificateMode string `json:"certificateMode"`
	} `json:"certificateDescription"`
}

func (s *ceiling) register(w http.ResponseWriter, region string, body []byte) {
	var in struct {
		CertificatePEM *string `json:"certificatePem"`
		Status         string  `json:"status"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.CertificatePEM == nil {
		writeCeilingError(w, http.StatusBadRequest, "InvalidRequestException", "certificatePem is required")
		return
	}
	block, _ := pem.Decode([]byte(*in.CertificatePEM))
	if block == nil || block.Type != "CERTIFICATE" {
		writeCeilingError(w, http.StatusBadRequest, "CertificateValidationException", "not a PEM certificate")
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		writeCeilingError(w, http.StatusBadRequest, "CertificateValidationException", "not a certificate")
		return
	}
	sum := sha256.Sum256(cert.Raw)
	id := hex.EncodeToString(sum[:])
	arn := "arn:aws:iot:" + region + ":" + s.accountID + ":cert/" + id
	status := in.Status
	if status == "" {
		status = "INACTIVE"
	}
	now := float64(time.Now().UnixMilli()) / 1000
	var d ceilingDescription
	cd := &d.CertificateDescription
	cd.CertificateARN, cd.CertificateID, cd.Status, cd.CertificatePEM = arn, id, status, *in.CertificatePEM
	cd.OwnedBy, cd.CreationDate, cd.LastModifiedDate, cd.CustomerVersion = s.accountID, now, now, 1
	cd.GenerationID = id[:32]
	cd.Validity.NotBefore, cd.Validity.NotAfter = float64(cert.NotBefore.Unix()), float64(cert.NotAfter.Unix())
	cd.CertificateMode = "SNI_ONLY"
	key := region + "/" + id
	s.mu.Lock()
	_, exists := s.certs[key]
	if !exists {
		s.certs[key] = &ceilingCert{desc: d}
	}
	s.mu.Unlock()
	if exists {
		writeCeilingError(w, http.StatusConflict, "ResourceAlreadyExistsException", "The certificate is already provisioned or registered")
		return
	}
	out, _ := json.Marshal(struct {
		CertificateARN string `json:"certificateArn"`
		CertificateID  string `json:"certificateId"`
	}{arn, id})
	writeCeilingJSON(w, out)
}

// writeFileAtomic writes b to path through a temporary file, so that a
// script waiting for path never reads half of it.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeCeilingJSON(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func writeCeilingError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	w.Header().Set("x-amzn-ErrorType", code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
