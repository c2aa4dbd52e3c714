package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"

	"github.com/fleetcert/fleetcert"
)

// Bulk actions change the status of every certificate a CA signed — what
// the AWS console cannot do (deactivate-ca-cert.md: "does not provide a way
// to list the certificates that were signed by the CA"): those registered
// under it and those whose signature verifies with its key though they were
// registered without it (Registry.ListCertificatesSignedBy). They run in
// the background so that thousands of certificates do not hold a request
// open; their progress is kept in the JobStore and the progress page polls
// it. One job per CA runs at a time.

// bulkPageSize is how many certificates a job reads at a time.
const bulkPageSize = fleetcert.MaxPageSize

// jobRunner runs the jobs of this process and stops them on Close.
type jobRunner struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (s *jobRunner) start(fn func(ctx context.Context)) {
	s.mu.Lock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
	ctx := s.ctx
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		fn(ctx)
	}()
}

func (s *jobRunner) closeAll() {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// caCertificates walks every certificate CA caID signed in scope: those
// registered under it, then those registered without it whose signature
// verifies with its key. fn gets each page; walking stops at its error.
func (h *Handler) caCertificates(ctx context.Context, scope fleetcert.Scope, caID string, fn func([]*fleetcert.Certificate, bool) error) error {
	lists := []func(fleetcert.ListOptions) (*fleetcert.CertificatePage, error){
		func(o fleetcert.ListOptions) (*fleetcert.CertificatePage, error) {
			return h.Registry.ListCertificatesByCA(ctx, scope, caID, o)
		},
		func(o fleetcert.ListOptions) (*fleetcert.CertificatePage, error) {
			return h.Registry.ListCertificatesSignedBy(ctx, scope, caID, o)
		},
	}
	for i, list := range lists {
		// Ascending order keeps the walk stable: certificates registered
		// while it runs come after it, and status changes do not move rows.
		for marker := ""; ; {
			size := bulkPageSize
			page, err := list(fleetcert.ListOptions{PageSize: &size, Marker: marker, Ascending: true})
			if err != nil {
				return err
			}
			if err := fn(page.Certificates, i == 1); err != nil {
				return err
			}
			if marker = page.NextMarker; marker == "" {
				break
			}
		}
	}
	return nil
}

// runBulk sets every certificate of j's CA to j.Target, reporting progress
// to the JobStore.
func (h *Handler) runBulk(ctx context.Context, j *Job) {
	p := j.JobProgress
	report := func() {
		if err := h.Jobs.Progress(context.WithoutCancel(ctx), j.ID, p); err != nil {
			h.Logger.Error("console: bulk action: record progress", "job", j.ID, "err", err)
		}
	}
	fail := func(msg string) {
		p.Failed++
		if len(p.Errors) < 5 {
			p.Errors = append(p.Errors, msg)
		}
	}
	defer func() {
		p.Finished, p.Ended = true, h.now()
		report()
	}()
	// Count first, so that the progress page can show how far along it is.
	total := 0
	err := h.caCertificates(ctx, j.Scope, j.CAID, func(certs []*fleetcert.Certificate, _ bool) error {
		total += len(certs)
		return nil
	})
	if err != nil {
		h.Logger.Error("console: bulk action: list certificates", "ca", j.CAID, "err", err)
		fail("The certificates of this CA could not be listed; the details have been logged.")
		return
	}
	p.Counting, p.Total = false, total
	report()
	err = h.caCertificates(ctx, j.Scope, j.CAID, func(certs []*fleetcert.Certificate, _ bool) error {
		for _, c := range certs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			changed, err := fleetcert.CheckTransition(c.Status, j.Target)
			switch {
			case err != nil:
				p.Skipped++
			case !changed:
				p.Unchanged++
			default:
				err := h.Registry.UpdateCertificate(ctx, j.Scope, c.ID, j.Target)
				switch fleetcert.ErrorCode(err) {
				case "":
					p.Changed++
				case fleetcert.ECertificateState, fleetcert.EResourceNotFound:
					// Changed or deleted by someone else since it was listed.
					p.Skipped++
				case fleetcert.EInternalFailure:
					h.Logger.Error("console: bulk action: update certificate", "id", c.ID, "err", err)
					fail("Certificate " + shortID(c.ID) + ": an internal error occurred; the details have been logged.")
				default:
					fail("Certificate " + shortID(c.ID) + ": " + fleetcert.ErrorMessage(err))
				}
			}
			p.Done++
		}
		report()
		return nil
	})
	switch {
	case ctx.Err() != nil:
		fail("The action was stopped because fleetcert is shutting down.")
	case err != nil:
		h.Logger.Error("console: bulk action: list certificates", "ca", j.CAID, "err", err)
		fail("The certificates of this CA could not be listed; the details have been logged.")
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

// statusCount is how many of a CA's certificates are in a status, and what
// a bulk action does to them.
type statusCount struct {
	Status fleetcert.Status
	N      int
	Change bool // the action changes them
}

func (h *Handler) confirmBulk(w http.ResponseWriter, r *http.Request) {
	id := h.pathID(w, r)
	if id == "" {
		return
	}
	action := r.URL.Query().Get("action")
	target, verb, ok := bulkTarget(action)
	if !ok {
		h.errorPage(w, r, http.StatusBadRequest, "That did not work", "Choose Deactivate all or Revoke all on the CA's page.")
		return
	}
	l := loginFrom(r)
	ca, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	name := caDisplayName(ca)
	if running, err := h.Jobs.LatestJob(r.Context(), l.Scope, id); err == nil && running != nil && !running.Finished {
		h.redirectFlash(w, r, Prefix+"cas/"+id+"/bulk/"+running.ID, &Flash{Error: true,
			Message: "A bulk action on CA " + name + " is already running; wait for it to finish before starting another."})
		return
	}
	// What changes, by status: the registered ones counted by the store, the
	// ones signed but registered without the CA walked and confirmed.
	counts := map[fleetcert.Status]int{}
	signed := 0
	err = h.caCertificates(r.Context(), l.Scope, id, func(certs []*fleetcert.Certificate, other bool) error {
		for _, c := range certs {
			counts[c.Status]++
			if other {
				signed++
			}
		}
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var details []string
	changing, active := 0, counts[fleetcert.StatusActive]
	for _, s := range append([]fleetcert.Status{fleetcert.StatusActive}, filterStatuses[1:]...) {
		n := counts[s]
		if n == 0 {
			continue
		}
		changed, err := fleetcert.CheckTransition(s, target)
		what := "stay as they are (the status does not allow the change)"
		switch {
		case err == nil && changed:
			what = "become " + statusLabel(target)
			changing += n
		case err == nil:
			what = "are " + statusLabel(target) + " already"
		}
		details = append(details, strconv.Itoa(n)+" "+statusLabel(s)+": "+what)
	}
	if signed > 0 {
		details = append(details, strconv.Itoa(signed)+" of them are registered without this CA but signed by it; they are included.")
	}
	d := confirmData{
		Heading: verb + " " + strconv.Itoa(changing) + " certificates issued by CA " + name + "?",
		Details: append([]string{"CA: " + name + " (" + ca.ID + ")"}, details...),
		Action:  Prefix + "cas/" + id + "/bulk",
		Button:  verb + " " + strconv.Itoa(changing) + " certificates",
		Danger:  action == "revoke",
		Return:  Prefix + "cas/" + id,
		Cancel:  Prefix + "cas/" + id,
		Fields:  map[string]string{"action": action},
	}
	devices := "Devices connected with one of the " + strconv.Itoa(active) + " active certificates are disconnected at once, and refused"
	if action == "revoke" {
		d.Lead = devices + " from now on."
		d.Warning = "Revoked certificates can never be activated again. To stop the devices only for a while, choose Deactivate all instead."
	} else {
		d.Lead = devices + " until their certificates are activated again. Revoked certificates stay revoked."
	}
	if changing == 0 {
		d.Lead = "No certificate of this CA would change: none is in a status this action changes."
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
	ca, err := h.Registry.DescribeCACertificate(r.Context(), l.Scope, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	j := &Job{ID: newJobID(), Scope: l.Scope, CAID: id, CAName: caDisplayName(ca), Target: target,
		JobProgress: JobProgress{Counting: true, Started: h.now()}}
	running, err := h.Jobs.StartJob(r.Context(), j)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if running != nil {
		h.redirectFlash(w, r, Prefix+"cas/"+id+"/bulk/"+running.ID, &Flash{Error: true,
			Message: "A bulk action on CA " + j.CAName + " is already running; nothing new was started."})
		return
	}
	h.Logger.Info("console: bulk action", "accountId", l.Scope.AccountID, "region", l.Scope.Region, "ca", id, "target", target)
	// The job outlives the request: it carries who started it, for the
	// audit log of every certificate it changes.
	actor, _ := fleetcert.ActorFrom(r.Context())
	h.runner.start(func(ctx context.Context) { h.runBulk(fleetcert.WithActor(ctx, actor), j) })
	http.Redirect(w, r, Prefix+"cas/"+id+"/bulk/"+j.ID, http.StatusSeeOther)
}

type bulkData struct {
	Job  *Job
	Verb string
}

// job returns the job of the URL, or nil after answering 404.
func (h *Handler) job(w http.ResponseWriter, r *http.Request) *Job {
	id := h.pathID(w, r)
	if id == "" {
		return nil
	}
	// A job is visible only to the account and region that started it.
	j, err := h.Jobs.Job(r.Context(), loginFrom(r).Scope, r.PathValue("job"))
	if err != nil {
		h.fail(w, r, err)
		return nil
	}
	if j == nil || j.CAID != id {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "This bulk action does not exist or its summary has expired.")
		return nil
	}
	return j
}

func bulkVerb(j *Job) string {
	if j.Target == fleetcert.StatusRevoked {
		return "Revoking"
	}
	return "Deactivating"
}

func (h *Handler) bulkProgress(w http.ResponseWriter, r *http.Request) {
	if j := h.job(w, r); j != nil {
		h.render(w, r, http.StatusOK, "bulk", &page{Title: bulkVerb(j) + " certificates", Nav: "cas", Refresh: !j.Finished,
			Data: bulkData{Job: j, Verb: bulkVerb(j)}})
	}
}

// bulkFragment is the progress part of the bulk page alone, which the
// page's script fetches every second instead of reloading the page.
func (h *Handler) bulkFragment(w http.ResponseWriter, r *http.Request) {
	if j := h.job(w, r); j != nil {
		h.renderFragment(w, r, "bulkbody", bulkData{Job: j, Verb: bulkVerb(j)})
	}
}
