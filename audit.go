package fleetcert

import (
	"context"
	"fmt"
	"time"
)

// The audit log records who made every mutation, and how. It rides on the
// change feed: the Registry fills the audit fields of each Change it
// appends (Operation, Actor, ActorAccount, SourceIP) from the operation it
// runs and the request's Actor (WithActor), and the store's AppendChange
// writes one AuditEntry per change that has an Operation, in the same
// transaction. The feed is pruned after a day; the audit log is kept for
// its own retention (PruneAudit).

// Actors other than an access key.
const (
	// ActorDevice is a device whose connection made the mutation
	// (just-in-time registration and provisioning).
	ActorDevice = "device"
	// ActorCLI is the fleetcert command line (keys create, delete, rotate).
	ActorCLI = "cli"
	// ActorSystem is fleetcert itself: a job, the bootstrap key, or any
	// mutation made without an Actor in its context.
	ActorSystem = "system"
	// ActorConsolePrefix is prepended to the access key id of a console
	// session: "console:AKIA…".
	ActorConsolePrefix = "console:"
)

// Actor is who asks for a mutation, as the audit log records it.
type Actor struct {
	// ID is the access key id of a signed API request, ActorConsolePrefix
	// and the key id of a console session, or ActorDevice, ActorCLI or
	// ActorSystem. Never a secret.
	ID string
	// AccountID is the account of the access key, "" when there is none.
	AccountID string
	// SourceIP is the client's address without its port, "" when there is
	// no client.
	SourceIP string
}

type actorKey struct{}

// WithActor returns ctx carrying a: the Registry records it in the audit
// entry of every mutation made with the returned context. The API sets it
// once a request's signature checks out, the console from its session.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the Actor ctx carries, and whether it carries one.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// actorOr returns ctx's Actor, or one with id def when it carries none.
func actorOr(ctx context.Context, def string) Actor {
	if a, ok := ActorFrom(ctx); ok && a.ID != "" {
		return a
	}
	return Actor{ID: def}
}

// AuditEntry is one entry of the audit log: what a Change recorded, and
// who made it how.
type AuditEntry struct {
	Seq       int64 // the Change's Seq
	Time      time.Time
	Scope     Scope
	Operation string // the AWS operation (UpdateCertificate), or fleetcert's own
	Kind      ChangeKind
	// CertificateID, OldStatus and NewStatus are the Change's: a
	// certificate's or CA's id and its statuses before and after.
	CertificateID string
	OldStatus     Status
	NewStatus     Status
	// Resource and Target are the Change's: the object or link, or the
	// access key id.
	Resource     string
	Target       string
	Actor        string // Actor.ID
	ActorAccount string // Actor.AccountID
	SourceIP     string // Actor.SourceIP
}

// AuditQuery selects audit entries; see Tx.AuditEntries. Filters left at
// their zero value select everything.
type AuditQuery struct {
	Since         time.Time // only entries whose Time is at or after it
	Until         time.Time // only entries whose Time is before it
	AccountID     string    // only entries of this account's scope
	Region        string    // only entries of this Region's scope
	CertificateID string    // only entries whose CertificateID is it
	Resource      string    // only entries whose Resource is it
	// Newest lists newest first; oldest first otherwise.
	Newest bool
	// After, when set, resumes strictly after this position in the order
	// listed.
	After *AuditCursor
	Limit int
}

// AuditCursor is a position in the audit log's order, (Time, Seq): the
// last entry of the previous page.
type AuditCursor struct {
	Time time.Time
	Seq  int64
}

// auditTx is the Tx an update's function gets: it stamps every change it
// appends with the operation and the actor, so that the store writes its
// audit entry.
type auditTx struct {
	Tx
	op    string
	actor Actor
}

func (t auditTx) AppendChange(ctx context.Context, ch *Change) error {
	t.stamp(ch)
	return t.Tx.AppendChange(ctx, ch)
}

func (t auditTx) AppendChanges(ctx context.Context, chs []*Change) error {
	for _, ch := range chs {
		t.stamp(ch)
	}
	return t.Tx.AppendChanges(ctx, chs)
}

// stamp gives ch the update's operation and actor unless it has its own.
func (t auditTx) stamp(ch *Change) {
	if ch.Operation == "" {
		ch.Operation = t.op
	}
	if ch.Operation != "" && ch.Actor == "" {
		ch.Actor, ch.ActorAccount, ch.SourceIP = t.actor.ID, t.actor.AccountID, t.actor.SourceIP
	}
}

// MaxAuditLimit is the most entries one Audit call returns.
const MaxAuditLimit = 1000

// Audit returns up to q.Limit entries of the audit log (100 when 0, at
// most MaxAuditLimit) matching q, and the cursor to pass as q.After for
// the next page (nil after the last). The caller scopes q: the console
// sets its session's account and Region; the command line may read every
// account.
//
// Errors: InvalidRequestException for a negative limit or an Until not
// after Since.
func (r *Registry) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, *AuditCursor, error) {
	switch {
	case q.Limit < 0:
		return nil, nil, Errorf(EInvalidRequest, "The limit must not be negative.")
	case q.Limit == 0:
		q.Limit = 100
	case q.Limit > MaxAuditLimit:
		q.Limit = MaxAuditLimit
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return nil, nil, Errorf(EInvalidRequest, "The end of the time range must be after its start.")
	}
	// One more than asked tells whether there is a next page.
	want := q.Limit
	q.Limit++
	var entries []AuditEntry
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		entries, err = tx.AuditEntries(ctx, q)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read audit log: %w", err)
	}
	var next *AuditCursor
	if len(entries) > want {
		entries = entries[:want]
		last := entries[want-1]
		next = &AuditCursor{Time: last.Time, Seq: last.Seq}
	}
	return entries, next, nil
}

// PruneAudit removes the audit entries older than retention and returns
// how many it removed.
func (r *Registry) PruneAudit(ctx context.Context, retention time.Duration) (int64, error) {
	n, err := r.Store.PruneAudit(ctx, r.now().Add(-retention))
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return n, nil
}
