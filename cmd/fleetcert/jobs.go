package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Bulk jobs on the command line. Like keys, these commands work on the
// store directly (a server may be running on it). "certificates revoke"
// and "deactivate" start a job and run it in this process, printing its
// progress, while holding its lease: if this process dies, a running
// fleetcert serve on the same store takes the job over once the lease
// lapses (--job-lease of the CLI, 15 s by default), and goes on from its
// cursor; interrupted (Ctrl-C), it gives the lease back at once. With
// --detach it only starts the job, for a server's runner to take up.

// runCertificates is "fleetcert certificates <subcommand>".
func runCertificates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `usage: fleetcert certificates <subcommand> [flags]

subcommands:
  revoke      revoke every certificate of a CA (--ca ID), as a resumable job
  deactivate  set every certificate of a CA (--ca ID) INACTIVE, as a resumable job

"fleetcert certificates <subcommand> --help" lists a subcommand's flags.
`)
	}
	if len(args) == 0 {
		usage(stderr)
		return usagef("certificates: no subcommand given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return flag.ErrHelp
	case "revoke":
		return runBulk(ctx, "revoke", fleetcert.StatusRevoked, args[1:], stdout, stderr)
	case "deactivate":
		return runBulk(ctx, "deactivate", fleetcert.StatusInactive, args[1:], stdout, stderr)
	}
	usage(stderr)
	return usagef("certificates: unknown subcommand %q", args[0])
}

// jobFlags adds the flags every job command takes.
func jobFlags(fs *flagSet) (dataDir, databaseURL, accountID, region *string) {
	dataDir, databaseURL = storeFlags(fs)
	accountID = fs.String("account-id", "", "12-digit account of the CA and its certificates (required)")
	region = fs.String("region", "us-east-1", "region of the CA and its certificates")
	return dataDir, databaseURL, accountID, region
}

// runBulk is "fleetcert certificates revoke|deactivate".
func runBulk(ctx context.Context, verb string, action fleetcert.Status, args []string, stdout, stderr io.Writer) error {
	cmd := "certificates " + verb
	fs := newFlagSet(cmd, "fleetcert "+cmd+" --ca ID --account-id ID [--region R] [--detach] [--data-dir D | --database-url URL]", `
Moves every certificate of CA ID to `+string(action)+` in batches, as a job
that survives a crash: those registered under the CA, then those registered
without it whose signature verifies with its key. Devices of each batch are
dropped by the servers' gateways as it commits. One job per CA at a time.

The job runs in this process, which prints it as a JSON line after each
batch (at most once a second) and at the end; the exit status is 0 when
it COMPLETED. If this process dies, a fleetcert serve on the same store
takes the job over once its lease lapses and goes on where it stopped.
With --detach the job is only started, for a running server to run.`)
	dataDir, databaseURL, accountID, region := jobFlags(fs)
	caID := fs.String("ca", "", "id of the CA whose certificates change (required)")
	detach := fs.Bool("detach", false, "start the job and print it; a running fleetcert serve runs it")
	lease := fs.Duration("job-lease", fleetcert.DefaultJobLease, "how long the job stays this process's after each batch: a server takes it over this long after this process dies")
	batch := fs.Int("batch-size", fleetcert.DefaultJobBatchSize, "certificates changed per transaction")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *caID == "" || *accountID == "" {
		fs.writeUsage(stderr)
		return usagef("%s: --ca and --account-id are required", cmd)
	}
	if *batch < 1 || *lease < time.Second {
		return usagef("%s: --batch-size must be at least 1 and --job-lease at least 1s", cmd)
	}
	reg, closeStore, err := openKeysStore(ctx, cmd, *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	scope := fleetcert.Scope{AccountID: *accountID, Region: *region}
	in := fleetcert.JobInput{CACertificateID: *caID, Action: action, StartedBy: "fleetcert " + cmd}
	enc := json.NewEncoder(stdout)
	if *detach {
		j, err := reg.StartJob(ctx, scope, in)
		if err != nil {
			return fmt.Errorf("%s: %s", cmd, errorText(err))
		}
		return enc.Encode(jobLine(j))
	}
	runner := fleetcert.NewJobRunner(reg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	runner.Lease, runner.BatchSize = *lease, *batch
	var last time.Time
	runner.OnBatch = func(j *fleetcert.Job) {
		if now := time.Now(); j.Finished() || now.Sub(last) >= time.Second {
			last = now
			enc.Encode(jobLine(j))
		}
	}
	j, err := runner.Start(ctx, scope, in)
	if err != nil {
		return fmt.Errorf("%s: %s", cmd, errorText(err))
	}
	enc.Encode(jobLine(j))
	j, err = runner.RunJob(ctx, scope, j.ID)
	switch {
	case errors.Is(err, fleetcert.ErrJobHeld):
		return fmt.Errorf("%s: job %s is being run by another process now; follow it with fleetcert jobs", cmd, j.ID)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: interrupted; job %s goes on in a running fleetcert serve, from where it stopped", cmd, j.ID)
	case err != nil:
		return fmt.Errorf("%s: %s", cmd, errorText(err))
	case j.Status != fleetcert.JobCompleted:
		return fmt.Errorf("%s: job %s is %s: %s", cmd, j.ID, j.Status, j.Reason)
	}
	return nil
}

// runJobs is "fleetcert jobs".
func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("jobs", "fleetcert jobs --account-id ID [--region R] [--cancel JOB] [--data-dir D | --database-url URL]", `
Prints the bulk jobs of an account and region, oldest first, one JSON line
each: id, CA, action, status, phase, progress, who started it, times, and
the process holding it. --cancel JOB cancels a job in progress (the
certificates it changed stay changed) and prints it.`)
	dataDir, databaseURL, accountID, region := jobFlags(fs)
	cancel := fs.String("cancel", "", "cancel this job")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	if *accountID == "" {
		fs.writeUsage(stderr)
		return usagef("jobs: --account-id is required")
	}
	reg, closeStore, err := openKeysStore(ctx, "jobs", *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	scope := fleetcert.Scope{AccountID: *accountID, Region: *region}
	enc := json.NewEncoder(stdout)
	if *cancel != "" {
		j, err := reg.CancelJob(ctx, scope, *cancel, "fleetcert jobs --cancel")
		if err != nil {
			return fmt.Errorf("jobs: %s", errorText(err))
		}
		return enc.Encode(jobLine(j))
	}
	for after := ""; ; {
		jobs, next, err := reg.ListJobs(ctx, scope, after, fleetcert.MaxPageSize)
		if err != nil {
			return fmt.Errorf("jobs: %s", errorText(err))
		}
		for _, j := range jobs {
			if err := enc.Encode(jobLine(j)); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// jobJSON is a job as the CLI prints it.
type jobJSON struct {
	JobID           string `json:"jobId"`
	AccountID       string `json:"accountId"`
	Region          string `json:"region"`
	CACertificateID string `json:"caCertificateId"`
	Action          string `json:"action"`
	Status          string `json:"status"`
	Phase           string `json:"phase"`
	Processed       int64  `json:"processed"`
	Changed         int64  `json:"changed"`
	Unchanged       int64  `json:"unchanged"`
	Skipped         int64  `json:"skipped"`
	Signed          int64  `json:"signed"`
	StartedBy       string `json:"startedBy,omitempty"`
	Reason          string `json:"reason,omitempty"`
	CreatedAt       string `json:"createdAt"`
	LastUpdatedAt   string `json:"lastUpdatedAt"`
	CompletedAt     string `json:"completedAt,omitempty"`
	Owner           string `json:"owner,omitempty"`
}

func jobLine(j *fleetcert.Job) jobJSON {
	out := jobJSON{
		JobID: j.ID, AccountID: j.AccountID, Region: j.Region, CACertificateID: j.CACertificateID,
		Action: string(j.Action), Status: string(j.Status), Phase: j.Phase,
		Processed: j.Progress.Processed(), Changed: j.Progress.Changed, Unchanged: j.Progress.Unchanged,
		Skipped: j.Progress.Skipped, Signed: j.Progress.Signed, StartedBy: j.StartedBy, Reason: j.Reason,
		CreatedAt: j.CreatedAt.Format(time.RFC3339Nano), LastUpdatedAt: j.LastUpdatedAt.Format(time.RFC3339Nano),
		Owner: j.Owner,
	}
	if !j.CompletedAt.IsZero() {
		out.CompletedAt = j.CompletedAt.Format(time.RFC3339Nano)
	}
	return out
}
