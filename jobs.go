package fleetcert

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Bulk jobs move every certificate of one CA to REVOKED or INACTIVE: the
// compromised-CA day, which AWS answers only with one UpdateCertificate
// per certificate. "Every certificate of a CA" is, by choice, those
// registered under it and then those registered without it (or under
// another registration) whose signature verifies with its key
// (ListCertificatesSignedBy).
//
// A job is durable: its record is an Object of kind ObjectJob in the
// reserved JobScope, so it survives a crash and any process on the store
// can carry it on. Each batch commits in one Update that moves the batch's
// certificates (with UpdateCertificate's rules and one change each, so
// the gateways drop the devices and the CRL follows), advances the job's
// cursor and renews the lease of the process running it; the job record's
// Version makes that Update fail if anyone else (a canceller, a runner that
// took over an expired lease) wrote the record since it was read, and the
// batch is then rolled back whole. The runner is JobRunner (jobrunner.go).

// JobScope is the scope of the bulk jobs' records. Its account is no
// 12-digit account id, so no tenant can see or name it.
var JobScope = Scope{AccountID: "fleetcert", Region: "jobs"}

// Object kinds of the bulk jobs, in JobScope.
const (
	// ObjectJob is a job: Name "{account}/{region}/{job id}", Label its
	// JobStatus (the runners look for IN_PROGRESS), Body its JSON.
	ObjectJob ObjectKind = "bulk-job"
	// ObjectJobCA names the latest job of a CA: Name
	// "{account}/{region}/{CA id}", Label IN_PROGRESS while that job runs,
	// Body the job's id. Creating or updating it is what makes a job the
	// only one in progress on its CA.
	ObjectJobCA ObjectKind = "bulk-job-ca"
)

// JobStatus is the state of a job (AWS IoT's JobExecutionStatus names).
type JobStatus string

// Job statuses. IN_PROGRESS is the only one a job leaves.
const (
	JobInProgress JobStatus = "IN_PROGRESS"
	JobCompleted  JobStatus = "COMPLETED"
	JobFailed     JobStatus = "FAILED"
	JobCanceled   JobStatus = "CANCELED"
)

// Job phases: which certificates of the CA the cursor walks.
const (
	JobPhaseRegistered = "REGISTERED" // registered under the CA
	JobPhaseSigned     = "SIGNED"     // registered without it, signed by its key
)

// Job is a bulk job on the certificates of one CA.
type Job struct {
	ID string `json:"jobId"`
	Scope
	CACertificateID string    `json:"caCertificateId"`
	Action          Status    `json:"action"` // the target: REVOKED or INACTIVE
	Status          JobStatus `json:"status"`
	StartedBy       string    `json:"startedBy"` // who asked: access key, console user, CLI
	// Actor is who started it (from the context of StartJob): the audit
	// log names it for every certificate the job changes.
	Actor  Actor  `json:"actor"`
	Reason string `json:"reason,omitempty"`

	CreatedAt     time.Time `json:"createdAt"`
	LastUpdatedAt time.Time `json:"lastUpdatedAt"`
	CompletedAt   time.Time `json:"completedAt,omitzero"`

	Progress JobProgress `json:"progress"`

	// Position: the phase and the last certificate done in it (nil at the
	// start of a phase).
	Phase  string  `json:"phase"`
	Cursor *Cursor `json:"cursor,omitempty"`

	// Lease: the runner that carries the job on, until LeaseUntil; after
	// it any runner may take it over. Owner "" is a job nobody runs yet.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`

	version int64 // of the record read
}

// JobProgress counts what a job did.
type JobProgress struct {
	Changed   int64 `json:"changed"`   // moved to the action's status
	Unchanged int64 `json:"unchanged"` // in that status already
	Skipped   int64 `json:"skipped"`   // the state machine refuses (REVOKED, PENDING_TRANSFER) or deleted meanwhile
	Signed    int64 `json:"signed"`    // of all these, how many were found by signature
}

// Processed is how many certificates the job has looked at.
func (p JobProgress) Processed() int64 { return p.Changed + p.Unchanged + p.Skipped }

// Finished reports whether j is over (completed, failed or canceled).
func (j *Job) Finished() bool { return j.Status != JobInProgress }

// JobInput is what starts a job.
type JobInput struct {
	CACertificateID string
	Action          Status // REVOKED or INACTIVE
	StartedBy       string
}

// jobName is the Name of a job's record, or of a CA's (ObjectJobCA).
func jobName(scope Scope, id string) string { return scope.AccountID + "/" + scope.Region + "/" + id }

// newJobID returns a job id: 20 hex digits, the creation time in
// milliseconds first, so ids list in the order jobs were started.
func newJobID(now time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// checkJobID refuses what newJobID cannot have made.
func checkJobID(id string) error {
	if len(id) != 20 || strings.Trim(id, "0123456789abcdef") != "" {
		return Errorf(EInvalidRequest, "A job id is 20 lowercase hex digits.")
	}
	return nil
}

func jobNotFound(id string) error {
	return Errorf(EResourceNotFound, "The job %s does not exist.", id)
}

// StartJob starts a job that moves every certificate of CA in.CACertificateID
// of scope to in.Action, and returns it IN_PROGRESS. No process runs it
// yet: a JobRunner (fleetcert serve's) takes it up; JobRunner.Start starts
// one that its runner holds from the start.
//
// Errors: InvalidRequestException, ResourceNotFoundException (the CA),
// ResourceAlreadyExistsException (a job on the CA is in progress;
// ResourceID is its id).
func (r *Registry) StartJob(ctx context.Context, scope Scope, in JobInput) (*Job, error) {
	return r.startJob(ctx, scope, in, "", time.Time{})
}

func (r *Registry) startJob(ctx context.Context, scope Scope, in JobInput, owner string, leaseUntil time.Time) (*Job, error) {
	caID, err := ParseCertificateID("caCertificateId", in.CACertificateID)
	if err != nil {
		return nil, err
	}
	action, err := ParseStatus(string(in.Action))
	if err != nil || (action.normalize() != StatusRevoked && action.normalize() != StatusInactive) {
		return nil, Errorf(EInvalidRequest, "The action must be REVOKED or INACTIVE.")
	}
	now := r.now()
	j := &Job{ID: newJobID(now), Scope: scope, CACertificateID: caID, Action: action.normalize(),
		Status: JobInProgress, StartedBy: in.StartedBy, CreatedAt: now, LastUpdatedAt: now,
		Phase: JobPhaseRegistered, Owner: owner, LeaseUntil: leaseUntil, Actor: actorOr(ctx, ActorSystem)}
	err = r.update(ctx, "StartJob", func(tx Tx) error {
		if _, err := tx.CACertificate(ctx, scope, caID); err != nil {
			return caNotFound(err, caID)
		}
		ca, err := tx.Object(ctx, JobScope, ObjectJobCA, jobName(scope, caID))
		switch ErrorCode(err) {
		case "":
			if ca.Label == string(JobInProgress) {
				if running, err := readJob(ctx, tx, scope, string(ca.Body)); err == nil && !running.Finished() {
					return &Error{Code: EResourceAlreadyExists, ResourceID: running.ID,
						Message: fmt.Sprintf("Job %s on CA %s is in progress; wait for it to end or cancel it.", running.ID, caID)}
				}
			}
			ca.Label, ca.Body, ca.LastModifiedDate = string(JobInProgress), []byte(j.ID), now
			if err := tx.UpdateObject(ctx, ca); err != nil {
				return err
			}
		case EResourceNotFound:
			if err := tx.CreateObject(ctx, &Object{Scope: JobScope, Kind: ObjectJobCA, Name: jobName(scope, caID),
				Label: string(JobInProgress), Body: []byte(j.ID), CreationDate: now, LastModifiedDate: now}); err != nil {
				return err
			}
		default:
			return err
		}
		body, err := json.Marshal(j)
		if err != nil {
			return err
		}
		o := &Object{Scope: JobScope, Kind: ObjectJob, Name: jobName(scope, j.ID), Label: string(j.Status),
			Body: body, CreationDate: now, LastModifiedDate: now}
		if err := tx.CreateObject(ctx, o); err != nil {
			return err
		}
		j.version = o.Version
		return nil
	})
	if err != nil {
		if ErrorCode(err) == EInternalFailure {
			return nil, fmt.Errorf("start job on CA %s: %w", caID, err)
		}
		return nil, err
	}
	r.jobs.notify()
	return j, nil
}

// readJob reads job id of scope in tx.
func readJob(ctx context.Context, tx Tx, scope Scope, id string) (*Job, error) {
	o, err := tx.Object(ctx, JobScope, ObjectJob, jobName(scope, id))
	if ErrorCode(err) == EResourceNotFound {
		return nil, jobNotFound(id)
	} else if err != nil {
		return nil, err
	}
	return decodeJob(o)
}

func decodeJob(o *Object) (*Job, error) {
	j := &Job{}
	if err := json.Unmarshal(o.Body, j); err != nil {
		return nil, fmt.Errorf("job %s: %w", o.Name, err)
	}
	j.version = o.Version
	return j, nil
}

// writeJob stores j in tx if its record is still the version j was read
// at. When j ends, its CA is free for another job.
// Errors: VersionConflictException when someone else wrote it since.
func writeJob(ctx context.Context, tx Tx, j *Job) error {
	body, err := json.Marshal(j)
	if err != nil {
		return err
	}
	o := &Object{Scope: JobScope, Kind: ObjectJob, Name: jobName(j.Scope, j.ID), Label: string(j.Status),
		Body: body, Version: j.version, LastModifiedDate: j.LastUpdatedAt}
	if err := tx.UpdateObject(ctx, o); err != nil {
		return err
	}
	j.version = o.Version
	if !j.Finished() {
		return nil
	}
	ca, err := tx.Object(ctx, JobScope, ObjectJobCA, jobName(j.Scope, j.CACertificateID))
	if ErrorCode(err) == EResourceNotFound {
		return nil
	} else if err != nil {
		return err
	}
	if string(ca.Body) != j.ID || ca.Label == "" {
		return nil
	}
	ca.Label, ca.LastModifiedDate = "", j.LastUpdatedAt
	return tx.UpdateObject(ctx, ca)
}

// Job returns job id of scope. Another scope's job does not exist.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) Job(ctx context.Context, scope Scope, id string) (*Job, error) {
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	var j *Job
	err := r.Store.View(ctx, func(tx Tx) (err error) {
		j, err = readJob(ctx, tx, scope, id)
		return err
	})
	if err != nil {
		if ErrorCode(err) == EInternalFailure {
			return nil, fmt.Errorf("read job %s: %w", id, err)
		}
		return nil, err
	}
	return j, nil
}

// LatestJob returns the job started last on CA caID of scope, in progress
// or not, or nil when there was none.
func (r *Registry) LatestJob(ctx context.Context, scope Scope, caID string) (*Job, error) {
	var j *Job
	err := r.Store.View(ctx, func(tx Tx) error {
		ca, err := tx.Object(ctx, JobScope, ObjectJobCA, jobName(scope, caID))
		if ErrorCode(err) == EResourceNotFound {
			return nil
		} else if err != nil {
			return err
		}
		j, err = readJob(ctx, tx, scope, string(ca.Body))
		if ErrorCode(err) == EResourceNotFound {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("latest job of CA %s: %w", caID, err)
	}
	return j, nil
}

// ListJobs returns up to limit (1–250) jobs of scope, oldest first,
// strictly after job id after when it is set, and the id to pass as after
// for the next page ("" on the last).
//
// Errors: InvalidRequestException.
func (r *Registry) ListJobs(ctx context.Context, scope Scope, after string, limit int) ([]*Job, string, error) {
	size, err := checkPageSize(&limit)
	if err != nil {
		return nil, "", err
	}
	q := ObjectQuery{Scope: JobScope, Kind: ObjectJob, NamePrefix: jobName(scope, ""), Limit: size + 1}
	if after != "" {
		if err := checkJobID(after); err != nil {
			return nil, "", err
		}
		q.After = jobName(scope, after)
	}
	var objs []*Object
	err = r.Store.View(ctx, func(tx Tx) (err error) {
		objs, err = tx.ListObjects(ctx, q)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	next := ""
	if len(objs) > size {
		objs = objs[:size]
		next = objs[size-1].Name[len(q.NamePrefix):]
	}
	jobs := make([]*Job, 0, len(objs))
	for _, o := range objs {
		j, err := decodeJob(o)
		if err != nil {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
		jobs = append(jobs, j)
	}
	return jobs, next, nil
}

// CancelJob cancels job id of scope: the batch in flight, if any, rolls
// back, and the certificates already changed stay changed.
//
// Errors: InvalidRequestException (malformed id, or the job is over),
// ResourceNotFoundException.
func (r *Registry) CancelJob(ctx context.Context, scope Scope, id, by string) (*Job, error) {
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	var j *Job
	err := r.update(ctx, "CancelJob", func(tx Tx) (err error) {
		if j, err = readJob(ctx, tx, scope, id); err != nil {
			return err
		}
		if j.Finished() {
			return Errorf(EInvalidRequest, "Job %s is %s; only a job IN_PROGRESS can be canceled.", id, j.Status)
		}
		now := r.now()
		j.Status, j.CompletedAt, j.LastUpdatedAt, j.Owner, j.LeaseUntil = JobCanceled, now, now, "", time.Time{}
		if by != "" {
			j.Reason = "Canceled by " + by + "."
		}
		return writeJob(ctx, tx, j)
	})
	if err != nil {
		if ErrorCode(err) == EInternalFailure {
			return nil, fmt.Errorf("cancel job %s: %w", id, err)
		}
		return nil, err
	}
	return j, nil
}

// jobOutcome is what a batch did to one certificate.
type jobOutcome int

const (
	jobChanged jobOutcome = iota
	jobUnchanged
	jobSkipped
)

// moveCertificateIn moves c, as read in tx (a listing's copy will do: the
// PEM is not written), to target by UpdateCertificate's rule
// (updateCertificateIn's: REVOKED is terminal, PENDING_TRANSFER waits for
// its transfer, the current status again changes nothing) and appends its
// change, as of now. A certificate changed since it was read is read again;
// one deleted since is skipped.
// generation is its new GenerationID.
func (r *Registry) moveCertificateIn(ctx context.Context, tx Tx, c *Certificate, target Status, now time.Time, generation string) (jobOutcome, error) {
	for reads := 0; ; reads++ {
		changed, err := CheckTransition(c.Status, target)
		if ErrorCode(err) == ECertificateState {
			return jobSkipped, nil
		} else if err != nil {
			return 0, err
		} else if !changed {
			return jobUnchanged, nil
		}
		from, old := c.CustomerVersion, c.Status
		c.Status = target.normalize()
		c.LastModifiedDate, c.CustomerVersion, c.GenerationID = now, from+1, generation
		ok, err := tx.UpdateCertificateStatus(ctx, c, from)
		if err != nil {
			return 0, err
		}
		if ok {
			// One change per certificate, as UpdateCertificate appends:
			// the gateways drop its devices, the CRL follows.
			return jobChanged, tx.AppendChange(ctx, &Change{
				Kind: ChangeCertificateUpdated, Scope: c.Scope, CertificateID: c.ID,
				OldStatus: old, NewStatus: c.Status, Time: now,
			})
		}
		if reads > 0 {
			// Read in this transaction and changed again: no store does
			// that; refuse rather than loop.
			return 0, fmt.Errorf("certificate %s changed under its transaction", c.ID)
		}
		c, err = tx.Certificate(ctx, c.Scope, c.ID)
		if ErrorCode(err) == EResourceNotFound {
			return jobSkipped, nil
		} else if err != nil {
			return 0, err
		}
	}
}

// moveCertificatesIn moves certs, as read in tx, to target by
// moveCertificateIn's rule, with one UpdateCertificateStatuses and one
// AppendChanges for all of them rather than two statements each (with the
// audit entry, three): most of a bulk job's cost per certificate was the
// statements' own. A certificate changed or deleted since it was read goes
// through moveCertificateIn on a fresh read. generations[i] is certs[i]'s
// new GenerationID; count gets each certificate's outcome.
func (r *Registry) moveCertificatesIn(ctx context.Context, tx Tx, certs []*Certificate, target Status, now time.Time,
	generations []string, count func(jobOutcome)) error {
	target = target.normalize()
	us := make([]StatusUpdate, 0, len(certs))
	olds := make([]Status, 0, len(certs))
	for i, c := range certs {
		changed, err := CheckTransition(c.Status, target)
		if ErrorCode(err) == ECertificateState {
			count(jobSkipped)
			continue
		} else if err != nil {
			return err
		} else if !changed {
			count(jobUnchanged)
			continue
		}
		olds = append(olds, c.Status)
		from := c.CustomerVersion
		c.Status, c.LastModifiedDate, c.CustomerVersion, c.GenerationID = target, now, from+1, generations[i]
		us = append(us, StatusUpdate{Certificate: c, FromVersion: from})
	}
	if len(us) == 0 {
		return nil
	}
	written, err := tx.UpdateCertificateStatuses(ctx, us)
	if err != nil {
		return err
	}
	changes := make([]Change, 0, len(us))
	for i, u := range us {
		c := u.Certificate
		if !written[i] {
			fresh, err := tx.Certificate(ctx, c.Scope, c.ID)
			if ErrorCode(err) == EResourceNotFound {
				count(jobSkipped)
				continue
			} else if err != nil {
				return err
			}
			o, err := r.moveCertificateIn(ctx, tx, fresh, target, now, c.GenerationID)
			if err != nil {
				return err
			}
			count(o)
			continue
		}
		// One change per certificate, as UpdateCertificate appends: the
		// gateways drop its devices, the CRL follows.
		changes = append(changes, Change{Kind: ChangeCertificateUpdated, Scope: c.Scope, CertificateID: c.ID,
			OldStatus: olds[i], NewStatus: target, Time: now})
		count(jobChanged)
	}
	chs := make([]*Change, len(changes))
	for i := range changes {
		chs[i] = &changes[i]
	}
	return tx.AppendChanges(ctx, chs)
}
