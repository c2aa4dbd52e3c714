package console

import (
	"context"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// The console's state — sessions with their CSRF tokens, flash messages
// and results kept for a later GET — sits behind the small interfaces
// below. NewHandler sets an in-memory implementation (MemoryState): a
// restart signs everyone out and forgets results, which is acceptable for
// one process. (Bulk jobs are the Registry's, durable in the store.) A database-backed implementation
// shared by several processes can replace them by setting the Handler's
// fields before the first request.

// Login is one signed-in console session.
type Login struct {
	Token    string // the session cookie's value
	CSRF     string // the token every POST form of the session carries
	Scope    fleetcert.Scope
	KeyID    string // the access key signed in with
	Created  time.Time
	LastSeen time.Time
}

// LoginStore keeps console sessions.
type LoginStore interface {
	// CreateLogin stores a new session.
	CreateLogin(ctx context.Context, l *Login) error
	// Login returns the session of token and marks it seen at now; nil
	// when there is none or it expired (unused for idle, or older than
	// maxAge), in which case it is removed.
	Login(ctx context.Context, token string, now time.Time, idle, maxAge time.Duration) (*Login, error)
	// SetRegion moves session token to region (the header's switcher).
	SetRegion(ctx context.Context, token, region string) error
	// DeleteLogin removes session token.
	DeleteLogin(ctx context.Context, token string) error
}

// Flash is a one-time message shown on a session's next page.
type Flash struct {
	Error   bool
	Message string
}

// FlashStore keeps each session's one pending flash message.
type FlashStore interface {
	// SetFlash replaces the pending message of session token.
	SetFlash(ctx context.Context, token string, f Flash) error
	// PopFlash returns and removes it; nil when there is none.
	PopFlash(ctx context.Context, token string) (*Flash, error)
}

// ResultStore keeps what a POST produced, for the GET it redirects to, so
// that a reload shows it again rather than resubmitting (post/redirect/
// get). A result belongs to one session: another session's token never
// finds it.
type ResultStore interface {
	// PutResult stores data under (token, id) until expires.
	PutResult(ctx context.Context, token, id string, data []byte, expires time.Time) error
	// Result returns the data of (token, id), or nil when there is none or
	// it expired at now.
	Result(ctx context.Context, token, id string, now time.Time) ([]byte, error)
	// DeleteResult removes (token, id), as after showing a private key once.
	DeleteResult(ctx context.Context, token, id string) error
}

// MemoryState implements LoginStore, FlashStore and ResultStore in the
// process's memory.
type MemoryState struct {
	mu      sync.Mutex
	logins  map[string]*Login
	flashes map[string]Flash
	results map[[2]string]memoryResult
}

type memoryResult struct {
	data    []byte
	expires time.Time
}

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState {
	return &MemoryState{logins: map[string]*Login{}, flashes: map[string]Flash{}, results: map[[2]string]memoryResult{}}
}

func expired(l *Login, now time.Time, idle, maxAge time.Duration) bool {
	return now.Sub(l.LastSeen) > idle || now.Sub(l.Created) > maxAge
}

// CreateLogin implements LoginStore. Expired sessions and results are
// dropped as new sessions are made, so the maps stay as small as what is
// live.
func (s *MemoryState) CreateLogin(ctx context.Context, l *Login) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *l
	s.logins[l.Token] = &c
	for k, r := range s.results {
		if l.Created.After(r.expires) {
			delete(s.results, k)
		}
	}
	return nil
}

// Login implements LoginStore.
func (s *MemoryState) Login(ctx context.Context, token string, now time.Time, idle, maxAge time.Duration) (*Login, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logins[token]
	if l == nil {
		return nil, nil
	}
	if expired(l, now, idle, maxAge) {
		s.drop(token)
		return nil, nil
	}
	l.LastSeen = now
	c := *l
	return &c, nil
}

// pruneLogins drops expired sessions (called by the Handler as sessions
// are created).
func (s *MemoryState) pruneLogins(now time.Time, idle, maxAge time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, l := range s.logins {
		if expired(l, now, idle, maxAge) {
			s.drop(tok)
		}
	}
}

func (s *MemoryState) drop(token string) {
	delete(s.logins, token)
	delete(s.flashes, token)
	for k := range s.results {
		if k[0] == token {
			delete(s.results, k)
		}
	}
}

// SetRegion implements LoginStore.
func (s *MemoryState) SetRegion(ctx context.Context, token, region string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.logins[token]; l != nil {
		l.Scope.Region = region
	}
	return nil
}

// DeleteLogin implements LoginStore.
func (s *MemoryState) DeleteLogin(ctx context.Context, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(token)
	return nil
}

// SetFlash implements FlashStore.
func (s *MemoryState) SetFlash(ctx context.Context, token string, f Flash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logins[token] != nil {
		s.flashes[token] = f
	}
	return nil
}

// PopFlash implements FlashStore.
func (s *MemoryState) PopFlash(ctx context.Context, token string) (*Flash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flashes[token]
	if !ok {
		return nil, nil
	}
	delete(s.flashes, token)
	return &f, nil
}

// PutResult implements ResultStore.
func (s *MemoryState) PutResult(ctx context.Context, token, id string, data []byte, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logins[token] != nil {
		s.results[[2]string{token, id}] = memoryResult{data: data, expires: expires}
	}
	return nil
}

// Result implements ResultStore.
func (s *MemoryState) Result(ctx context.Context, token, id string, now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.results[[2]string{token, id}]
	if !ok || now.After(r.expires) {
		return nil, nil
	}
	return r.data, nil
}

// DeleteResult implements ResultStore.
func (s *MemoryState) DeleteResult(ctx context.Context, token, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.results, [2]string{token, id})
	return nil
}

// Job is a bulk action on the certificates a CA signed, as its pages show
// it: a fleetcert.Job (the Registry's durable record) in the console's
// words.
type Job struct {
	ID     string
	Scope  fleetcert.Scope // only this account and region see it
	CAID   string
	CAName string
	Target fleetcert.Status
	JobProgress
}

// JobProgress is how far a job is.
type JobProgress struct {
	Counting  bool // unused: a job does not count ahead (a million certificates)
	Total     int  // 0: not known
	Done      int
	Changed   int
	Unchanged int      // already in the target status
	Skipped   int      // the state machine does not allow the change
	Signed    int      // of Done, found by signature (registered without the CA)
	Failed    int      // 1 when the job failed or was canceled
	Errors    []string // why, in words
	Finished  bool
	Started   time.Time
	Ended     time.Time
}

// Percent is how much of the job is done, 0 to 100.
func (p JobProgress) Percent() int {
	if p.Total == 0 {
		if p.Finished {
			return 100
		}
		return 0
	}
	return min(100, p.Done*100/p.Total)
}

// consoleJob is j as the console shows it.
func consoleJob(j *fleetcert.Job, caName string) *Job {
	if j == nil {
		return nil
	}
	out := &Job{ID: j.ID, Scope: j.Scope, CAID: j.CACertificateID, CAName: caName, Target: j.Action,
		JobProgress: JobProgress{
			Done: int(j.Progress.Processed()), Changed: int(j.Progress.Changed), Unchanged: int(j.Progress.Unchanged),
			Skipped: int(j.Progress.Skipped), Signed: int(j.Progress.Signed),
			Finished: j.Finished(), Started: j.CreatedAt, Ended: j.CompletedAt,
		}}
	switch j.Status {
	case fleetcert.JobFailed:
		out.Failed = 1
		out.Errors = []string{"The action failed: " + j.Reason}
	case fleetcert.JobCanceled:
		out.Failed = 1
		out.Errors = []string{"The action was canceled. " + j.Reason}
	}
	return out
}
