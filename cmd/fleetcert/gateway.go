package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
	"github.com/fleetcert/fleetcert/console"
	"github.com/fleetcert/fleetcert/mqtt"
)

// gatewayCASetting is the Store setting that holds the device gateway's CA
// (certificate and key, PEM).
const gatewayCASetting = "mqtt-gateway-ca"

// startGateway starts the MQTT device gateway when --mqtt-addr is set, and
// lets the API's DescribeEndpoint name its endpoints.
func (m *Main) startGateway(ctx context.Context, api *awsapi.Handler) error {
	c := m.Config
	if c.MQTTAddr == "" {
		m.Logger.Info("mqtt gateway disabled (--mqtt-addr is empty)")
		return nil
	}
	certFile, keyFile := c.MQTTCert, c.MQTTKey
	caFile := ""
	switch {
	case certFile != "" && keyFile != "":
	case certFile != "" || keyFile != "":
		return fmt.Errorf("set both --mqtt-cert and --mqtt-key, or neither to use a certificate generated in the data dir")
	default:
		// The CA devices trust is the store's, shared by every node; each
		// node keeps a server certificate it signs in its data dir.
		caPEM, err := fleetcert.LoadOrCreateSetting(ctx, m.Store, gatewayCASetting, func() ([]byte, error) {
			return mqtt.ServerCAPEM(c.DataDir, time.Now())
		})
		if err != nil {
			return err
		}
		if err := mqtt.InstallServerCA(c.DataDir, caPEM); err != nil {
			return err
		}
		files, err := mqtt.LoadOrCreateServerFiles(c.DataDir, c.MQTTHostnames, c.Region, time.Now())
		if err != nil {
			return err
		}
		certFile, keyFile, caFile = files.CertFile, files.KeyFile, files.CAFile
	}
	defaultAccount, err := m.defaultAccount()
	if err != nil {
		return err
	}
	g := mqtt.NewGateway(m.Registry, m.Logger)
	g.DefaultAccountID = defaultAccount
	g.Addr = c.MQTTAddr
	g.CertFile, g.KeyFile = certFile, keyFile
	g.Region = c.Region
	g.Hostnames = c.MQTTHostnames
	// Nodes of a cluster keep one session per client id among them.
	g.AnnounceSessions = c.DatabaseURL != ""
	g.DevicePoliciesOff = c.DevicePoliciesOff
	c.Limits.configureGateway(g)
	host, _ := os.Hostname()
	if r := c.NATS.router(fmt.Sprintf("fleetcert %s[%d]", host, os.Getpid())); r != nil {
		r.Logger = m.Logger
		g.Cluster = r
	}
	if err := g.Start(ctx); err != nil {
		return fmt.Errorf("mqtt gateway: %w", err)
	}
	m.Gateway = g
	api.Endpoint = g.Endpoint
	attrs := []any{"mqtt", g.ListenAddr(), "region", g.Region}
	if caFile != "" {
		attrs = append(attrs, "ca", caFile)
	}
	m.Logger.Info("mqtt gateway ready", attrs...)
	return nil
}

// closeGateway disconnects the devices and stops the gateway.
func (m *Main) closeGateway() error {
	if m.Gateway == nil {
		return nil
	}
	return m.Gateway.Close()
}

// MQTTAddr returns the address the gateway listens on, "" when disabled.
func (m *Main) MQTTAddr() string {
	if m.Gateway == nil {
		return ""
	}
	return m.Gateway.ListenAddr()
}

// metrics serves GET /metrics in the Prometheus text format.
func (m *Main) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	ready := 0
	if m.ready.Load() {
		ready = 1
	}
	fmt.Fprintf(w, "# HELP fleetcert_ready Whether fleetcert serves requests.\n# TYPE fleetcert_ready gauge\nfleetcert_ready %d\n", ready)
	writeAPIMetrics(w, m.apiListener)
	if m.Gateway != nil {
		m.Gateway.WriteMetrics(w)
	}
}

// hostnameList is a flag.Value of host names, repeatable or
// comma-separated. Names given on the command line replace those from the
// environment.
type hostnameList struct {
	names   *[]string
	flagSet bool
}

func (l *hostnameList) String() string {
	if l.names == nil {
		return ""
	}
	return strings.Join(*l.names, ",")
}

func (l *hostnameList) Set(v string) error {
	if !l.flagSet {
		l.flagSet = true
		*l.names = nil
	}
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			*l.names = append(*l.names, strings.ToLower(h))
		}
	}
	return nil
}

// gatewaySessions shows the gateway's live sessions in the console; the two
// packages do not import each other.
type gatewaySessions struct{ g *mqtt.Gateway }

func (s gatewaySessions) ClientsOf(scope fleetcert.Scope, certificateID string) []console.Session {
	return consoleSessions(s.g.SessionsOf(scope, certificateID))
}

func (s gatewaySessions) Connected(scope fleetcert.Scope) []console.Session {
	return consoleSessions(s.g.Sessions(scope))
}

func consoleSessions(in []mqtt.Session) []console.Session {
	out := make([]console.Session, len(in))
	for i, s := range in {
		out[i] = console.Session{ClientID: s.ClientID, CertificateID: s.CertificateID, RemoteAddr: s.RemoteAddr, ConnectedAt: s.ConnectedAt}
	}
	return out
}
