package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// runWait is "fleetcert wait": it returns once a fleetcert server answers
// GET /healthz with 200, so that a script can start the server in the
// background and go on when it is ready (a first `go run` builds for a
// minute before the server listens).
func runWait(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("wait", "fleetcert wait [--api-addr HOST:PORT] [--api-cert PEM] [--timeout D]", `
Waits until the fleetcert server at --api-addr answers GET /healthz with 200,
and exits 0; exits 1 if it does not within --timeout. It reads the same
FLEETCERT_API_ADDR and FLEETCERT_API_CERT as fleetcert serve; a server on a
wildcard address (0.0.0.0:8080, [::]:8080) is asked on loopback, so it also
serves as a container's health check.`)
	addr := fs.String("api-addr", "127.0.0.1:8080", "address of the server's API (as given to fleetcert serve)")
	certFile := fs.String("api-cert", "", "the server's --api-cert: ask over HTTPS and trust it (empty: plain HTTP)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	url := "http://" + dialAddr(*addr) + "/healthz"
	client := &http.Client{Timeout: 5 * time.Second}
	if *certFile != "" {
		roots, err := certPool(*certFile)
		if err != nil {
			return fmt.Errorf("wait: --api-cert: %w", err)
		}
		url = "https://" + dialAddr(*addr) + "/healthz"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	}
	return waitHealthy(ctx, client, url, *timeout)
}

// dialAddr is where to reach a server listening on addr: a wildcard host
// (0.0.0.0, ::, none), as a container's server listens on, is reached on
// loopback, so that wait reads the same FLEETCERT_API_ADDR as serve.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// waitHealthy polls url until it answers 200, for at most timeout.
func waitHealthy(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait: %s not ready after %s (last: %s)", url, timeout, last)
		case <-tick.C:
		}
	}
}

// certPool is the system's roots and the certificates of file: a
// self-signed server certificate is its own root.
func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return roots, nil
}
