package fleetcert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Defaults of a JobRunner.
const (
	DefaultJobLease        = 15 * time.Second
	DefaultJobBatchSize    = 2000
	DefaultJobPollInterval = time.Second
	DefaultMaxJobs         = 2
)

// ErrJobHeld is returned by JobRunner.RunJob for a job another runner holds
// a live lease on: that runner carries it on.
var ErrJobHeld = errors.New("job is being run by another process")

// JobRunner runs bulk jobs (jobs.go). Every process on a store may run
// one: a job is carried on by the runner holding its lease, which each
// committed batch renews; a runner that finds a job nobody holds, or whose
// lease lapsed (its process crashed or was stopped), takes it over and goes
// on from its cursor. Create it with NewJobRunner and set its fields before
// use.
type JobRunner struct {
	Registry *Registry
	Logger   *slog.Logger

	// Node names this runner in the leases it holds; NewJobRunner makes a
	// unique one.
	Node string
	// Lease is how long a job stays this runner's after its last batch:
	// how long a crashed runner's job waits before another takes it over.
	Lease time.Duration
	// BatchSize is how many certificates one batch (one transaction)
	// moves at most.
	BatchSize int
	// PollInterval is how often Run looks for jobs to take up, besides
	// being woken by this process's StartJob.
	PollInterval time.Duration
	// MaxJobs is how many jobs Run runs at once.
	MaxJobs int

	// OnBatch, when set, is called with the job after each batch that
	// committed and when it ends (the CLI prints progress from it).
	OnBatch func(*Job)
}

// NewJobRunner returns a runner of reg's jobs with the default settings
// and a unique Node name (host, process id and random digits).
func NewJobRunner(reg *Registry, logger *slog.Logger) *JobRunner {
	if logger == nil {
		logger = slog.Default()
	}
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return &JobRunner{
		Registry: reg, Logger: logger,
		Node:  fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		Lease: DefaultJobLease, BatchSize: DefaultJobBatchSize,
		PollInterval: DefaultJobPollInterval, MaxJobs: DefaultMaxJobs,
	}
}

// Start starts a job (Registry.StartJob) that this runner holds from the
// start, so that no other runner takes it up while the caller goes on to
// RunJob it.
func (jr *JobRunner) Start(ctx context.Context, scope Scope, in JobInput) (*Job, error) {
	return jr.Registry.startJob(ctx, scope, in, jr.Node, jr.Registry.now().Add(jr.Lease))
}

// Run takes up the jobs in progress that no runner holds, and runs them,
// until ctx ends. It looks every PollInterval and when this process starts
// a job.
func (jr *JobRunner) Run(ctx context.Context) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[string]bool{}
	)
	defer wg.Wait()
	tick := time.NewTicker(jr.PollInterval)
	defer tick.Stop()
	for {
		wake := jr.Registry.jobs.wait()
		jobs, err := jr.available(ctx)
		if err != nil && ctx.Err() == nil {
			jr.Logger.Error("jobs: look for jobs to run", "err", err)
		}
		for _, j := range jobs {
			key := jobName(j.Scope, j.ID)
			mu.Lock()
			if running[key] || len(running) >= jr.MaxJobs {
				mu.Unlock()
				continue
			}
			running[key] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(running, key)
					mu.Unlock()
				}()
				if _, err := jr.RunJob(ctx, j.Scope, j.ID); err != nil && !errors.Is(err, ErrJobHeld) && ctx.Err() == nil {
					jr.Logger.Error("jobs: run job", "jobId", j.ID, "account", j.AccountID, "region", j.Region, "err", err)
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

// available returns the jobs in progress that no runner holds: never
// taken up, given back, or whose lease lapsed.
func (jr *JobRunner) available(ctx context.Context) ([]*Job, error) {
	var objs []*Object
	err := jr.Registry.Store.View(ctx, func(tx Tx) (err error) {
		objs, err = tx.ListObjects(ctx, ObjectQuery{Scope: JobScope, Kind: ObjectJob, Label: string(JobInProgress), Limit: 100})
		return err
	})
	if err != nil {
		return nil, err
	}
	now := jr.Registry.now()
	var out []*Job
	for _, o := range objs {
		j, err := decodeJob(o)
		if err != nil {
			return nil, err
		}
		// A live lease of this runner's is a job this process runs
		// already (the console's, the CLI's).
		if j.Owner == "" || !now.Before(j.LeaseUntil) {
			out = append(out, j)
		}
	}
	return out, nil
}

// RunJob takes job id of scope (unless another runner holds a live lease
// on it: ErrJobHeld) and runs it until it ends, ctx ends (the lease is
// then given back, for another runner to go on at once), or another
// runner takes it over. It returns the job as last read or written.
func (jr *JobRunner) RunJob(ctx context.Context, scope Scope, id string) (*Job, error) {
	j, err := jr.claim(ctx, scope, id)
	if err != nil || j.Finished() {
		return j, err
	}
	jr.Logger.Info("jobs: running job", "jobId", j.ID, "account", j.AccountID, "region", j.Region,
		"caCertificateId", j.CACertificateID, "action", j.Action, "phase", j.Phase, "processed", j.Progress.Processed())
	for !j.Finished() {
		if ctx.Err() != nil {
			jr.release(j)
			return j, ctx.Err()
		}
		next, err := jr.batch(ctx, j)
		switch {
		case err == nil:
			j = next
		case ErrorCode(err) == EVersionConflict || errors.Is(err, errJobLost):
			// Someone else wrote the job: a cancellation, or a runner
			// that took over after our lease lapsed.
			cur, rerr := jr.Registry.Job(context.WithoutCancel(ctx), scope, id)
			if rerr != nil {
				return j, rerr
			}
			if cur.Finished() {
				jr.report(cur)
				return cur, nil
			}
			if cur.Owner != jr.Node {
				return cur, ErrJobHeld
			}
			j = cur
			continue
		case ctx.Err() != nil:
			jr.release(j)
			return j, ctx.Err()
		case ErrorCode(err) != EInternalFailure:
			// A rule refuses to go on (the CA was deleted): the job
			// fails, saying why.
			return jr.fail(ctx, j, ErrorMessage(err))
		default:
			return j, fmt.Errorf("job %s: %w", id, err)
		}
		jr.report(j)
	}
	jr.Logger.Info("jobs: job ended", "jobId", j.ID, "status", j.Status, "changed", j.Progress.Changed,
		"unchanged", j.Progress.Unchanged, "skipped", j.Progress.Skipped, "signed", j.Progress.Signed,
		"took", j.CompletedAt.Sub(j.CreatedAt))
	return j, nil
}

func (jr *JobRunner) report(j *Job) {
	if jr.OnBatch != nil {
		jr.OnBatch(j)
	}
}

// errJobLost says a batch found the job no longer this runner's.
var errJobLost = errors.New("job no longer held by this runner")

// claim takes job id's lease for this runner.
func (jr *JobRunner) claim(ctx context.Context, scope Scope, id string) (*Job, error) {
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	var j *Job
	err := jr.Registry.update(ctx, "RunJob", func(tx Tx) (err error) {
		if j, err = readJob(ctx, tx, scope, id); err != nil || j.Finished() {
			return err
		}
		now := jr.Registry.now()
		if j.Owner != "" && j.Owner != jr.Node && now.Before(j.LeaseUntil) {
			return ErrJobHeld
		}
		if j.Owner != "" && j.Owner != jr.Node {
			jr.Logger.Warn("jobs: taking over a job whose lease lapsed", "jobId", id, "from", j.Owner)
		}
		j.Owner, j.LeaseUntil, j.LastUpdatedAt = jr.Node, now.Add(jr.Lease), now
		return writeJob(ctx, tx, j)
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// release gives j's lease back, so that another runner goes on with it at
// once rather than when the lease lapses.
func (jr *JobRunner) release(j *Job) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := jr.Registry.update(ctx, "RunJob", func(tx Tx) error {
		cur, err := readJob(ctx, tx, j.Scope, j.ID)
		if err != nil || cur.Finished() || cur.Owner != jr.Node {
			return err
		}
		cur.Owner, cur.LeaseUntil = "", time.Time{}
		return writeJob(ctx, tx, cur)
	})
	if err != nil {
		jr.Logger.Warn("jobs: give back the lease", "jobId", j.ID, "err", err)
	}
}

// fail ends j as FAILED with reason.
func (jr *JobRunner) fail(ctx context.Context, j *Job, reason string) (*Job, error) {
	var out *Job
	err := jr.Registry.update(context.WithoutCancel(ctx), "RunJob", func(tx Tx) error {
		cur, err := readJob(ctx, tx, j.Scope, j.ID)
		if err != nil || cur.Finished() {
			out = cur
			return err
		}
		now := jr.Registry.now()
		cur.Status, cur.Reason, cur.CompletedAt, cur.LastUpdatedAt = JobFailed, reason, now, now
		cur.Owner, cur.LeaseUntil = "", time.Time{}
		out = cur
		return writeJob(ctx, tx, cur)
	})
	if err != nil {
		return j, fmt.Errorf("job %s: record its failure: %w", j.ID, err)
	}
	jr.Logger.Warn("jobs: job failed", "jobId", j.ID, "reason", reason)
	jr.report(out)
	return out, nil
}

// batch moves the next batch of j's certificates in one Update, with the
// job's progress, cursor and lease, and returns the job as written.
func (jr *JobRunner) batch(ctx context.Context, j *Job) (*Job, error) {
	size := max(1, jr.BatchSize)
	var (
		found  []*Certificate // SIGNED: found outside the transaction
		marker string
		signed = j.Phase == JobPhaseSigned
	)
	if signed {
		// Discovery reads and verifies candidates outside the write
		// transaction, so it holds no lock; what it finds stays signed
		// (a certificate's id is the hash of its bytes), and each is read
		// again in the Update before it moves.
		if j.Cursor != nil {
			marker = EncodeMarker(*j.Cursor)
		}
		page := MaxPageSize
		for range max(1, size/MaxPageSize) {
			p, err := jr.Registry.ListCertificatesSignedBy(ctx, j.Scope, j.CACertificateID,
				ListOptions{PageSize: &page, Marker: marker, Ascending: true})
			if err != nil {
				if ErrorCode(err) == EResourceNotFound {
					return nil, Errorf(EResourceNotFound, "The CA certificate %s was deleted while the job ran.", j.CACertificateID)
				}
				return nil, err
			}
			found = append(found, p.Certificates...)
			if marker = p.NextMarker; marker == "" {
				break
			}
		}
	}
	var out *Job
	// Each certificate's change is audited as an UpdateCertificate by
	// whoever started the job.
	err := jr.Registry.updateBulk(WithActor(ctx, j.Actor), "UpdateCertificate", func(tx Tx) error {
		cur, err := readJob(ctx, tx, j.Scope, j.ID)
		if err != nil {
			return err
		}
		if cur.Finished() || cur.Owner != jr.Node || cur.version != j.version {
			return errJobLost
		}
		now := jr.Registry.now()
		count := func(o jobOutcome) {
			switch o {
			case jobChanged:
				cur.Progress.Changed++
			case jobUnchanged:
				cur.Progress.Unchanged++
			case jobSkipped:
				cur.Progress.Skipped++
			}
		}
		if !signed {
			certs, err := tx.ListCertificates(ctx, CertificateQuery{Scope: cur.Scope, CACertificateID: cur.CACertificateID,
				Ascending: true, After: cur.Cursor, Limit: size, StatusOnly: true})
			if err != nil {
				return err
			}
			if err := jr.Registry.moveCertificatesIn(ctx, tx, certs, cur.Action, now, generationIDs(len(certs)), count); err != nil {
				return err
			}
			if len(certs) < size {
				cur.Phase, cur.Cursor = JobPhaseSigned, nil
			} else {
				last := certs[len(certs)-1]
				cur.Cursor = &Cursor{CreationDate: last.CreationDate, Seq: last.Seq}
			}
		} else {
			fresh := make([]*Certificate, 0, len(found))
			for _, c := range found {
				f, err := tx.Certificate(ctx, c.Scope, c.ID)
				if ErrorCode(err) == EResourceNotFound {
					cur.Progress.Skipped++
					continue
				} else if err != nil {
					return err
				}
				fresh = append(fresh, f)
			}
			cur.Progress.Signed += int64(len(found))
			if err := jr.Registry.moveCertificatesIn(ctx, tx, fresh, cur.Action, now, generationIDs(len(fresh)), count); err != nil {
				return err
			}
			if marker == "" {
				cur.Status, cur.CompletedAt, cur.Cursor = JobCompleted, now, nil
			} else if cur.Cursor, err = DecodeMarker(marker); err != nil {
				return err
			}
		}
		cur.LastUpdatedAt = now
		if cur.Finished() {
			cur.Owner, cur.LeaseUntil = "", time.Time{}
		} else {
			cur.LeaseUntil = now.Add(jr.Lease)
		}
		out = cur
		return writeJob(ctx, tx, cur)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
