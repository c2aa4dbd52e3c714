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
	"time"

	"github.com/fleetcert/fleetcert"
)

// runKeys is "fleetcert keys <subcommand>".
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `usage: fleetcert keys <subcommand> [flags]

subcommands:
  create   add an access key for an account and print it once
  list     list access keys (ids, accounts, creation times; never secrets)
  delete   delete an access key: refused at once by every node
  rotate   make a new key for a key's account, print it once, delete the old

"fleetcert keys <subcommand> --help" lists a subcommand's flags.
`)
	}
	if len(args) == 0 {
		usage(stderr)
		return usagef("keys: no subcommand given")
	}
	// The audit log names the command line as who changed the keys.
	ctx = fleetcert.WithActor(ctx, fleetcert.Actor{ID: fleetcert.ActorCLI})
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return flag.ErrHelp
	case "create":
		return runKeysCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return runKeysList(ctx, args[1:], stdout, stderr)
	case "delete":
		return runKeysDelete(ctx, args[1:], stdout, stderr)
	case "rotate":
		return runKeysRotate(ctx, args[1:], stdout, stderr)
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
	dataDir, databaseURL := storeFlags(fs)
	accountID := fs.String("account-id", "", "12-digit account the key belongs to (required)")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *accountID == "" {
		fs.writeUsage(stderr)
		return usagef("keys create: --account-id is required")
	}
	reg, closeStore, err := openKeysStore(ctx, "keys create", *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	k, err := reg.CreateAccessKey(ctx, *accountID)
	if err != nil {
		return fmt.Errorf("keys create: %s", errorText(err))
	}
	return json.NewEncoder(stdout).Encode(keyJSON{AccessKeyID: k.ID, SecretAccessKey: k.Secret, AccountID: k.AccountID})
}

// storeFlags adds --data-dir and --database-url, as every keys subcommand
// takes them.
func storeFlags(fs *flagSet) (dataDir, databaseURL *string) {
	dataDir = fs.String("data-dir", "./fleetcert-data", "data directory of the fleetcert server (as given to fleetcert serve)")
	databaseURL = fs.String("database-url", "", "postgres:// URL of a cluster's database (instead of --data-dir)")
	return dataDir, databaseURL
}

// openKeysStore opens the store a keys subcommand works on and returns a
// Registry on it and the function that closes it.
func openKeysStore(ctx context.Context, cmd, dataDir, databaseURL string) (*fleetcert.Registry, func(), error) {
	var (
		db  fleetcert.Store
		err error
	)
	if databaseURL != "" {
		db, err = openStore(ctx, Config{DatabaseURL: databaseURL}, slog.Default())
	} else {
		db, err = openExistingStore(ctx, dataDir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return fleetcert.NewRegistry(db, nil), func() { db.Close() }, nil
}

// runKeysList is "fleetcert keys list".
func runKeysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys list", "fleetcert keys list [--account-id ID] [--data-dir D | --database-url URL]", `
Prints the access keys of the store as JSON, {"accessKeys": [{accessKeyId,
accountId, createDate}]}, in id order: every account's, or account ID's
with --account-id. Secrets are never printed again.`)
	dataDir, databaseURL := storeFlags(fs)
	accountID := fs.String("account-id", "", "list only this 12-digit account's keys")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	reg, closeStore, err := openKeysStore(ctx, "keys list", *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	out := struct {
		AccessKeys []keyMetadataJSON `json:"accessKeys"`
	}{AccessKeys: []keyMetadataJSON{}}
	for after := ""; ; {
		keys, next, err := reg.ListAccessKeys(ctx, *accountID, after, 1000)
		if err != nil {
			return fmt.Errorf("keys list: %s", errorText(err))
		}
		for _, k := range keys {
			out.AccessKeys = append(out.AccessKeys, keyMetadataJSON{
				AccessKeyID: k.ID, AccountID: k.AccountID, CreateDate: k.CreatedAt.UTC().Format(time.RFC3339)})
		}
		if next == "" {
			break
		}
		after = next
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// keyMetadataJSON is how keys list shows a key, after IAM's
// AccessKeyMetadata.
type keyMetadataJSON struct {
	AccessKeyID string `json:"accessKeyId"`
	AccountID   string `json:"accountId"`
	CreateDate  string `json:"createDate"`
}

// runKeysDelete is "fleetcert keys delete".
func runKeysDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys delete", "fleetcert keys delete --access-key-id ID [--data-dir D | --database-url URL]", `
Deletes access key ID. Every fleetcert server on the store refuses it from
the moment it reads the deletion from its change feed (PostgreSQL notifies
at once; an embedded store is read four times a second), and console
sessions signed in with it end at their next request. A bootstrap key given
by FLEETCERT_ACCESS_KEY_ID is not stored again at the next start: unset it.`)
	dataDir, databaseURL := storeFlags(fs)
	keyID := fs.String("access-key-id", "", "the key to delete (required)")
	fs.commandLineOnly = map[string]bool{"access-key-id": true}
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *keyID == "" {
		fs.writeUsage(stderr)
		return usagef("keys delete: --access-key-id is required")
	}
	reg, closeStore, err := openKeysStore(ctx, "keys delete", *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	if err := reg.DeleteAccessKey(ctx, *keyID); err != nil {
		return fmt.Errorf("keys delete: %s", errorText(err))
	}
	return nil
}

// runKeysRotate is "fleetcert keys rotate".
func runKeysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys rotate", "fleetcert keys rotate --access-key-id ID [--keep-old] [--data-dir D | --database-url URL]", `
Makes a new access key for the account of key ID and prints it once, as
keys create does; in the same transaction it deletes key ID (as keys
delete), which suits a key that leaked. With --keep-old both keys work until
you run keys delete on the old one: IAM's rotation (create the new key,
move your clients to it, then delete the old one) for clients that cannot
all switch at once. fleetcert has no inactive state for keys.`)
	dataDir, databaseURL := storeFlags(fs)
	keyID := fs.String("access-key-id", "", "the key to replace (required)")
	fs.commandLineOnly = map[string]bool{"access-key-id": true}
	keepOld := fs.Bool("keep-old", false, "keep the old key until keys delete (a grace period for clients)")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *keyID == "" {
		fs.writeUsage(stderr)
		return usagef("keys rotate: --access-key-id is required")
	}
	reg, closeStore, err := openKeysStore(ctx, "keys rotate", *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	k, err := reg.RotateAccessKey(ctx, *keyID, *keepOld)
	if err != nil {
		return fmt.Errorf("keys rotate: %s", errorText(err))
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
