// Command fleetcert runs the fleetcert service: the AWS IoT-compatible
// certificate API, the web console and the MQTT device gateway on one
// registry, and the commands that administer it.
//
// Usage:
//
//	fleetcert serve [flags]             run the service
//	fleetcert wait [flags]              wait until a server answers /healthz
//	fleetcert keys create --account-id ID [--data-dir D]
//	fleetcert audit [--since T] [--certificate ID] [--data-dir D]
//	fleetcert migrate --from-sqlite DIR --database-url URL
//	fleetcert backup --to FILE [--data-dir D]
//	fleetcert restore --from FILE [--data-dir D]
//	fleetcert version
//
// Every command answers --help with its flags.
package main

import (
	"context"
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
	code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode reports err on stderr and returns the process's exit status: 0
// for success and for help asked for, 2 for a command line that cannot be
// run, 1 for a command that failed.
func exitCode(err error, stderr io.Writer) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "fleetcert:", err)
		return 2
	}
	fmt.Fprintln(stderr, "fleetcert:", err)
	return 1
}

// usageError is a command line that cannot be run: an unknown command or
// flag, a missing or malformed value. The command's usage has been shown.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// command is one of fleetcert's commands.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands are fleetcert's commands, in the order help lists them.
var commands = []command{
	{"serve", "run the AWS IoT certificate API, the web console and the MQTT device gateway", runServe},
	{"wait", "wait until a fleetcert server answers GET /healthz with 200", runWait},
	{"keys", "manage the access keys of accounts", runKeys},
	{"certificates", "revoke or deactivate every certificate of a CA, as a resumable job", runCertificates},
	{"jobs", "list or cancel the bulk jobs of an account", runJobs},
	{"audit", "print the audit log as JSON lines: who changed what, when, from where", runAudit},
	{"migrate", "copy an embedded store into PostgreSQL", runMigrate},
	{"backup", "write a consistent copy of the embedded store while the server runs", runBackup},
	{"restore", "replace the embedded store with a backup (the server stopped)", runRestore},
	{"version", "print fleetcert's version, commit and Go version", runVersion},
}

func writeUsage(w io.Writer) {
	fmt.Fprint(w, "usage: fleetcert <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
"fleetcert <command> --help" lists a command's flags. Every flag can also be
set in the environment as FLEETCERT_<FLAG>, e.g. FLEETCERT_DATA_DIR for
--data-dir; a flag on the command line wins over the environment.
`)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		writeUsage(stderr)
		return usagef("no command given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			// "fleetcert help serve" is "fleetcert serve --help".
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		writeUsage(stdout)
		return flag.ErrHelp
	case "-version", "--version":
		return runVersion(ctx, args[1:], stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	writeUsage(stderr)
	return usagef("unknown command %q", args[0])
}
