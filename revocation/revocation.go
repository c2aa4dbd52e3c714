// Package revocation is the door for relying parties other than fleetcert's
// own gateway (load balancers, other brokers): a CRL per issuing CA whose
// key fleetcert holds, and an OCSP responder (RFC 6960, with RFC 5019's
// GET and caching), both answering from the registry's state. The rules
// (which status is revoked, on hold or good; which registration answers)
// are the root package's; this package speaks the protocols.
package revocation

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetcert/fleetcert"
	"golang.org/x/crypto/ocsp"
)

// ResponseValidity is how long an OCSP response is valid (nextUpdate −
// thisUpdate). Short, because the status can change at any time and a
// relying party caches a response until its nextUpdate: a revocation
// reaches a relying party that cached a good response within this.
const ResponseValidity = 5 * time.Minute

// MaxRequestSize bounds a POSTed OCSP request. One request for one
// certificate (RFC 5019) with a nonce is about 100 bytes; signed requests
// with a certificate chain stay well below.
const MaxRequestSize = 16 << 10

// crlRefresh is how often a CRL is signed again without any change, so a
// relying party's copy is never older than this (CRLValidity is longer,
// to outlast an outage).
const crlRefresh = fleetcert.CRLValidity / 24

// Registry is what the door asks of fleetcert.Registry.
type Registry interface {
	IssuedRevocation(ctx context.Context, serial *big.Int) (fleetcert.Revocation, error)
	RegisteredRevocation(ctx context.Context, q fleetcert.RegisteredRevocationQuery) (fleetcert.Revocation, *x509.Certificate, error)
	CreateCRL(ctx context.Context) (*fleetcert.CRL, error)
	ChangeSignal() <-chan struct{}
	NotifyChanges(ctx context.Context) (<-chan struct{}, error)
	ChangesHead(ctx context.Context) (int64, error)
	Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error)
}

// Handler serves GET /crl/{issuer id}.crl, GET /ocsp/{base64 request} and
// POST /ocsp. Set the fields, then Start it; Close stops it.
type Handler struct {
	Registry Registry
	Issuer   *fleetcert.Issuer
	Logger   *slog.Logger

	// AnyRegistered makes the responder answer for registered certificates
	// fleetcert did not issue (fleetcert serve --ocsp-any-registered),
	// signed by the issuing CA's key, which such a relying party must
	// trust as its responder (RFC 6960 §2.2's locally trusted responder).
	// Region and DefaultAccountID choose among registrations in several
	// accounts as the gateway does for a device that names no account.
	AnyRegistered    bool
	Region           string
	DefaultAccountID string

	// Now returns the current time; tests replace it.
	Now func() time.Time

	mux    *http.ServeMux
	signer *signer
	crl    atomic.Pointer[fleetcert.CRL]
	stop   context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start signs the first CRL and starts following the change feed, so
// that a change shows in the CRL within a second. It returns once the
// first CRL is signed.
func (h *Handler) Start(ctx context.Context) error {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	var err error
	if h.signer, err = newSigner(h.Issuer.Certificate, h.Issuer.Signer); err != nil {
		return err
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /crl/{file}", h.serveCRL)
	h.mux.HandleFunc("GET /ocsp/{request...}", h.serveOCSPGet)
	h.mux.HandleFunc("POST /ocsp", h.serveOCSPPost)
	h.mux.HandleFunc("POST /ocsp/{$}", h.serveOCSPPost)

	pos, err := h.Registry.ChangesHead(ctx)
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	if err := h.refresh(ctx); err != nil {
		return err
	}
	ctx, h.stop = context.WithCancel(context.WithoutCancel(ctx))
	h.done = make(chan struct{})
	go h.follow(ctx, pos)
	return nil
}

// Close stops following the change feed.
func (h *Handler) Close() error {
	h.once.Do(func() {
		if h.stop != nil {
			h.stop()
			<-h.done
		}
	})
	return nil
}

// Patterns are the routes to give the handler on the API's mux.
var Patterns = []string{"GET /crl/", "GET /ocsp/", "POST /ocsp", "POST /ocsp/{$}"}

// ServeHTTP serves the door's routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// CRL returns the current CRL.
func (h *Handler) CRL() *fleetcert.CRL { return h.crl.Load() }

func (h *Handler) refresh(ctx context.Context) error {
	crl, err := h.Registry.CreateCRL(ctx)
	if err != nil {
		return err
	}
	h.crl.Store(crl)
	h.Logger.Debug("crl signed", "issuer", h.Issuer.ID(), "number", crl.Number, "entries", crl.Entries)
	return nil
}

// follow reads the change feed from pos and signs a new CRL after any
// change to a certificate, at once for this process's changes
// (ChangeSignal), the store's notification for other nodes' (PostgreSQL),
// or a one-second poll otherwise; and every crlRefresh regardless.
func (h *Handler) follow(ctx context.Context, pos int64) {
	defer close(h.done)
	notify, err := h.Registry.NotifyChanges(ctx)
	if err != nil {
		h.Logger.Warn("revocation: no change notifications, polling", "err", err)
	}
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	dirty, signed := false, time.Now()
	for {
		signal := h.Registry.ChangeSignal() // before reading: no change slips between
		for {
			changes, err := h.Registry.Changes(ctx, pos, 1000)
			if errors.Is(err, fleetcert.ErrChangesPruned) {
				if pos, err = h.Registry.ChangesHead(ctx); err == nil {
					dirty = true
					continue
				}
			}
			if err != nil {
				if ctx.Err() == nil {
					h.Logger.Warn("revocation: read change feed", "err", err)
				}
				break
			}
			for _, ch := range changes {
				pos = ch.Seq
				if affectsCRL(ch) {
					dirty = true
				}
			}
			if len(changes) < 1000 {
				break
			}
		}
		var wait <-chan time.Time
		if crl := h.crl.Load(); dirty || h.Now().Sub(crl.ThisUpdate) >= crlRefresh {
			if gap := time.Since(signed); gap < minCRLGap {
				// A burst of changes (a bulk revocation) makes one CRL
				// per minCRLGap, not one per change.
				wait = time.After(minCRLGap - gap)
			} else if err := h.refresh(ctx); err != nil {
				if ctx.Err() == nil {
					h.Logger.Error("revocation: sign crl", "err", err)
				}
			} else {
				dirty, signed = false, time.Now()
			}
		}
		// One read of the feed per minCRLGap at most, however many
		// commits woke the follower: under a stream of writes a read per
		// commit cost a tenth of the server's CPU (BENCHMARKS.md), and a
		// CRL waits for minCRLGap anyway.
		select {
		case <-ctx.Done():
			return
		case <-time.After(minCRLGap):
		}
		select {
		case <-ctx.Done():
			return
		case <-signal:
		case <-notify:
		case <-poll.C:
		case <-wait:
		}
	}
}

// minCRLGap is the least time between two CRLs one responder signs
// after changes.
const minCRLGap = 100 * time.Millisecond

// affectsCRL reports whether ch may change what the CRL lists: any change
// to a certificate but the creation of an ACTIVE one (the common case,
// which lists nothing).
func affectsCRL(ch fleetcert.Change) bool {
	switch ch.Kind {
	case fleetcert.ChangeCertificateCreated:
		return ch.NewStatus != fleetcert.StatusActive
	case fleetcert.ChangeCertificateUpdated, fleetcert.ChangeCertificateDeleted:
		return true
	}
	return false
}

func (h *Handler) serveCRL(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("file") != h.Issuer.ID()+".crl" {
		http.Error(w, "No CRL by that name: fleetcert serves /crl/{issuing CA id}.crl.", http.StatusNotFound)
		return
	}
	crl := h.crl.Load()
	hdr := w.Header()
	hdr.Set("Content-Type", "application/pkix-crl")
	// Caches may keep it a minute: a revocation reaches a relying party
	// that fetches through a cache within that.
	hdr.Set("Cache-Control", "public, max-age=60, no-transform, must-revalidate")
	hdr.Set("ETag", `"`+strconv.FormatInt(crl.Number, 10)+`"`)
	hdr.Set("Expires", crl.NextUpdate.UTC().Format(http.TimeFormat))
	http.ServeContent(w, r, "", crl.ThisUpdate, strings.NewReader(string(crl.DER)))
}

func (h *Handler) serveOCSPGet(w http.ResponseWriter, r *http.Request) {
	// RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding
	// of the DER encoding of the OCSPRequest}. The mux has unescaped it.
	enc := r.PathValue("request")
	var der []byte
	var err error
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err = e.DecodeString(enc); err == nil {
			break
		}
	}
	if err != nil || len(der) > MaxRequestSize {
		h.writeError(w, r, ocsp.MalformedRequestErrorResponse, "request is not base64 DER")
		return
	}
	h.answer(w, r, der, true)
}

func (h *Handler) serveOCSPPost(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/ocsp-request" {
		http.Error(w, "Send an OCSP request as application/ocsp-request (RFC 6960 Appendix A.1).", http.StatusUnsupportedMediaType)
		return
	}
	der, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("An OCSP request is at most %d bytes.", MaxRequestSize), http.StatusRequestEntityTooLarge)
		return
	} else if err != nil {
		return // the client went away or was too slow
	}
	h.answer(w, r, der, false)
}

// answer writes the response to the DER OCSPRequest der.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, der []byte, get bool) {
	req, err := parseRequest(der)
	if err != nil {
		h.writeError(w, r, ocsp.MalformedRequestErrorResponse, err.Error())
		return
	}
	var rev fleetcert.Revocation
	switch {
	case req.names(h.Issuer.Certificate):
		rev, err = h.Registry.IssuedRevocation(r.Context(), req.SerialNumber)
	case h.AnyRegistered:
		rev, _, err = h.Registry.RegisteredRevocation(r.Context(), fleetcert.RegisteredRevocationQuery{
			Serial: req.SerialNumber, IssuerMatches: req.names,
			Region: h.Region, DefaultAccountID: h.DefaultAccountID,
		})
	default:
		// RFC 5019 §2.2.3: a responder answers unauthorized for a CA it
		// is not authoritative for.
		h.writeError(w, r, ocsp.UnauthorizedErrorResponse, "not fleetcert's issuing CA")
		return
	}
	if err != nil {
		h.Logger.Error("ocsp", "err", err, "serial", req.SerialNumber.Text(16))
		h.writeError(w, r, ocsp.InternalErrorErrorResponse, "internal error")
		return
	}
	now := h.Now()
	resp, err := h.signer.response(req, rev, now)
	if err != nil {
		h.Logger.Error("ocsp", "err", err)
		h.writeError(w, r, ocsp.InternalErrorErrorResponse, "internal error")
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/ocsp-response")
	if get && req.nonce == nil {
		// RFC 5019 §6.2: cacheable, no longer than the response is valid.
		thisUpdate := now.UTC().Truncate(time.Second)
		hdr.Set("Cache-Control", "public, max-age=60, no-transform, must-revalidate")
		hdr.Set("Last-Modified", thisUpdate.Format(http.TimeFormat))
		hdr.Set("Expires", thisUpdate.Add(ResponseValidity).Format(http.TimeFormat))
	} else {
		hdr.Set("Cache-Control", "no-store")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(resp)))
	w.Write(resp)
}

// writeError writes an unsigned OCSP error response: HTTP 200, as RFC 6960
// Appendix A.1 carries OCSP's own statuses in the body.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, resp []byte, why string) {
	h.Logger.Debug("ocsp refused", "why", why, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(resp)
}
