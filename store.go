package fleetcert

import (
	"context"
	"errors"
	"time"
)

// Times: a store keeps CreationDate, LastModifiedDate and transfer dates to
// the millisecond at least (the Registry truncates them to milliseconds) and
// NotBefore/NotAfter to the second, for any year up to 9999 (RFC 5280's "no
// expiration" date), and returns them in UTC. An empty slice field
// (CACertificate.Tags, CACertificate.Subject, Object.Body, Link.Body) is
// returned nil.
//
// The change feed. Every mutation appends a Change in its own transaction,
// and watchers (the device gateway of every process sharing the store) read
// it with Changes. A store promises:
//
//   - Seqs are unique, positive and never reused, pruning included.
//   - Commit order: when Changes returns an entry with Seq s, every change
//     with a Seq below s has either committed (and is returned by any later
//     Changes call whose after is below its Seq, until pruned) or will never
//     commit. So a watcher that remembers the last Seq it read and asks for
//     the changes after it never skips a committed change. (A store whose
//     sequence hands out numbers before commit, as a PostgreSQL sequence
//     does, must serialise the append with the commit to keep this.)
//   - Visibility: a change whose Update returned nil is returned by every
//     Changes call, in any process, that begins afterwards.
//
// A store may also implement ChangeNotifier to wake watchers, and prunes
// the feed by age (PruneChanges); a watcher whose position fell behind the
// pruned horizon gets ErrChangesPruned and must reload its view.
//
// Store persists the registry's records. It never decides: every rule lives
// in Registry. Implementations: sqlite (embedded) and postgres; storetest
// holds the contract suite both must pass.
type Store interface {
	// View runs fn with read-only access. Each read sees the latest
	// committed state; several reads in one View need not see one snapshot
	// (a read-check-write belongs in Update). Writes fail.
	View(ctx context.Context, fn func(Tx) error) error

	// Update runs fn in a read-write transaction and commits it if fn returns
	// nil. Records read through the Tx stay unchanged by other Updates until
	// it commits, so a read-check-write in fn is atomic. An error from fn is
	// returned unchanged (wrapped errors keep their *Error).
	Update(ctx context.Context, fn func(Tx) error) error

	// Changes returns up to limit entries of the change feed with Seq >
	// after, in Seq order. See "The change feed" above for what a watcher
	// may rely on.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)

	// ChangesHead returns the Seq of the newest committed change, 0 when the
	// feed never had one. Every change with a Seq at or below it that will ever
	// commit has committed. It never decreases, pruning included. A watcher
	// loads its view and starts reading after the head it read before loading.
	ChangesHead(ctx context.Context) (int64, error)

	// PruneChanges removes the changes whose Time is before `before` and
	// returns how many it removed. Afterwards Changes with an after below the
	// highest pruned Seq returns an error wrapping ErrChangesPruned; the head
	// is unchanged.
	PruneChanges(ctx context.Context, before time.Time) (int64, error)

	// PruneAudit removes the audit entries whose Time is before `before`
	// and returns how many it removed.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)

	// Close releases the store's resources.
	Close() error
}

// ErrChangesPruned is returned (wrapped) by Store.Changes when changes
// after the given position have been pruned: the caller cannot learn what
// it missed from the feed and must reload what it derived from it.
var ErrChangesPruned = errors.New("change feed pruned past the requested position")

// ChangeNotifier is implemented by a store that can wake the change feed's
// watchers in every process sharing it (PostgreSQL's LISTEN/NOTIFY).
type ChangeNotifier interface {
	// NotifyChanges returns a channel that receives a value soon after a
	// change commits in any process, and again whenever the store's
	// notification link was re-established (changes may have committed
	// unannounced meanwhile, so read the feed). Values coalesce: one value
	// may stand for many commits. The channel is closed when ctx ends.
	NotifyChanges(ctx context.Context) (<-chan struct{}, error)
}

// BulkUpdater is implemented by a store whose Update shares transactions
// with concurrent Updates (SQLite's group commit, where each later member
// runs inside a savepoint). UpdateBulk is Update in a transaction shared
// with no other: for an Update that writes thousands of rows
// (ImportCertificates, a job's batch), whose savepoint would keep a copy of
// every page it changes; its commit costs less than that copy.
type BulkUpdater interface {
	UpdateBulk(ctx context.Context, fn func(Tx) error) error
}

// FailFirstUpdater is implemented by a store whose Update shares
// transactions with concurrent Updates and undoes a failing one alone at a
// cost (SQLite's group commit: each later member runs inside a savepoint,
// which copies every page it changes). UpdateFailFirst is Update for an fn
// that can fail only before it has changed a row (a registration, whose
// one failure is its certificate's duplicate key, refused by the statement
// that would store it): such an fn fails alone as in Update, without that
// cost. An fn that fails after changing a row fails every Update of its
// transaction, as a lost transaction does, so that none of its changes
// commits. A store whose transactions are each their own and fail whole
// (PostgreSQL) implements it as Update.
type FailFirstUpdater interface {
	UpdateFailFirst(ctx context.Context, fn func(Tx) error) error
}

// CertificatesCreator is implemented by a Tx that stores many new
// certificates in a few statements (SQLite: statements of many rows, each
// step one statement where CreateCertificate runs one per certificate;
// PostgreSQL: one round trip, one INSERT).
// The Registry stores registrations that arrive together through it
// (registrar.go), in an Update of a FailFirstUpdater.
type CertificatesCreator interface {
	// CreateCertificates is CreateCertificate for each certificate of cs,
	// and sets the Seq of each stored: stored[i] reports whether cs[i] was.
	// A certificate whose (Scope, ID) the store holds, or an earlier one of
	// cs has, is not stored and is no error. An error may leave some of cs
	// stored: the Update must fail (UpdateFailFirst fails its transaction).
	CreateCertificates(ctx context.Context, cs []*Certificate) (stored []bool, err error)
}

// CommitStamper is implemented by a store that can tell without a query
// whether any process has committed since an earlier look (SQLite: the
// WAL index's header, in memory shared by every process on the file).
// Readers that keep what they read current from the change feed use it to
// skip reading the feed when nothing committed.
type CommitStamper interface {
	// CommitStamp returns a value that differs from every earlier one
	// once any process's Update has returned since it was taken: when
	// two stamps are equal, nothing committed between them. ok is false
	// when the store cannot tell now; the caller then reads the feed.
	CommitStamp() (stamp uint64, ok bool)
}

// CommitReporter is implemented by a store that can hand this process the
// change-feed entries each of its write transactions committed, as it
// commits (SQLite: its one writer appends them). The Registry keeps them
// (feedMemo), so that this process's watchers — the gateway's, the
// describe cache's, the CRL follower's — do not read back from the store
// what this process has just written: a quarter of the server's CPU under
// a load of registrations went to that (BENCHMARKS.md).
type CommitReporter interface {
	// ReportCommits makes the store call fn after each write transaction
	// that appended changes commits, before any of its Updates returns,
	// one transaction at a time, in commit order.
	ReportCommits(fn func(Commit))
}

// Commit is one write transaction's entries of the change feed, as a
// CommitReporter hands them over.
type Commit struct {
	// After and Changes: the feed's entries after Seq After up to the last
	// of Changes are exactly Changes, in Seq order, with the fields
	// Changes returns (the audit fields empty) and Registration.
	After   int64
	Changes []Change
	// Last is true when the store could tell that no process committed
	// after this transaction before it took Stamp (CommitStamper): then,
	// while CommitStamp still returns Stamp, Changes end at the feed's head.
	Last  bool
	Stamp uint64
}

// Tx is one transaction on a Store.
type Tx interface {
	// Certificate returns the client certificate id in scope.
	// Errors: ResourceNotFoundException.
	Certificate(ctx context.Context, scope Scope, id string) (*Certificate, error)

	// CertificatesByID returns the registrations of client certificate id
	// in every account and region (the device gateway's lookup by
	// fingerprint, once per connection). Only the fields admission reads
	// are filled: ID, AccountID, Region, CACertificateID, Status, Mode,
	// NotBefore, NotAfter and Seq.
	CertificatesByID(ctx context.Context, id string) ([]*Certificate, error)

	// CertificatesAfter returns up to limit registrations of client
	// certificates, in every account and region, whose Seq is above
	// afterSeq, in Seq order (the device gateway's view of the registry
	// at start). The fields filled are CertificatesByID's.
	CertificatesAfter(ctx context.Context, afterSeq int64, limit int) ([]*Certificate, error)

	// CertificatesBySerial returns the registrations, in every account and
	// region, of the client certificates whose Serial equals serial, in Seq
	// order, with every field (PEM included). It is the OCSP responder's
	// lookup: a request names a certificate by its serial number and its
	// issuer's hashes, which the Registry checks on what this returns.
	CertificatesBySerial(ctx context.Context, serial []byte) ([]*Certificate, error)

	// UnusableCertificatesByIssuer returns up to limit registrations, in
	// every account and region, whose Issuer equals issuer and whose Status
	// is not ACTIVE, with a Seq above afterSeq, in Seq order; every field
	// but PEM, which is left empty. It is what a CRL of that issuer lists
	// (the Registry keeps those it issued), and costs the rows it returns,
	// not the issuer's certificates.
	UnusableCertificatesByIssuer(ctx context.Context, issuer []byte, afterSeq int64, limit int) ([]*Certificate, error)

	// CreateCertificate stores a new client certificate and sets its Seq.
	// Errors: ResourceAlreadyExistsException when (scope, id) exists.
	CreateCertificate(ctx context.Context, c *Certificate) error

	// UpdateCertificate replaces the stored client certificate (c.Scope, c.ID).
	// Errors: ResourceNotFoundException.
	UpdateCertificate(ctx context.Context, c *Certificate) error

	// UpdateCertificateStatus stores c's Status, LastModifiedDate,
	// CustomerVersion and GenerationID, and nothing else of c, on the
	// client certificate (c.Scope, c.ID) if its stored CustomerVersion is
	// still fromVersion, and reports whether it did: false when the
	// certificate was changed (every change moves CustomerVersion) or
	// deleted since it was read, for the caller to read it again. It is
	// how every status change is written (UpdateCertificate, provisioning,
	// a bulk job): it rewrites neither the PEM nor the indexes of the
	// columns it leaves alone. c.Seq must be the Seq
	// the certificate was read with (a store finds the row by it).
	UpdateCertificateStatus(ctx context.Context, c *Certificate, fromVersion int) (bool, error)

	// UpdateCertificateStatuses is UpdateCertificateStatus for each of us,
	// in as few statements as the store can, and reports for each, in
	// order, whether it was written. It is a bulk job's batch: one
	// statement per hundreds of certificates rather than one each.
	UpdateCertificateStatuses(ctx context.Context, us []StatusUpdate) ([]bool, error)

	// DeleteCertificate removes the client certificate id in scope.
	// Errors: ResourceNotFoundException.
	DeleteCertificate(ctx context.Context, scope Scope, id string) error

	// ListCertificates returns up to q.Limit certificates of q.Scope that
	// match every filter of q, in the order (CreationDate, Seq) — or
	// (NotAfter, Seq) with q.OrderByExpiry — ascending or descending,
	// strictly after the cursor q.After when it is set. The listed records
	// carry every field but PEM, which is left empty: listings never return
	// it, and it is most of a record's size.
	ListCertificates(ctx context.Context, q CertificateQuery) ([]*Certificate, error)

	// CountCertificates returns how many certificates of q.Scope match q's
	// filters (q.After, q.Limit and the order are ignored), counting no
	// further than limit: the result is min(count, limit), so that a page
	// can say "more than limit" without the cost of counting a whole
	// account. SQL: SELECT count(*) FROM (SELECT 1 … WHERE filters LIMIT limit).
	CountCertificates(ctx context.Context, q CertificateQuery, limit int) (int, error)

	// AccessKey returns the access key id.
	// Errors: ResourceNotFoundException.
	AccessKey(ctx context.Context, id string) (*AccessKey, error)

	// CreateAccessKey stores a new access key.
	// Errors: ResourceAlreadyExistsException when its id exists.
	CreateAccessKey(ctx context.Context, k *AccessKey) error

	// CountAccessKeys returns how many access keys exist in all accounts.
	CountAccessKeys(ctx context.Context) (int, error)

	// DeleteAccessKey removes the access key id. The Registry appends its
	// ChangeAccessKeyDeleted in the same transaction.
	// Errors: ResourceNotFoundException.
	DeleteAccessKey(ctx context.Context, id string) error

	// ListAccessKeys returns up to q.Limit access keys, of q.AccountID only
	// when it is set, in ascending ID order (byte-wise), strictly after
	// q.After when it is set. Secrets are left empty: a listing never
	// carries them.
	ListAccessKeys(ctx context.Context, q AccessKeyQuery) ([]*AccessKey, error)

	// AppendChange appends ch to the change feed and sets its Seq. When
	// ch.Operation is set it also writes ch's audit entry (AuditEntries)
	// in the same transaction, with ch's Seq: a rolled-back Update leaves
	// neither. It reads nothing to do so (a bulk job appends many).
	AppendChange(ctx context.Context, ch *Change) error

	// AppendChanges is AppendChange for each of chs, in as few statements
	// as the store can: their Seqs ascend in the order of chs, with no
	// other change between them, and each with an Operation gets its audit
	// entry. It is a bulk job's batch of changes.
	AppendChanges(ctx context.Context, chs []*Change) error

	// AuditEntries returns up to q.Limit audit entries matching every
	// filter of q, in (Time, Seq) order (descending with q.Newest),
	// strictly after q.After in that order when it is set. Entries are
	// kept until PruneAudit removes them, whatever the feed's pruning.
	AuditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, error)

	// CACertificate returns the CA certificate id in scope.
	// Errors: ResourceNotFoundException.
	CACertificate(ctx context.Context, scope Scope, id string) (*CACertificate, error)

	// CACertificatesByID returns the registrations of CA certificate id in
	// every account of region.
	CACertificatesByID(ctx context.Context, region, id string) ([]*CACertificate, error)

	// CreateCACertificate stores a new CA certificate and sets its Seq.
	// Errors: ResourceAlreadyExistsException when (scope, id) exists.
	CreateCACertificate(ctx context.Context, ca *CACertificate) error

	// UpdateCACertificate replaces the stored CA certificate (ca.Scope, ca.ID).
	// Errors: ResourceNotFoundException.
	UpdateCACertificate(ctx context.Context, ca *CACertificate) error

	// DeleteCACertificate removes the CA certificate id in scope.
	// Errors: ResourceNotFoundException.
	DeleteCACertificate(ctx context.Context, scope Scope, id string) error

	// ListCACertificates returns up to q.Limit CA certificates of q.Scope
	// matching q's filters, ordered and paged like ListCertificates. The
	// listed records carry every field, PEM included.
	ListCACertificates(ctx context.Context, q CAQuery) ([]*CACertificate, error)

	// RegistrationCode returns the registration code of scope.
	// Errors: ResourceNotFoundException.
	RegistrationCode(ctx context.Context, scope Scope) (string, error)

	// PutRegistrationCode sets the registration code of scope.
	PutRegistrationCode(ctx context.Context, scope Scope, code string) error

	// DeleteRegistrationCode removes the registration code of scope.
	// Errors: ResourceNotFoundException.
	DeleteRegistrationCode(ctx context.Context, scope Scope) error

	// Setting returns the value of the node-wide setting name: what every
	// process sharing the store must agree on (the issuing CA, the device
	// gateway's CA). Values may be secret (private keys).
	// Errors: ResourceNotFoundException.
	Setting(ctx context.Context, name string) ([]byte, error)

	// CreateSetting stores value under name. Settings are never replaced,
	// so concurrent creators agree on one value: the first to commit.
	// Errors: ResourceAlreadyExistsException when name exists.
	CreateSetting(ctx context.Context, name string, value []byte) error

	// Expiring state: small values kept until a time, shared by every
	// process on the store (the console's sign-ins, messages, results and
	// sign-in limiter, so that any node of a cluster serves any browser).
	// kind groups values of one use; key is unique within it.

	// Expiring returns the value of (kind, key) unless it expired at now.
	// Errors: ResourceNotFoundException.
	Expiring(ctx context.Context, kind, key string, now time.Time) ([]byte, error)

	// PutExpiring stores value under (kind, key) until expires, replacing
	// any value there.
	PutExpiring(ctx context.Context, kind, key string, value []byte, expires time.Time) error

	// DeleteExpiring removes (kind, key); a missing one is no error.
	DeleteExpiring(ctx context.Context, kind, key string) error

	// PruneExpiring removes every value that expired before now and
	// returns how many.
	PruneExpiring(ctx context.Context, now time.Time) (int64, error)

	// PutTransfer stores t, replacing the transfer with the same Region,
	// CertificateID, SourceAccountID and TransferDate (which must be set).
	PutTransfer(ctx context.Context, t *Transfer) error

	// LatestTransfer returns the most recent transfer (by TransferDate) of
	// certificate id in region whose source or target is accountID; of
	// transfers with the same TransferDate, the one first stored last.
	// Errors: ResourceNotFoundException.
	LatestTransfer(ctx context.Context, region, id, accountID string) (*Transfer, error)

	// Objects and links hold AWS IoT's authorization model (things, thing
	// types, thing groups, policies and what is attached to what); the
	// Registry encodes their bodies and owns every rule about them.

	// Object returns the object (scope, kind, name).
	// Errors: ResourceNotFoundException.
	Object(ctx context.Context, scope Scope, kind ObjectKind, name string) (*Object, error)

	// CreateObject stores o with Version 1, or with o.Version when it is
	// above 0 (CopyStore keeps a copied object's version), and sets
	// o.Version to the Version stored. When it returns
	// ResourceAlreadyExistsException the Tx stays usable, as after a read.
	// Errors: ResourceAlreadyExistsException when (Scope, Kind, Name) is
	// taken.
	CreateObject(ctx context.Context, o *Object) error

	// UpdateObject replaces the Label, Body and LastModifiedDate of the
	// object (o.Scope, o.Kind, o.Name) when its stored Version equals
	// o.Version, and sets o.Version (and the stored one) to o.Version+1.
	// Errors: ResourceNotFoundException; VersionConflictException when the
	// stored Version differs (someone else updated it in between).
	UpdateObject(ctx context.Context, o *Object) error

	// DeleteObject removes the object (scope, kind, name); its links are
	// the Registry's to remove.
	// Errors: ResourceNotFoundException.
	DeleteObject(ctx context.Context, scope Scope, kind ObjectKind, name string) error

	// ListObjects returns up to q.Limit objects of q.Scope and q.Kind that
	// match q's filters, in ascending Name order (byte-wise), strictly
	// after q.After when it is set.
	ListObjects(ctx context.Context, q ObjectQuery) ([]*Object, error)

	// Link returns the link (scope, kind, from, to).
	// Errors: ResourceNotFoundException.
	Link(ctx context.Context, scope Scope, kind LinkKind, from, to string) (*Link, error)

	// CreateLink stores l. When it returns ResourceAlreadyExistsException
	// the Tx stays usable, as after a read (attaching twice may be no
	// error to the Registry).
	// Errors: ResourceAlreadyExistsException when (Scope, Kind, From, To)
	// is taken.
	CreateLink(ctx context.Context, l *Link) error

	// DeleteLink removes the link (scope, kind, from, to).
	// Errors: ResourceNotFoundException.
	DeleteLink(ctx context.Context, scope Scope, kind LinkKind, from, to string) error

	// ListLinks returns up to q.Limit links of q.Scope and q.Kind: with
	// q.From set, those from it in ascending To order, strictly after To
	// q.After when set; with q.To set (and not q.From), those to it in
	// ascending From order, strictly after From q.After when set; with
	// both set, the one link (or none); with neither, all of the kind in
	// (From, To) order, q.After ignored.
	ListLinks(ctx context.Context, q LinkQuery) ([]*Link, error)
}

// ObjectKind names a kind of Object.
type ObjectKind string

// Object kinds.
const (
	ObjectThing      ObjectKind = "thing"
	ObjectThingType  ObjectKind = "thingtype"
	ObjectThingGroup ObjectKind = "thinggroup"
	ObjectPolicy     ObjectKind = "policy"
)

// Object is a named record of one scope whose Body the Registry encodes
// (JSON): a thing, a thing type, a thing group, or a policy with its
// versions. The store keys it by (Scope, Kind, Name), keeps Body opaque
// and indexes Label, which the Registry sets to what it lists the objects
// of a kind by (a thing's type, a thing group's parent). Name and Label,
// like a Link's From and To, are UTF-8 text without NUL bytes (what
// PostgreSQL's text holds); they compare byte by byte.
type Object struct {
	Scope
	Kind             ObjectKind
	Name             string
	Label            string
	Body             []byte
	Version          int64 // 1 when created; each UpdateObject adds 1
	CreationDate     time.Time
	LastModifiedDate time.Time
}

// ObjectQuery selects a page of objects.
type ObjectQuery struct {
	Scope
	Kind       ObjectKind
	Label      string // when set, only objects with this Label
	NamePrefix string // when set, only objects whose Name starts with it (byte-wise)
	After      string // resume strictly after this Name
	Limit      int
}

// LinkKind names a kind of Link.
type LinkKind string

// Link kinds. Names are those of the objects linked; principals and policy
// targets are ARNs, as AWS names them.
const (
	// LinkThingPrincipal links a thing (From) to a principal (To: a
	// certificate ARN); Body holds the attachment's type.
	LinkThingPrincipal LinkKind = "thing-principal"
	// LinkPolicyTarget links a policy (From) to a target it is attached
	// to (To: a certificate ARN or a thing group ARN).
	LinkPolicyTarget LinkKind = "policy-target"
	// LinkThingGroup links a thing (From) to a static thing group it is a
	// member of (To: the group's name).
	LinkThingGroup LinkKind = "thing-group"
)

// Link is an edge between two named records of one scope.
type Link struct {
	Scope
	Kind         LinkKind
	From, To     string
	Body         []byte // opaque to the store; may be empty
	CreationDate time.Time
}

// LinkQuery selects links; see Tx.ListLinks.
type LinkQuery struct {
	Scope
	Kind  LinkKind
	From  string
	To    string
	After string
	Limit int
}

// StatusUpdate is one write of Tx.UpdateCertificateStatuses: the Status,
// LastModifiedDate, CustomerVersion and GenerationID of Certificate, stored
// on the client certificate (Certificate.Scope, Certificate.ID) found by
// Certificate.Seq if its stored CustomerVersion is still FromVersion.
type StatusUpdate struct {
	Certificate *Certificate
	FromVersion int
}

// CertificateQuery selects a page of client certificates.
type CertificateQuery struct {
	Scope
	CACertificateID string  // when set, only certificates issued by this CA
	Status          Status  // when set, only certificates in this status
	OwnedBy         string  // when set, only certificates owned by this account
	IDPrefix        string  // when set, only certificates whose id starts with it (lowercase hex)
	Ascending       bool    // oldest first; AWS's default is newest first
	After           *Cursor // resume strictly after this position
	Limit           int

	// NoCA, when set, selects only certificates registered without a CA
	// (CACertificateID "").
	NoCA bool
	// Issuer, when set, selects only certificates whose Issuer equals it
	// byte for byte; with AuthorityKeyID also set, only those of them whose
	// AuthorityKeyID equals it or is empty (a certificate without the
	// extension may still be signed by that key). The candidates a CA may
	// have signed; the Registry confirms each by its signature.
	Issuer         []byte
	AuthorityKeyID []byte
	// ExcludeCACertificateID, when set, leaves out the certificates
	// registered under this CA (those a CA's page lists already).
	ExcludeCACertificateID string
	// CommonNamePrefix, when set, selects only certificates whose
	// CommonName starts with it, compared byte for byte (case-sensitive).
	CommonNamePrefix string
	// OrderByExpiry orders by (NotAfter, Seq) instead of (CreationDate,
	// Seq); After.CreationDate then holds the NotAfter of the position.
	OrderByExpiry bool
	// NotAfterBefore, when set, selects only certificates whose NotAfter
	// is before it (expired, or expiring by then).
	NotAfterBefore time.Time
	// StatusOnly, when set, lets the store fill only Scope, ID, Status,
	// CustomerVersion, CreationDate and Seq of the listed records (it may
	// fill more): what a bulk job reads of a million certificates.
	StatusOnly bool
}

// AccessKeyQuery selects a page of access keys; see Tx.ListAccessKeys.
type AccessKeyQuery struct {
	AccountID string // when set, only this account's keys
	After     string // resume strictly after this ID
	Limit     int
}

// CAQuery selects a page of CA certificates.
type CAQuery struct {
	Scope
	Subject      []byte // when set, only CAs with this raw DER subject
	TemplateName string // when set, only CAs whose registration config names it
	Ascending    bool
	After        *Cursor
	Limit        int
}

// Cursor is a position in list order: the (CreationDate, Seq) of the last
// item of the previous page.
type Cursor struct {
	CreationDate time.Time
	Seq          int64
}

// ChangeKind says what a change-feed entry records.
type ChangeKind string

// Change kinds.
const (
	ChangeCertificateCreated ChangeKind = "certificate.created"
	ChangeCertificateUpdated ChangeKind = "certificate.updated"
	ChangeCertificateDeleted ChangeKind = "certificate.deleted"

	// For CA changes, Change.CertificateID is the CA's id and the statuses
	// are CA statuses.
	ChangeCACertificateCreated ChangeKind = "cacertificate.created"
	ChangeCACertificateUpdated ChangeKind = "cacertificate.updated"
	ChangeCACertificateDeleted ChangeKind = "cacertificate.deleted"

	ChangeRegistrationCodeCreated ChangeKind = "registrationcode.created"
	ChangeRegistrationCodeDeleted ChangeKind = "registrationcode.deleted"

	// ChangeSessionStarted announces that a device connected to one node
	// of a cluster as Change.ClientID (in Change.Scope, with certificate
	// Change.CertificateID; Change.SessionID names the connection): any
	// other node's connection with that client id ends (MQTT's session
	// takeover), as on one broker.
	ChangeSessionStarted ChangeKind = "session.started"

	// Changes to the authorization model (Change.Resource, Change.Target):
	// the device gateway of every node reloads the policies of the
	// sessions of Change.Scope.
	ChangeObjectCreated ChangeKind = "object.created"
	ChangeObjectUpdated ChangeKind = "object.updated"
	ChangeObjectDeleted ChangeKind = "object.deleted"
	ChangeLinkCreated   ChangeKind = "link.created"
	ChangeLinkDeleted   ChangeKind = "link.deleted"

	// ChangeAccessKeyDeleted records that the access key Change.Resource
	// (of account Change.Scope.AccountID; Region is empty) was deleted:
	// every process forgets it at once (the API's key cache, the console's
	// sessions signed in with it).
	ChangeAccessKeyDeleted ChangeKind = "accesskey.deleted"

	// ChangeAccessKeyCreated records that the access key Change.Resource
	// (of account Change.Scope.AccountID) was made, for the audit log.
	ChangeAccessKeyCreated ChangeKind = "accesskey.created"
)

// Change is one entry of the ordered change feed, appended in the same
// transaction as the mutation it records. The device gateway and other
// cluster nodes consume it.
type Change struct {
	Seq           int64 // set by the store
	Kind          ChangeKind
	Scope         Scope
	CertificateID string
	OldStatus     Status // "" when created
	NewStatus     Status // "" when deleted
	Time          time.Time

	// ClientID and SessionID are set for ChangeSessionStarted only.
	ClientID  string
	SessionID string

	// Resource and Target are set for object and link changes only: the
	// object's "{kind}/{name}" or the link's "{kind}/{from}", and the
	// link's To. For the access key changes, Resource is the key's id.
	Resource string
	Target   string

	// The audit fields: the operation that made the change and who asked
	// for it (Actor's fields), set by the Registry. A change with an
	// Operation gets an audit entry (Tx.AppendChange); the feed itself
	// does not keep them, so Changes returns them empty.
	Operation    string
	Actor        string
	ActorAccount string
	SourceIP     string

	// Registration is set only on a ChangeCertificateCreated entry: the
	// registration made, with its scope, id, CA, status, mode, validity
	// and seq (what the gateway's admission view keeps), so that the view
	// need not read it back. The process which committed the entry holds
	// it (CommitReporter); a store may also keep it, so that entries read
	// from it have it (PostgreSQL does, for every node of a cluster;
	// SQLite does not: its own process gets it reported). For an entry
	// without one the view reads the certificate.
	Registration *Certificate
}
