package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Regions are the AWS regions whose endpoint names the generated server
// certificate covers (one wildcard name per region and host name), besides
// the gateway's own region: a certificate's region is the one its owner's
// API calls were signed for, which can be any of them.
var Regions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	"af-south-1", "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
	"ap-southeast-5", "ap-southeast-7", "ap-northeast-1", "ap-northeast-2",
	"ap-northeast-3", "ca-central-1", "ca-west-1", "eu-central-1",
	"eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1",
	"eu-south-2", "eu-north-1", "il-central-1", "me-south-1", "me-central-1",
	"mx-central-1", "sa-east-1", "us-gov-east-1", "us-gov-west-1",
	"cn-north-1", "cn-northwest-1",
}

// ServerFiles are the PEM files of the gateway's TLS identity in a data
// directory: a CA that devices trust (their --cafile, as AmazonRootCA1.pem
// on AWS) and the server certificate it signs.
type ServerFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// ServerNames returns the names the gateway's server certificate must
// carry: localhost, every host name, and for each host name and region the
// wildcard *.iot.{region}.{host} that covers the per-account endpoints
// ({accountId}-ats.iot.{region}.{host}). IP addresses are returned apart.
func ServerNames(hostnames []string, region string) (dns []string, ips []net.IP) {
	hosts := []string{DefaultHostname}
	for _, h := range hostnames {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	regions := slices.Clone(Regions)
	if region != "" && !slices.Contains(regions, region) {
		regions = append(regions, region)
	}
	ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		dns = append(dns, h)
		for _, r := range regions {
			dns = append(dns, "*.iot."+r+"."+h)
		}
	}
	return dns, ips
}

// LoadOrCreateServerFiles makes sure dir holds the gateway's CA and a server
// certificate valid at now for at least 30 more days and naming every name
// of ServerNames(hostnames, region). It generates what is missing: the CA
// once (ECDSA P-256, 10 years), the server certificate whenever the names
// change or it nears its end (1 year). Keys are written mode 0600.
func LoadOrCreateServerFiles(dir string, hostnames []string, region string, now time.Time) (*ServerFiles, error) {
	f := &ServerFiles{
		CAFile:   filepath.Join(dir, "mqtt-ca.pem"),
		CertFile: filepath.Join(dir, "mqtt-server.pem"),
		KeyFile:  filepath.Join(dir, "mqtt-server.key"),
	}
	caKeyFile := filepath.Join(dir, "mqtt-ca.key")
	ca, err := tls.LoadX509KeyPair(f.CAFile, caKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = createCA(f.CAFile, caKeyFile, now)
	}
	if err != nil {
		return nil, fmt.Errorf("mqtt gateway CA: %w", err)
	}
	dns, ips := ServerNames(hostnames, region)
	if current, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err == nil {
		if leaf := current.Leaf; leaf != nil && leaf.CheckSignatureFrom(ca.Leaf) == nil &&
			now.Add(30*24*time.Hour).Before(leaf.NotAfter) && coversAll(leaf, dns, ips) {
			return f, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("mqtt server certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: "fleetcert MQTT gateway"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Leaf, key.Public(), ca.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("mqtt server certificate: %w", err)
	}
	if err := writePair(f.CertFile, f.KeyFile, der, key); err != nil {
		return nil, err
	}
	return f, nil
}

func coversAll(leaf *x509.Certificate, dns []string, ips []net.IP) bool {
	for _, n := range dns {
		if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func createCA(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "fleetcert MQTT gateway CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writePair(certFile, keyFile, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The key first: a certificate without its key would be loaded and fail.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// ServerCAPEM returns the gateway CA of dir as PEM, its certificate then
// its PKCS #8 key, creating the CA when dir has none. This is the value a
// cluster keeps in its store, so that every node's server certificate
// chains to one CA that devices trust.
func ServerCAPEM(dir string, now time.Time) ([]byte, error) {
	certFile, keyFile := filepath.Join(dir, "mqtt-ca.pem"), filepath.Join(dir, "mqtt-ca.key")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); errors.Is(err, os.ErrNotExist) {
		if _, err := createCA(certFile, keyFile, now); err != nil {
			return nil, fmt.Errorf("mqtt gateway CA: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("mqtt gateway CA: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return append(certPEM, keyPEM...), nil
}

// InstallServerCA makes caPEM (as ServerCAPEM returns it) the gateway CA of
// dir, unless dir already holds it. LoadOrCreateServerFiles then replaces a
// server certificate that the CA did not sign.
func InstallServerCA(dir string, caPEM []byte) error {
	var certPEM, keyPEM []byte
	for rest := caPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			certPEM = pem.EncodeToMemory(b)
		case "PRIVATE KEY", "EC PRIVATE KEY":
			keyPEM = pem.EncodeToMemory(b)
		}
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("mqtt gateway CA from the store: %w", err)
	}
	certFile, keyFile := filepath.Join(dir, "mqtt-ca.pem"), filepath.Join(dir, "mqtt-ca.key")
	if cur, err := os.ReadFile(certFile); err == nil && string(cur) == string(certPEM) {
		if cur, err := os.ReadFile(keyFile); err == nil && string(cur) == string(keyPEM) {
			return nil
		}
	}
	// The key first: a certificate without its key would be loaded and fail.
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, certPEM, 0o644)
}
