package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/fleetcert/fleetcert"
)

// Bulk actions change the status of every certificate a CA signed — what
// the AWS console cannot do (deactivate-ca-cert.md: "does not provide a way
// to list the certificates that were signed by the CA"): those registered
// under it and those whose signature verifies with its key though they were
// registered without it. They are the Registry's bulk jobs (fleetcert.Job):
// durable, one per CA at a time, run in batches by the JobRunner of the
// process that started them and, should it stop, by any other on the store.
// The progress page reads the job's record.

// bulkPageSize is how many certificates the confirmation page reads at a
// time when it counts what an action would change.
const bulkPageSize = fleetcert.MaxPageSize

// jobRunner runs the jobs this process's console started and stops them
// on Close (they give their leases back, for another process to go on).
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
	if running, err := h.Registry.LatestJob(r.Context(), l.Scope, id); err == nil && running != nil && !running.Finished() {
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
	name := caDisplayName(ca)
	j, err := h.JobRunner.Start(r.Context(), l.Scope, fleetcert.JobInput{CACertificateID: id, Action: target,
		StartedBy: "console, access key " + l.KeyID})
	var e *fleetcert.Error
	if errors.As(err, &e) && e.Code == fleetcert.EResourceAlreadyExists && e.ResourceID != "" {
		h.redirectFlash(w, r, Prefix+"cas/"+id+"/bulk/"+e.ResourceID, &Flash{Error: true,
			Message: "A bulk action on CA " + name + " is already running; nothing new was started."})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.Logger.Info("console: bulk action", "accountId", l.Scope.AccountID, "region", l.Scope.Region, "ca", id, "target", target, "jobId", j.ID)
	h.runner.start(func(ctx context.Context) {
		if _, err := h.JobRunner.RunJob(ctx, l.Scope, j.ID); err != nil && ctx.Err() == nil && !errors.Is(err, fleetcert.ErrJobHeld) {
			h.Logger.Error("console: bulk action", "jobId", j.ID, "err", err)
		}
	})
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
	scope := loginFrom(r).Scope
	j, err := h.Registry.Job(r.Context(), scope, r.PathValue("job"))
	if code := fleetcert.ErrorCode(err); code == fleetcert.EResourceNotFound || code == fleetcert.EInvalidRequest || (err == nil && j.CACertificateID != id) {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "This bulk action does not exist.")
		return nil
	} else if err != nil {
		h.fail(w, r, err)
		return nil
	}
	name := id
	if ca, err := h.Registry.DescribeCACertificate(r.Context(), scope, id); err == nil {
		name = caDisplayName(ca)
	}
	return consoleJob(j, name)
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
