package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
)

// runRevoke registers count self-signed device certificates ACTIVE through
// fleetcert's API, connects one device with each, then revokes them one by
// one and times each drop: from UpdateCertificate's 200 response (and from
// the request's start) to the device's read returning (TCP closed).
func runRevoke(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8883", "gateway address (loopback)")
	caFile := fs.String("cafile", "", "CA of the gateway's server certificate")
	api := fs.String("api", "http://127.0.0.1:8080", "fleetcert API endpoint (loopback)")
	region := fs.String("region", "us-east-1", "region of the devices (the gateway's --region)")
	count := fs.Int("count", 200, "revocations to time")
	status := fs.String("status", "REVOKED", "status to set: REVOKED or INACTIVE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	client, err := apiClient(*api, *region)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	type device struct {
		id     string
		conn   *tls.Conn
		closed chan time.Time
	}
	devices := make([]*device, 0, *count)
	defer func() {
		for _, d := range devices {
			d.conn.Close()
		}
	}()
	for i := 0; i < *count && ctx.Err() == nil; i++ {
		cert, id, err := registerNew(ctx, client, fmt.Sprintf("revoke-bench-%d", i))
		if err != nil {
			return err
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"}
		c, err := dialMQTT(*addr, cfg, fmt.Sprintf("revoke-bench-%d", i), 0, 10*time.Second)
		if err != nil {
			return fmt.Errorf("connect device %d: %w", i, err)
		}
		d := &device{id: id, conn: c, closed: make(chan time.Time, 1)}
		go func() {
			io.Copy(io.Discard, c) // returns when the gateway closes the connection
			d.closed <- time.Now()
		}()
		devices = append(devices, d)
	}
	var fromResponse, fromRequest []time.Duration
	for _, d := range devices {
		t0 := time.Now()
		if _, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{
			CertificateId: aws.String(d.id), NewStatus: types.CertificateStatus(*status),
		}); err != nil {
			return fmt.Errorf("update certificate: %w", err)
		}
		t1 := time.Now()
		select {
		case closed := <-d.closed:
			fromRequest = append(fromRequest, closed.Sub(t0))
			fromResponse = append(fromResponse, max(closed.Sub(t1), 0))
		case <-time.After(10 * time.Second):
			return fmt.Errorf("device %s still connected 10s after UpdateCertificate", d.id)
		}
	}
	fmt.Printf("revoke: %d devices set %s one by one\n", len(fromResponse), *status)
	fmt.Printf("  200 response → TCP close: %s (0 when the close came first)\n", summary(fromResponse))
	fmt.Printf("  request start → TCP close: %s\n", summary(fromRequest))
	return nil
}

// apiClient is an AWS SDK IoT client of fleetcert's API at api (a loopback
// address), signing with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func apiClient(api, region string) (*iot.Client, error) {
	u, err := url.Parse(api)
	if err != nil {
		return nil, err
	}
	if err := checkLoopback(u.Host); err != nil {
		return nil, err
	}
	return iot.New(iot.Options{
		Region: region, BaseEndpoint: aws.String(api), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	}), nil
}

// registerNew makes a self-signed device certificate named cn, registers
// it ACTIVE without a CA and onboards it as thing cn (authorize): the
// device connects with client id cn. It returns the certificate and its id.
func registerNew(ctx context.Context, client *iot.Client, cn string) (tls.Certificate, string, error) {
	cert, err := selfSigned(cn)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	out, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))),
		Status:         types.CertificateStatusActive,
	})
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("register: %w", err)
	}
	if err := authorize(ctx, client, aws.ToString(out.CertificateArn), cn); err != nil {
		return tls.Certificate{}, "", err
	}
	return cert, aws.ToString(out.CertificateId), nil
}

func selfSigned(cn string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// runRegister registers --cert ACTIVE without a CA through fleetcert's API,
// so that the connect and hold loads can use it.
func runRegister(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8080", "fleetcert API endpoint (loopback)")
	region := fs.String("region", "us-east-1", "region to register in")
	certFile := fs.String("cert", "", "device certificate (PEM)")
	things := fs.Int("things", 64, "things bench-0 … bench-N-1 to attach the certificate to, with the benchmark's policy:\nthe connect load's worker w connects as bench-w")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client, err := apiClient(*api, *region)
	if err != nil {
		return err
	}
	pemBytes, err := os.ReadFile(*certFile)
	if err != nil {
		return err
	}
	out, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(string(pemBytes)), Status: types.CertificateStatusActive,
	})
	if err != nil {
		return err
	}
	for i := range *things {
		if err := authorize(ctx, client, aws.ToString(out.CertificateArn), fmt.Sprintf("bench-%d", i)); err != nil {
			return err
		}
	}
	fmt.Println("registered", aws.ToString(out.CertificateId), "as things bench-0 …", fmt.Sprintf("bench-%d", *things-1))
	return nil
}
