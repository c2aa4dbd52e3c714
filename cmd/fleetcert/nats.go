package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/fleetcert/fleetcert/mqtt/natsroute"
)

// NATS is how a node joins the cluster's message fabric (--nats-*).
type NATS struct {
	URL      string // comma-separated nats:// or tls:// URLs; empty: standalone
	Creds    string // NATS credentials file (JWT and NKey seed)
	CA       string // PEM CA the NATS servers' certificates are verified against
	Cert     string // PEM client certificate, for NATS servers that verify clients
	Key      string
	Replicas int // replicas of the retained messages' bucket
}

func addNATSFlags(fs *flagSet, n *NATS) {
	fs.StringVar(&n.URL, "nats-url", "", "NATS servers, comma-separated (nats://host:4222, tls://…): MQTT messages and retained\nmessages are routed through them to the other nodes (empty: this node is a broker of its own)")
	fs.StringVar(&n.Creds, "nats-creds", "", "NATS credentials file (user JWT and NKey seed)")
	fs.StringVar(&n.CA, "nats-ca", "", "PEM CA certificate(s) to verify the NATS servers with (empty: the system's)")
	fs.StringVar(&n.Cert, "nats-cert", "", "PEM client certificate for NATS servers that verify clients")
	fs.StringVar(&n.Key, "nats-key", "", "PEM key of --nats-cert")
	fs.IntVar(&n.Replicas, "nats-replicas", 1, "replicas of the JetStream bucket of retained messages (3 on a NATS cluster of 3)")
}

// check refuses --nats-* values that cannot work, before anything starts.
func (n NATS) check() error {
	if n.URL == "" {
		if n.Creds != "" || n.CA != "" || n.Cert != "" || n.Key != "" {
			return errors.New("--nats-creds, --nats-ca, --nats-cert and --nats-key need --nats-url")
		}
		return nil
	}
	if (n.Cert == "") != (n.Key == "") {
		return errors.New("set both --nats-cert and --nats-key, or neither")
	}
	for _, f := range []string{n.Creds, n.CA, n.Cert, n.Key} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("--nats-*: %w", err)
		}
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		return fmt.Errorf("--nats-replicas %d: JetStream allows 1 to 5", n.Replicas)
	}
	return nil
}

// router returns the node's NATS router; nil without --nats-url.
func (n NATS) router(name string) *natsroute.Router {
	if n.URL == "" {
		return nil
	}
	var opts []nats.Option
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	if n.CA != "" {
		opts = append(opts, nats.RootCAs(n.CA))
	}
	if n.Cert != "" {
		opts = append(opts, nats.ClientCert(n.Cert, n.Key))
	}
	r := natsroute.New(strings.TrimSpace(n.URL), opts...)
	r.Name, r.Replicas = name, n.Replicas
	return r
}
