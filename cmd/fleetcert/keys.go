package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/fleetcert/fleetcert"
)

// runKeys is "fleetcert keys <subcommand>".
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `usage: fleetcert keys <subcommand> [flags]

subcommands:
  create   add an access key for an account and print it once

"fleetcert keys <subcommand> --help" lists a subcommand's flags.
`)
	}
	if len(args) == 0 {
		usage(stderr)
		return usagef("keys: no subcommand given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return flag.ErrHelp
	case "create":
		return runKeysCreate(ctx, args[1:], stdout, stderr)
	}
	usage(stderr)
	return usagef("keys: unknown subcommand %q", args[0])
}

// runKeysCreate is "fleetcert keys create".
func runKeysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys create", "fleetcert keys create --account-id ID [--data-dir D | --database-url URL]", `
Adds an access key for account ID to the store of a fleetcert server (it
may be running) and prints it once as JSON: accessKeyId, secretAccessKey,
accountId. The secret is not shown again.`)
	dataDir := fs.String("data-dir", "./fleetcert-data", "data directory of the fleetcert server (as given to fleetcert serve)")
	databaseURL := fs.String("database-url", "", "postgres:// URL of a cluster's database (instead of --data-dir)")
	accountID := fs.String("account-id", "", "12-digit account the key belongs to (required)")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *accountID == "" {
		fs.writeUsage(stderr)
		return usagef("keys create: --account-id is required")
	}
	var (
		db  fleetcert.Store
		err error
	)
	if *databaseURL != "" {
		db, err = openStore(ctx, Config{DatabaseURL: *databaseURL}, slog.Default())
	} else {
		db, err = openExistingStore(ctx, *dataDir)
	}
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	defer db.Close()
	reg := fleetcert.NewRegistry(db, nil)
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

// openExistingStore opens the embedded store of a data dir that fleetcert
// serve has used: a key or a change written into a new, empty store would
// reach no server.
func openExistingStore(ctx context.Context, dataDir string) (fleetcert.Store, error) {
	path := filepath.Join(dataDir, storeFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no fleetcert store (no %s): pass the --data-dir of your fleetcert server, or start fleetcert serve with this one first", dataDir, storeFile)
	} else if err != nil {
		return nil, err
	}
	return openStore(ctx, Config{DataDir: dataDir}, slog.Default())
}
