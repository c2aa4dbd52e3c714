package awsapi

import (
	"net/http"
	"strconv"

	"github.com/fleetcert/fleetcert"
)

// fleetcert's bulk jobs (fleetcert.Job): every certificate of a CA moved
// to REVOKED or INACTIVE, in batches, resumable by any node.
//
//	POST /fleetcert/jobs {"caCertificateId": "…", "action": "REVOKED"|"INACTIVE"}
//	GET  /fleetcert/jobs?pageSize=&nextToken=
//	GET  /fleetcert/jobs/{jobId}
//	POST /fleetcert/jobs/{jobId}/cancel
//
// Another account's jobs do not exist for the caller.

type startJobInput struct {
	CACertificateID *string `json:"caCertificateId"`
	Action          *string `json:"action"`
}

// jobOutput is a job on the wire.
type jobOutput struct {
	JobID           string           `json:"jobId"`
	CACertificateID string           `json:"caCertificateId"`
	Action          fleetcert.Status `json:"action"`
	Status          string           `json:"status"`
	StartedBy       string           `json:"startedBy,omitempty"`
	Reason          string           `json:"reason,omitempty"`
	CreatedAt       epochTime        `json:"createdAt"`
	LastUpdatedAt   epochTime        `json:"lastUpdatedAt"`
	CompletedAt     epochTime        `json:"completedAt,omitzero"`
	Phase           string           `json:"phase"`
	Progress        jobProgress      `json:"progress"`
}

type jobProgress struct {
	Processed int64 `json:"processed"`
	Changed   int64 `json:"changed"`
	Unchanged int64 `json:"unchanged"`
	Skipped   int64 `json:"skipped"`
	Signed    int64 `json:"signed"`
}

func toJobOutput(j *fleetcert.Job) *jobOutput {
	return &jobOutput{
		JobID: j.ID, CACertificateID: j.CACertificateID, Action: j.Action, Status: string(j.Status),
		StartedBy: j.StartedBy, Reason: j.Reason, CreatedAt: epochTime(j.CreatedAt),
		LastUpdatedAt: epochTime(j.LastUpdatedAt), CompletedAt: epochTime(j.CompletedAt), Phase: j.Phase,
		Progress: jobProgress{Processed: j.Progress.Processed(), Changed: j.Progress.Changed,
			Unchanged: j.Progress.Unchanged, Skipped: j.Progress.Skipped, Signed: j.Progress.Signed},
	}
}

// startJob serves POST /fleetcert/jobs. A node's job runner takes the job
// up at once (this process's, woken by StartJob, or another's).
func (h *Handler) startJob(c *call, r *http.Request) (any, error) {
	var in startJobInput
	if err := decodeBody(c.body, &in); err != nil {
		return nil, err
	}
	if in.CACertificateID == nil {
		return nil, missingMember("caCertificateId")
	}
	if in.Action == nil {
		return nil, missingMember("action")
	}
	j, err := h.Registry.StartJob(c.ctx, c.scope, fleetcert.JobInput{CACertificateID: *in.CACertificateID,
		Action: fleetcert.Status(*in.Action), StartedBy: "access key " + c.accessKeyID})
	if err != nil {
		return nil, err
	}
	return toJobOutput(j), nil
}

// describeJob serves GET /fleetcert/jobs/{jobId}.
func (h *Handler) describeJob(c *call, r *http.Request) (any, error) {
	j, err := h.Registry.Job(c.ctx, c.scope, r.PathValue("jobId"))
	if err != nil {
		return nil, err
	}
	return toJobOutput(j), nil
}

// cancelJob serves POST /fleetcert/jobs/{jobId}/cancel.
func (h *Handler) cancelJob(c *call, r *http.Request) (any, error) {
	j, err := h.Registry.CancelJob(c.ctx, c.scope, r.PathValue("jobId"), "access key "+c.accessKeyID)
	if err != nil {
		return nil, err
	}
	return toJobOutput(j), nil
}

type listJobsOutput struct {
	Jobs      []*jobOutput `json:"jobs"`
	NextToken string       `json:"nextToken,omitempty"`
}

// listJobs serves GET /fleetcert/jobs?pageSize=&nextToken=: the caller's
// jobs, oldest first.
func (h *Handler) listJobs(c *call, r *http.Request) (any, error) {
	size := fleetcert.DefaultPageSize
	if v := c.query.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fleetcert.Errorf(fleetcert.EInvalidRequest, "pageSize must be a whole number from 1 to %d.", fleetcert.MaxPageSize)
		}
		size = n
	}
	jobs, next, err := h.Registry.ListJobs(c.ctx, c.scope, c.query.Get("nextToken"), size)
	if err != nil {
		return nil, err
	}
	out := &listJobsOutput{Jobs: make([]*jobOutput, len(jobs)), NextToken: next}
	for i, j := range jobs {
		out.Jobs[i] = toJobOutput(j)
	}
	return out, nil
}
