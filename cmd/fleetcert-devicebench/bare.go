package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// runBare serves the ceiling: crypto/tls with the client certificate
// verified against the CA, one CONNECT read and a CONNACK written per
// connection, and nothing else.
func runBare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	dir := fs.String("dir", "", "directory written by the certs command (required)")
	certFile := fs.String("cert", "", "PEM server certificate (default: server.pem in --dir); give the gateway's to do its handshake")
	keyFile := fs.String("key", "", "PEM key of --cert (default: server.key in --dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *certFile == "" {
		*certFile, *keyFile = filepath.Join(*dir, "server.pem"), filepath.Join(*dir, "server.key")
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*dir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", *listen, &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr())
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go serveBare(c.(*tls.Conn))
	}
}

func serveBare(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	// Fixed header, remaining length, the rest of CONNECT.
	var h [1]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != 0x10 {
		return
	}
	rem, mul := 0, 1
	for i := 0; i < 4; i++ {
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		rem += int(h[0]&0x7f) * mul
		mul *= 128
		if h[0]&0x80 == 0 {
			break
		}
	}
	if _, err := io.CopyN(io.Discard, c, int64(rem)); err != nil {
		return
	}
	if _, err := c.Write([]byte{0x20, 0x02, 0x00, 0x00}); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	io.Copy(io.Discard, c) // until DISCONNECT and close
}
