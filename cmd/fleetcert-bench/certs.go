package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// certFactory makes unique self-signed client certificates cheaply: one
// ECDSA P-256 key for all of them, each certificate differing by serial
// number and common name. A random run tag keeps certificates of different
// runs against the same endpoint distinct.
type certFactory struct {
	key        *ecdsa.PrivateKey
	run        string
	serialBase *big.Int
	next       atomic.Int64
	notBefore  time.Time
	notAfter   time.Time
}

func newCertFactory() (*certFactory, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	var tag [6]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, err
	}
	// A random 95-bit base leaves room for 2^32 serials below the 20-octet
	// limit of RFC 5280 and keeps the number positive.
	base, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 95))
	if err != nil {
		return nil, err
	}
	base.Lsh(base, 32)
	now := time.Now()
	return &certFactory{
		key:        key,
		run:        hex.EncodeToString(tag[:]),
		serialBase: base,
		notBefore:  now.Add(-time.Hour),
		notAfter:   now.Add(365 * 24 * time.Hour),
	}, nil
}

// one makes certificate number n as PEM.
func (f *certFactory) one(n int64) (string, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).Add(f.serialBase, big.NewInt(n)),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("fleetcert-bench-%s-%d", f.run, n)},
		NotBefore:             f.notBefore,
		NotAfter:              f.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.key.PublicKey, f.key)
	if err != nil {
		return "", fmt.Errorf("create certificate %d: %w", n, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// generate makes n new certificates on all CPUs. It runs before a timed
// phase, so that the timed phase measures only the API calls.
func (f *certFactory) generate(n int) ([]string, error) {
	first := f.next.Add(int64(n)) - int64(n)
	out := make([]string, n)
	workers := runtime.NumCPU()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				pemText, err := f.one(first + int64(i))
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					return
				}
				out[i] = pemText
			}
		})
	}
	wg.Wait()
	return out, firstEr
}
