// Command fleetcert runs the fleetcert service: the AWS IoT-compatible
// certificate API today, with the console and the MQTT device gateway on the
// same registry as later issues add them.
//
// Usage:
//
//	fleetcert serve [--data-dir D] [--api-addr A] [--mqtt-addr M] [--database-url URL]
//	                [--mqtt-hostname NAME]... [--mqtt-cert PEM --mqtt-key PEM] [--region R]
//	                [--memory-limit SIZE]
//	fleetcert keys create --account-id ID [--data-dir D]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fleetcert:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage:
  fleetcert serve [--data-dir D] [--api-addr HOST:PORT] [--mqtt-addr HOST:PORT] [--database-url URL]
                  [--mqtt-hostname NAME]... [--mqtt-cert PEM --mqtt-key PEM] [--region R]
                  [--memory-limit SIZE]
  fleetcert keys create --account-id ID [--data-dir D]

Every flag can also be set in the environment as FLEETCERT_<FLAG>, e.g.
FLEETCERT_DATA_DIR. The bootstrap access key comes from
FLEETCERT_ACCESS_KEY_ID, FLEETCERT_SECRET_ACCESS_KEY and FLEETCERT_ACCOUNT_ID.`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "keys":
		if len(args) < 2 || args[1] != "create" {
			fmt.Fprintln(stderr, usage)
			return fmt.Errorf("unknown keys subcommand; use: fleetcert keys create --account-id ID")
		}
		return runKeysCreate(ctx, args[2:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain()
	m.Stdout = stdout
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&m.Config.DataDir, "data-dir", envOr("FLEETCERT_DATA_DIR", "./fleetcert-data"), "directory of the embedded store and keys")
	fs.StringVar(&m.Config.APIAddr, "api-addr", envOr("FLEETCERT_API_ADDR", "127.0.0.1:8080"), "address of the AWS API and console (HTTP)")
	fs.StringVar(&m.Config.MQTTAddr, "mqtt-addr", envOr("FLEETCERT_MQTT_ADDR", "127.0.0.1:8883"), "address of the MQTT device gateway (mutual TLS); empty disables it")
	fs.StringVar(&m.Config.MQTTCert, "mqtt-cert", os.Getenv("FLEETCERT_MQTT_CERT"), "PEM server certificate (and chain) of the MQTT gateway (default: generated in --data-dir)")
	fs.StringVar(&m.Config.MQTTKey, "mqtt-key", os.Getenv("FLEETCERT_MQTT_KEY"), "PEM key of --mqtt-cert")
	(&hostnameList{names: &m.Config.MQTTHostnames}).Set(os.Getenv("FLEETCERT_MQTT_HOSTNAME"))
	fs.Var(&hostnameList{names: &m.Config.MQTTHostnames}, "mqtt-hostname", "host name devices reach the gateway by; repeatable or comma-separated; the first names DescribeEndpoint's endpoints (default localhost)")
	fs.StringVar(&m.Config.Region, "region", envOr("FLEETCERT_REGION", "us-east-1"), "region of devices whose TLS server name names none")
	fs.StringVar(&m.Config.DatabaseURL, "database-url", os.Getenv("FLEETCERT_DATABASE_URL"), "postgres:// URL of a shared database (default: embedded SQLite in --data-dir)")
	memLimit := fs.String("memory-limit", os.Getenv("FLEETCERT_MEMORY_LIMIT"), "soft memory limit of the process, e.g. 900MiB, or off (default: GOMEMLIMIT, else 90% of the container's memory limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := applyMemoryLimit(*memLimit, m.Logger); err != nil {
		return err
	}
	m.Config.AccessKeyID = os.Getenv("FLEETCERT_ACCESS_KEY_ID")
	m.Config.SecretAccessKey = os.Getenv("FLEETCERT_SECRET_ACCESS_KEY")
	m.Config.AccountID = os.Getenv("FLEETCERT_ACCOUNT_ID")

	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	return m.Close()
}

func runKeysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", envOr("FLEETCERT_DATA_DIR", "./fleetcert-data"), "directory of the embedded store")
	accountID := fs.String("account-id", "", "12-digit account the key belongs to (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *accountID == "" {
		return fmt.Errorf("keys create: --account-id is required")
	}
	if _, err := os.Stat(*dataDir); err != nil {
		return fmt.Errorf("keys create: data dir %s: %w (start fleetcert serve with it first, or pass --data-dir)", *dataDir, err)
	}
	db, err := openStore(*dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := newRegistry(db, nil)
	k, err := reg.CreateAccessKey(ctx, *accountID)
	if err != nil {
		return fmt.Errorf("keys create: %s", errorText(err))
	}
	return json.NewEncoder(stdout).Encode(keyJSON{AccessKeyID: k.ID, SecretAccessKey: k.Secret, AccountID: k.AccountID})
}

// keyJSON is how an access key is printed, once, to its owner.
type keyJSON struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	AccountID       string `json:"accountId"`
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
