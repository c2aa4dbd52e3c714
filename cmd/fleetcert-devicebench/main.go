// Command fleetcert-devicebench loads the device side of an MQTT broker
// over mutual TLS and reports what a fleet operator cares about:
//
//	connect  new mTLS connections per second, each a full TLS handshake
//	         (no resumption) with a client certificate, then MQTT 3.1.1
//	         CONNECT → CONNACK and DISCONNECT; p50/p99 of one connection
//	hold     N concurrent idle device connections (keepalive 0), and the
//	         RSS of the broker's process (--pid) once they are all open
//	revoke   R connected devices revoked one by one through fleetcert's AWS
//	         API; the time from UpdateCertificate's 200 response to the
//	         device seeing its TCP connection closed
//	bare     serve a bare crypto/tls server on loopback that does the same
//	         handshake (client certificate verified against --ca) and
//	         answers CONNECT with CONNACK, the ceiling for "connect"
//	register register a device certificate ACTIVE through fleetcert's API
//	certs    write a CA, a device certificate it signs and a server
//	         certificate for 127.0.0.1 into --out, for the bare server and
//	         mosquitto
//
// Only loopback addresses are accepted, every loop is bounded by a count
// and a duration, and every connection has a deadline.
//
//	fleetcert-devicebench certs --out DIR
//	fleetcert-devicebench bare --listen 127.0.0.1:0 --dir DIR [--cert PEM --key PEM]
//	fleetcert-devicebench connect --addr 127.0.0.1:8883 --cafile CA --cert C --key K
//	fleetcert-devicebench hold --addr … --count 20000 --pid PID
//	fleetcert-devicebench revoke --addr … --api http://127.0.0.1:8080 --count 200
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fleetcert-devicebench:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: fleetcert-devicebench certs|bare|register|connect|hold|revoke [flags]")
		return flag.ErrHelp
	}
	switch args[0] {
	case "certs":
		return runCerts(args[1:])
	case "bare":
		return runBare(ctx, args[1:])
	case "connect":
		return runConnect(ctx, args[1:])
	case "hold":
		return runHold(ctx, args[1:])
	case "revoke":
		return runRevoke(ctx, args[1:])
	case "register":
		return runRegister(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// checkLoopback refuses addresses that are not on this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: this tool measures a broker on the same machine", addr)
	}
	return nil
}
