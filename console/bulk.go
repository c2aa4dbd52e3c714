package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Bulk actions change the status of every certificate a CA issued — what
// the AWS console cannot do (deactivate-ca-cert.md: "does not provide a way
// to list the certificates that were signed by the CA"). They run in the
// background so that thousands of certificates do not hold a request open,
// and the progress page follows them.

// bulkJob is one running or finished bulk action.
type bulkJob struct {
	ID     string
	Scope  fleetcert.Scope
	CAID   string
	Target fleetcert.Status

	mu       sync.Mutex
	progress bulkProgress
}

// bulkProgress is a snapshot of a bulk job.
type bulkProgress struct {
	Counting  bool
	Total     int
	Done      int
	Changed   int
	Unchanged int // already in the target status
	Skipped   int // the state machine does not allow the change
	Failed    int
	Errors    []string // the first few failures, in words
	Finished  bool
	Started   time.Time
	Ended     time.Time
}

// Percent is how much of the job is done, 0 to 100.
func (p bulkProgress) Percent() int {
	if p.Total == 0 {
		if p.Finished {
			return 100
		}
		return 0
	}
	return p.Done * 100 / p.Total
}

func (j *bulkJob) snapshot() bulkProgress {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.progress
	p.Errors = append([]string(nil), p.Errors...)
	return p
}

func (j *bulkJob) update(fn func(p *bulkProgress)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.progress)
}

// jobRetention is how long a finished job's summary stays viewable.
const jobRetention = time.Hour

// bulkPageSize is how many certificates a job reads at a time.
const bulkPageSize = fleetcert.MaxPageSize

func (s *jobStore) start(h *Handler, j *bulkJob) {
	s.mu.Lock()
	if s.jobs == nil {
		s.jobs = map[string]*bulkJob{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
	now := h.now()
	for id, o := range s.jobs {
		if p := o.snapshot(); p.Finished && now.Sub(p.Ended) > jobRetention {
			delete(s.jobs, id)
		}
	}
	s.jobs[j.ID] = j
	ctx := s.ctx
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		h.runBulk(ctx, j)
	}()
}

func (s *jobStore) get(id string) *bulkJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[id]
}

func (s *jobStore) closeAll() {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// runBulk walks the CA's certificates and sets each to j.Target.
func (h *Handler) runBulk(ctx context.Context, j *bulkJob) {
	defer j.update(func(p *bulkProgress) { p.Finished, p.Ended = true, h.now() })
	list := func(marker string) (*fleetcert.CertificatePage, error) {
		size := bulkPageSize
		return h.Registry.ListCertificatesByCA(ctx, j.Scope, j.CAID, fleetcert.ListOptions{PageSize: &size, Marker: marker, Ascending: true})
	}
	fail := func(msg string) {
		j.update(func(p *bulkProgress) {
			p.Failed++
			if len(p.Errors) < 5 {
				p.Errors = append(p.Errors, msg)
			}
		})
	}
	// Count first, so that the progress page can show how far along it is.
	total := 0
	for marker := ""; ; {
		page, err := list(marker)
		if err != nil {
			h.Logger.Error("console: bulk action: list certificates", "ca", j.CAID, "err", err)
			fail("The certificates of this CA could not be listed; the details have been logged.")
			return
		}
		total += len(page.Certificates)
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	j.update(func(p *bulkProgress) { p.Counting, p.Total = false, total })

	// Ascending order keeps the walk stable: certificates registered while
	// it runs come after it, and status changes do not move rows.
	for marker := ""; ; {
		page, err := list(marker)
		if err != nil {
			h.Logger.Error("console: bulk action: list certificates", "ca", j.CAID, "err", err)
			fail("The certificates of this CA could not be listed; the details have been logged.")
			return
		}
		for _, c := range page.Certificates {
			if ctx.Err() != nil {
				fail("The action was stopped because fleetcert is shutting down.")
				return
			}
			changed, err := fleetcert.CheckTransition(c.Status, j.Target)
			switch {
			case err != nil:
				j.update(func(p *bulkProgress) { p.Skipped++ })
			case !changed:
				j.update(func(p *bulkProgress) { p.Unchanged++ })
			default:
				err := h.Registry.UpdateCertificate(ctx, j.Scope, c.ID, j.Target)
				switch fleetcert.ErrorCode(err) {
				case "":
					j.update(func(p *bulkProgress) { p.Changed++ })
				case fleetcert.ECertificateState, fleetcert.EResourceNotFound:
					// Changed or deleted by someone else since it was listed.
					j.update(func(p *bulkProgress) { p.Skipped++ })
				case fleetcert.EInternalFailure:
					h.Logger.Error("console: bulk action: update certificate", "id", c.ID, "err", err)
					fail("Certificate " + shortID(c.ID) + ": an internal error occurred; the details have been logged.")
				default:
					fail("Certificate " + shortID(c.ID) + ": " + fleetcert.ErrorMessage(err))
				}
			}
			j.update(func(p *bulkProgress) { p.Done++ })
		}
		if marker = page.NextMarker; marker == "" {
			return
		}
	}
}

// newJobID returns a random job id: 16 hex digits.
func newJobID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// bulkTarget maps the form's action to a status.
func bulkTarget(action string) (fleetcert.Status, string, bool) {
	switch action {
	case "deactivate":
		return fleetcert.StatusInactive, "Deactivate", true
	case "revoke":
		return fleetcert.StatusRevoked, "Revoke", true
	}
	return "", "", false
}

func (h *Handler) confirmBulk(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	action := r.URL.Query().Get("action")
	_, verb, ok := bulkTarget(action)
	if !ok {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Deactivate all or Revoke all on the CA's page.")
		return
	}
	ca, err := h.Registry.DescribeCACertificate(r.Context(), loginFrom(r).Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := confirmData{
		Heading: verb + " every certificate issued by CA " + shortID(ca.ID) + "?",
		Details: []string{"CA certificate ID: " + ca.ID},
		Action:  Prefix + "cas/" + id + "/bulk",
		Button:  verb + " all",
		Danger:  action == "revoke",
		Return:  Prefix + "cas/" + id,
		Cancel:  Prefix + "cas/" + id,
		Fields:  map[string]string{"action": action},
	}
	if action == "revoke" {
		d.Lead = "Every certificate registered under this CA in this account and region is revoked. Their devices are refused from now on, and connected ones are disconnected."
		d.Warning = "Revoked certificates can never be activated again. To stop the devices only for a while, choose Deactivate all instead."
	} else {
		d.Lead = "Every active certificate registered under this CA in this account and region is deactivated. Their devices are refused until the certificates are activated again. Revoked certificates stay revoked."
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: verb + " all certificates", Nav: "cas", Data: d})
}

func (h *Handler) startBulk(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	target, _, ok := bulkTarget(r.PostFormValue("action"))
	if !ok {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Deactivate all or Revoke all on the CA's page.")
		return
	}
	l := loginFrom(r)
	if _, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, id); err != nil {
		h.fail(w, r, err)
		return
	}
	j := &bulkJob{ID: newJobID(), Scope: l.Scope, CAID: id, Target: target}
	j.progress = bulkProgress{Counting: true, Started: h.now()}
	h.Logger.Info("console: bulk action", "accountId", l.Scope.AccountID, "region", l.Scope.Region, "ca", id, "target", target)
	h.jobs.start(h, j)
	http.Redirect(w, r, Prefix+"cas/"+id+"/bulk/"+j.ID, http.StatusSeeOther)
}

type bulkData struct {
	Job      *bulkJob
	Verb     string
	Progress bulkProgress
}

func (h *Handler) bulkProgress(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	j := h.jobs.get(r.PathValue("job"))
	// A job is visible only to the account and region that started it.
	if j == nil || j.Scope != loginFrom(r).Scope || j.CAID != id {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "This bulk action does not exist or its summary has expired.")
		return
	}
	verb := "Deactivating"
	if j.Target == fleetcert.StatusRevoked {
		verb = "Revoking"
	}
	progress := j.snapshot()
	h.render(w, r, http.StatusOK, "bulk", &page{Title: verb + " certificates", Nav: "cas", Refresh: !progress.Finished,
		Data: bulkData{Job: j, Verb: verb, Progress: progress}})
}
