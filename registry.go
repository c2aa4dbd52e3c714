package fleetcert

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Registry holds every rule of the certificate registry. The API, the
// console and the device gateway call it; the Store only persists.
type Registry struct {
	Store  Store
	Issuer *Issuer // signs CreateKeysAndCertificate and CreateCertificateFromCsr

	// Now returns the current time; tests replace it.
	Now func() time.Time

	// DescribeCacheSize, when positive, keeps up to that many certificates
	// that DescribeCertificate read in memory, dropped by the change feed
	// (describeCache: an answer is never older than a read of the store
	// would be). Set it before the first DescribeCertificate.
	DescribeCacheSize int

	describeOnce  sync.Once
	describeCache *describeCache // nil without DescribeCacheSize

	signal    changeSignal
	registrar registrar      // registrations stored together (registrar.go)
	feed      feedMemo       // the feed's newest entries read (Changes)
	signed    signatureCache // what a CA's key was found to have signed
	keys      keyListeners   // told of deleted access keys (accesskeys.go)
	jobs      changeSignal   // wakes this process's JobRunner when a job starts
}

// NewRegistry returns a Registry on store that issues with iss.
func NewRegistry(store Store, iss *Issuer) *Registry {
	r := &Registry{Store: store, Issuer: iss, Now: time.Now}
	if cr, ok := store.(CommitReporter); ok {
		cr.ReportCommits(r.feed.commit)
	}
	return r
}

func (r *Registry) now() time.Time {
	// Millisecond precision: what AWS returns, and what survives a store
	// round trip unchanged.
	return r.Now().UTC().Truncate(time.Millisecond)
}

// KeyPair is a generated key pair, PEM-encoded (KeyPair in the AWS model).
type KeyPair struct {
	PublicKey  string
	PrivateKey string
}

// RegisterCertificateWithoutCA registers a client certificate whose issuer
// is not a CA registered in this account. The same certificate may be
// registered in several accounts; it takes mode SNI_ONLY, as on AWS.
//
// Errors: InvalidRequestException, CertificateValidationException,
// ResourceAlreadyExistsException.
func (r *Registry) RegisterCertificateWithoutCA(ctx context.Context, scope Scope, certificatePEM string, status Status) (*Certificate, error) {
	status, err := CheckRegistrationStatus(status)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificatePEM("certificatePem", certificatePEM)
	if err != nil {
		return nil, err
	}
	now := r.now()
	if err := CheckValidity(cert, now); err != nil {
		return nil, err
	}
	// AWS IoT (RegisterCertificateWithoutCA): certificates registered without
	// a CA are in SNI_ONLY mode; devices must send SNI to use them.
	c := r.newCertificate(scope, cert, status, ModeSNIOnly, now)
	return c, r.create(ctx, "RegisterCertificateWithoutCA", c)
}

// CreateKeysAndCertificate creates a 2048-bit RSA key pair and a certificate
// for it signed by fleetcert's issuing CA. The private key is returned once
// and never stored.
//
// Errors: InvalidRequestException.
func (r *Registry) CreateKeysAndCertificate(ctx context.Context, scope Scope, setAsActive bool) (*Certificate, *KeyPair, error) {
	// AWS IoT (CreateKeysAndCertificate): "Creates a 2048-bit RSA key pair".
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	now := r.now()
	der, err := r.issue(&key.PublicKey, x509.CertificateRequest{}, now)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	kp := &KeyPair{
		PublicKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
	}
	c, err := r.createIssued(ctx, "CreateKeysAndCertificate", scope, der, setAsActive, now)
	if err != nil {
		return nil, nil, err
	}
	return c, kp, nil
}

// CreateCertificateFromCSR signs a certificate signing request with
// fleetcert's issuing CA and registers the certificate.
//
// Errors: InvalidRequestException.
func (r *Registry) CreateCertificateFromCSR(ctx context.Context, scope Scope, csrPEM string, setAsActive bool) (*Certificate, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	now := r.now()
	der, err := r.issue(csr.PublicKey, *csr, now)
	if err != nil {
		return nil, err
	}
	return r.createIssued(ctx, "CreateCertificateFromCsr", scope, der, setAsActive, now)
}

func (r *Registry) issue(pub any, csr x509.CertificateRequest, now time.Time) ([]byte, error) {
	if r.Issuer == nil {
		return nil, fmt.Errorf("registry has no issuing CA")
	}
	der, err := r.Issuer.Issue(pub, csr.Subject, now)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	return der, nil
}

func (r *Registry) createIssued(ctx context.Context, op string, scope Scope, der []byte, setAsActive bool, now time.Time) (*Certificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	status := StatusInactive
	if setAsActive {
		status = StatusActive
	}
	c := r.newCertificate(scope, cert, status, ModeDefault, now)
	return c, r.create(ctx, op, c)
}

func (r *Registry) newCertificate(scope Scope, cert *x509.Certificate, status Status, mode CertificateMode, now time.Time) *Certificate {
	c := &Certificate{
		Scope:            scope,
		ID:               CertificateID(cert.Raw),
		Status:           status,
		PEM:              EncodeCertificatePEM(cert.Raw),
		Mode:             mode,
		OwnedBy:          scope.AccountID,
		CreationDate:     now,
		LastModifiedDate: now,
		CustomerVersion:  1,
		GenerationID:     newGenerationID(),
		NotBefore:        cert.NotBefore.UTC(),
		NotAfter:         cert.NotAfter.UTC(),
	}
	c.SetX509Fields(cert)
	return c
}

// create stores c and records it in the change feed. Its one failure
// short of a lost transaction, a duplicate, is the certificate's insert
// refused, and the id's number it may give before that changes nothing
// for a certificate the account already holds: it can fail only before
// changing a row (updateFailFirst).
//
// Where the store stores many certificates together, registrations that
// arrive together are (registrar.go).
func (r *Registry) create(ctx context.Context, op string, c *Certificate) error {
	return r.createChecked(ctx, op, c, nil)
}

// createChecked is create for a registration with a condition: check, when
// not nil, runs in the transaction that stores c, before c is stored, and
// its error fails the registration. It only reads (an fn of
// updateFailFirst), and it may change c.
func (r *Registry) createChecked(ctx context.Context, op string, c *Certificate, check func(context.Context, Tx) error) error {
	if u, ok := r.Store.(FailFirstUpdater); ok {
		return r.registrar.create(ctx, r, u, op, c, check)
	}
	err := r.updateFailFirst(ctx, op, func(tx Tx) error {
		if check != nil {
			if err := check(ctx, tx); err != nil {
				return err
			}
		}
		return r.insert(ctx, tx, c)
	})
	return duplicate(err, c.Scope, c.ID)
}

// insert stores c in tx and records it in the change feed.
func (r *Registry) insert(ctx context.Context, tx Tx, c *Certificate) error {
	if err := tx.CreateCertificate(ctx, c); err != nil {
		return err
	}
	return tx.AppendChange(ctx, createdChange(c))
}

// createdChange is the change-feed entry of c's registration, c stored.
func createdChange(c *Certificate) *Change {
	return &Change{
		Kind: ChangeCertificateCreated, Scope: c.Scope, CertificateID: c.ID,
		NewStatus: c.Status, Time: c.CreationDate,
		Registration: &Certificate{Scope: c.Scope, ID: c.ID, CACertificateID: c.CACertificateID,
			Status: c.Status, Mode: c.Mode, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Seq: c.Seq},
	}
}

// duplicate gives ResourceAlreadyExistsException for certificate id the
// members AWS sets: the existing certificate's id and ARN.
func duplicate(err error, scope Scope, id string) error {
	var e *Error
	if errors.As(err, &e) && e.Code == EResourceAlreadyExists && e.ResourceID == "" {
		return &Error{
			Code: EResourceAlreadyExists,
			// AWS's message, as quoted from its answer in getmoto/moto#3320:
			// scripts match on it.
			Message:     "The certificate is already provisioned or registered",
			ResourceID:  id,
			ResourceARN: CertificateARN(scope, id),
		}
	} else if err != nil {
		return fmt.Errorf("register certificate %s: %w", id, err)
	}
	return nil
}

// DescribeCertificate returns the client certificate id of scope.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DescribeCertificate(ctx context.Context, scope Scope, id string) (*Certificate, error) {
	id, err := ParseCertificateID("certificateId", id)
	if err != nil {
		return nil, err
	}
	read := func() (*Certificate, error) {
		var c *Certificate
		err := r.Store.View(ctx, func(tx Tx) error {
			var err error
			c, err = tx.Certificate(ctx, scope, id)
			return err
		})
		return c, err
	}
	r.describeOnce.Do(func() {
		if r.DescribeCacheSize > 0 {
			r.describeCache = newDescribeCache(r.Store, r.Changes, r.DescribeCacheSize)
		}
	})
	var c *Certificate
	if r.describeCache != nil {
		c, err = r.describeCache.describe(ctx, scope, id, read)
	} else {
		c, err = read()
	}
	if err != nil {
		return nil, notFound(err, id)
	}
	return c, nil
}

// UpdateCertificate sets the status of a client certificate. Setting the
// current status again is a success that changes nothing.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// CertificateStateException.
func (r *Registry) UpdateCertificate(ctx context.Context, scope Scope, id string, newStatus Status) error {
	id, err := ParseCertificateID("certificateId", id)
	if err != nil {
		return err
	}
	if _, err := ParseStatus(string(newStatus)); err != nil {
		return err
	}
	err = r.update(ctx, "UpdateCertificate", func(tx Tx) error {
		c, err := tx.Certificate(ctx, scope, id)
		if err != nil {
			return err
		}
		return r.updateCertificateIn(ctx, tx, c, newStatus)
	})
	return notFound(err, id)
}

// DeleteCertificate deletes a client certificate that is not ACTIVE and
// is attached to no thing; with forceDelete its policy attachments go with
// it, without they refuse the deletion (checkCertificateAttachments).
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// CertificateStateException, DeleteConflictException.
func (r *Registry) DeleteCertificate(ctx context.Context, scope Scope, id string, forceDelete bool) error {
	id, err := ParseCertificateID("certificateId", id)
	if err != nil {
		return err
	}
	err = r.update(ctx, "DeleteCertificate", func(tx Tx) error {
		c, err := tx.Certificate(ctx, scope, id)
		if err != nil {
			return err
		}
		if err := CanDelete(id, c.Status); err != nil {
			return err
		}
		now := r.now()
		if err := r.checkCertificateAttachments(ctx, tx, scope, id, forceDelete, now); err != nil {
			return err
		}
		if err := tx.DeleteCertificate(ctx, scope, id); err != nil {
			return err
		}
		if r.Issuer != nil && r.Issuer.Issued(c) {
			// A deleted certificate fleetcert issued stays revoked for
			// other doors (revocation.go).
			if err := r.bury(ctx, tx, c, now); err != nil {
				return err
			}
		}
		return tx.AppendChange(ctx, &Change{
			Kind: ChangeCertificateDeleted, Scope: scope, CertificateID: id,
			OldStatus: c.Status, Time: now,
		})
	})
	return notFound(err, id)
}

// updateCertificateIn sets c, as read in tx, to newStatus (UpdateCertificate's
// rule and change). It writes the four columns a status change moves
// (UpdateCertificateStatus), as a bulk job does: rewriting the whole row
// made SQLite rewrite every index on it, each at a random place in a large
// store, where a status change needs two (BENCHMARKS.md, "UpdateCertificate
// writes what it changes").
func (r *Registry) updateCertificateIn(ctx context.Context, tx Tx, c *Certificate, newStatus Status) error {
	changed, err := CheckTransition(c.Status, newStatus)
	if err != nil || !changed {
		return err
	}
	old, from := c.Status, c.CustomerVersion
	c.Status = newStatus.normalize()
	r.touch(c)
	ok, err := tx.UpdateCertificateStatus(ctx, c, from)
	if err != nil {
		return err
	}
	if !ok {
		// Read in this transaction: every store holds it until the
		// transaction ends (SQLite's one writer, PostgreSQL's record lock).
		return fmt.Errorf("certificate %s changed under its transaction", c.ID)
	}
	return tx.AppendChange(ctx, &Change{
		Kind: ChangeCertificateUpdated, Scope: c.Scope, CertificateID: c.ID,
		OldStatus: old, NewStatus: c.Status, Time: c.LastModifiedDate,
	})
}

// ListCertificates returns a page of the client certificates of scope,
// newest first unless opts.Ascending.
//
// Errors: InvalidRequestException.
func (r *Registry) ListCertificates(ctx context.Context, scope Scope, opts ListOptions) (*CertificatePage, error) {
	return r.listCertificates(ctx, CertificateQuery{Scope: scope}, opts)
}

// CertificateFilter narrows a listing of client certificates (the
// console's filters).
type CertificateFilter struct {
	Status           Status
	CACertificateID  string
	NoCA             bool   // only certificates registered without a CA
	IDPrefix         string // hex digits, any case
	CommonNamePrefix string // the start of the subject common name, case-sensitive
	SortByExpiry     bool   // order by end of validity instead of creation
	// ExpiresBefore, when set, keeps only certificates whose validity ends
	// before it (expired ones included).
	ExpiresBefore time.Time
}

// FindCertificates returns a page of the client certificates of scope that
// match f, ordered like ListCertificates (or by NotAfter with
// f.SortByExpiry).
//
// Errors: InvalidRequestException.
func (r *Registry) FindCertificates(ctx context.Context, scope Scope, f CertificateFilter, opts ListOptions) (*CertificatePage, error) {
	q, err := f.query(scope)
	if err != nil {
		return nil, err
	}
	return r.listCertificates(ctx, q, opts)
}

// CountCertificates returns how many client certificates of scope match f,
// counting no further than limit (so the answer is min(count, limit)).
//
// Errors: InvalidRequestException.
func (r *Registry) CountCertificates(ctx context.Context, scope Scope, f CertificateFilter, limit int) (int, error) {
	q, err := f.query(scope)
	if err != nil {
		return 0, err
	}
	var n int
	err = r.Store.View(ctx, func(tx Tx) error {
		n, err = tx.CountCertificates(ctx, q, limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count certificates: %w", err)
	}
	return n, nil
}

func (f CertificateFilter) query(scope Scope) (CertificateQuery, error) {
	q := CertificateQuery{Scope: scope, NoCA: f.NoCA, OrderByExpiry: f.SortByExpiry, NotAfterBefore: f.ExpiresBefore}
	if f.Status != "" {
		st, err := ParseStatus(string(f.Status))
		if err != nil {
			return q, err
		}
		q.Status = st.normalize()
	}
	if f.CACertificateID != "" {
		if f.NoCA {
			return q, Errorf(EInvalidRequest, "Choose either a CA or no CA.")
		}
		id, err := ParseCertificateID("caCertificateId", f.CACertificateID)
		if err != nil {
			return q, err
		}
		q.CACertificateID = id
	}
	if p := strings.ToLower(f.IDPrefix); p != "" {
		if len(p) > 64 || strings.Trim(p, "0123456789abcdef") != "" {
			return q, Errorf(EInvalidRequest, "A certificate id prefix is up to 64 hex digits.")
		}
		q.IDPrefix = p
	}
	if len(f.CommonNamePrefix) > 64 {
		// RFC 5280 ub-common-name: 64 characters.
		return q, Errorf(EInvalidRequest, "A common name is at most 64 characters.")
	}
	q.CommonNamePrefix = f.CommonNamePrefix
	return q, nil
}

func (r *Registry) listCertificates(ctx context.Context, q CertificateQuery, opts ListOptions) (*CertificatePage, error) {
	q.Ascending = opts.Ascending
	certs, next, err := listPage(ctx, r.Store, opts,
		func(tx Tx, after *Cursor, limit int) ([]*Certificate, error) {
			q.After, q.Limit = after, limit
			return tx.ListCertificates(ctx, q)
		},
		func(c *Certificate) Cursor {
			if q.OrderByExpiry {
				return Cursor{CreationDate: c.NotAfter, Seq: c.Seq}
			}
			return Cursor{CreationDate: c.CreationDate, Seq: c.Seq}
		})
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return &CertificatePage{Certificates: certs, NextMarker: next}, nil
}

// touch records a real change: lastModifiedDate, customerVersion and
// generationId move, as AWS.
func (r *Registry) touch(c *Certificate) {
	c.LastModifiedDate = r.now()
	c.CustomerVersion++
	c.GenerationID = newGenerationID()
}

// notFound gives ResourceNotFoundException AWS's message.
func notFound(err error, id string) error {
	if ErrorCode(err) == EResourceNotFound {
		return Errorf(EResourceNotFound, "The certificate %s does not exist.", id)
	}
	return err
}

// newGenerationID returns a random id shaped like AWS's generationId (a
// UUID).
func newGenerationID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return generationID(b)
}

// generationIDs returns n ids like newGenerationID's from one read of the
// random source (a system call each, else: a bulk job makes a million).
func generationIDs(n int) []string {
	b := make([]byte, 16*n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = generationID([16]byte(b[16*i:]))
	}
	return ids
}

func generationID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// AccessKey returns the access key id, for request authentication.
//
// Errors: ResourceNotFoundException.
func (r *Registry) AccessKey(ctx context.Context, id string) (*AccessKey, error) {
	var k *AccessKey
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		k, err = tx.AccessKey(ctx, id)
		return err
	})
	return k, err
}

// CreateAccessKey generates and stores a new access key for accountID.
//
// Errors: InvalidRequestException for a malformed account id.
func (r *Registry) CreateAccessKey(ctx context.Context, accountID string) (*AccessKey, error) {
	k, err := NewAccessKey(accountID, r.now())
	if err != nil {
		return nil, err
	}
	return k, r.update(ctx, "CreateAccessKey", func(tx Tx) error { return r.createAccessKeyIn(ctx, tx, k) })
}

// EnsureAccessKey stores the bootstrap key k unless a key with its id
// exists; an existing key with another secret or account is an error, so a
// changed environment is noticed rather than silently ignored.
func (r *Registry) EnsureAccessKey(ctx context.Context, k *AccessKey) error {
	if !ValidAccountID(k.AccountID) {
		return Errorf(EInvalidRequest, "Account id %q is not 12 digits.", k.AccountID)
	}
	stored := *k // the caller's key stays as given
	if stored.CreatedAt.IsZero() {
		stored.CreatedAt = r.now()
	}
	stored.CreatedAt = stored.CreatedAt.UTC().Truncate(time.Millisecond) // what every store keeps
	k = &stored
	ensure := func() error {
		return r.update(ctx, "EnsureAccessKey", func(tx Tx) error {
			old, err := tx.AccessKey(ctx, k.ID)
			if ErrorCode(err) == EResourceNotFound {
				if _, err := tx.Setting(ctx, deletedKeySetting(k.ID)); err == nil {
					return Errorf(EInvalidRequest, "Access key %s was deleted (fleetcert keys delete); it is not stored again. Unset FLEETCERT_ACCESS_KEY_ID and FLEETCERT_SECRET_ACCESS_KEY, or give a new key.", k.ID)
				} else if ErrorCode(err) != EResourceNotFound {
					return err
				}
				return r.createAccessKeyIn(ctx, tx, k)
			} else if err != nil {
				return err
			}
			if subtle.ConstantTimeCompare([]byte(old.Secret), []byte(k.Secret)) != 1 || old.AccountID != k.AccountID {
				return fmt.Errorf("access key %s is already stored with another secret or account", k.ID)
			}
			return nil
		})
	}
	err := ensure()
	if ErrorCode(err) == EResourceAlreadyExists {
		// Another process (a cluster node starting at the same moment)
		// stored it between our read and our insert: compare with theirs.
		err = ensure()
	}
	return err
}

// bootstrapKeySetting is the Store setting that records that the bootstrap
// access key was made, so that processes starting together make one.
const bootstrapKeySetting = "bootstrap-access-key"

// CreateBootstrapAccessKey makes the first access key of a store, for
// accountID, and returns it; it returns nil, and makes none, when the store
// already has a key or another process is making the bootstrap key. Of
// several processes starting at once on an empty store, exactly one gets a
// key.
func (r *Registry) CreateBootstrapAccessKey(ctx context.Context, accountID string) (*AccessKey, error) {
	k, err := NewAccessKey(accountID, r.now())
	if err != nil {
		return nil, err
	}
	made := false
	err = r.update(ctx, "CreateBootstrapAccessKey", func(tx Tx) error {
		made = false
		if n, err := tx.CountAccessKeys(ctx); err != nil || n > 0 {
			return err
		}
		// The claim is a row with a unique name: a second process's insert
		// waits for the first's commit and then fails.
		if err := tx.CreateSetting(ctx, bootstrapKeySetting, []byte(k.ID)); err != nil {
			return err
		}
		made = true
		return r.createAccessKeyIn(ctx, tx, k)
	})
	switch {
	case ErrorCode(err) == EResourceAlreadyExists:
		return nil, nil
	case err != nil:
		return nil, err
	case !made:
		return nil, nil
	}
	return k, nil
}

// RegisterCertificateInput is the input of RegisterCertificate.
type RegisterCertificateInput struct {
	CertificatePEM   string
	CACertificatePEM string // optional: which registered CA signed it
	Status           Status // "" means INACTIVE, or ACTIVE with SetAsActive
	SetAsActive      bool   // deprecated by AWS, still honoured
}

// RegisterCertificate registers a client certificate issued by a CA
// registered in this account and region. The certificate takes the CA's
// certificate mode.
//
// Errors: InvalidRequestException, CertificateValidationException,
// CertificateStateException, CertificateConflictException,
// ResourceAlreadyExistsException.
func (r *Registry) RegisterCertificate(ctx context.Context, scope Scope, in RegisterCertificateInput) (*Certificate, error) {
	status := in.Status
	if status == "" && in.SetAsActive {
		status = StatusActive
	}
	status, err := CheckRegistrationStatus(status)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificatePEM("certificatePem", in.CertificatePEM)
	if err != nil {
		return nil, err
	}
	now := r.now()
	if err := CheckValidity(cert, now); err != nil {
		return nil, err
	}
	// The issuer is found, and the signature verified, before the store's
	// write turn; the registration's transaction finds it again to see the
	// CA as it is then, verifying only a CA it did not verify before.
	memo := &issuerMemo{}
	issuer := func(ctx context.Context, tx Tx) (*CACertificate, error) {
		ca, err := findIssuer(ctx, tx, scope, cert, in.CACertificatePEM, memo)
		if err != nil {
			return nil, err
		}
		if ca.Status != CAStatusActive {
			// Deactivating a CA stops registration under it
			// (deactivate-ca-cert.md).
			return nil, Errorf(ECertificateState, "The CA certificate %s is INACTIVE; activate it to register certificates under it.", ca.ID)
		}
		return ca, nil
	}
	var ca *CACertificate
	err = r.Store.View(ctx, func(tx Tx) error {
		var err error
		ca, err = issuer(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	c := r.newCertificate(scope, cert, status, ca.Mode, now)
	c.CACertificateID = ca.ID
	err = r.createChecked(ctx, "RegisterCertificate", c, func(ctx context.Context, tx Tx) error {
		ca, err := issuer(ctx, tx)
		if err != nil {
			return err
		}
		c.CACertificateID, c.Mode = ca.ID, ca.Mode
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListCertificatesByCA returns a page of the client certificates of scope
// issued by CA caID, ordered like ListCertificates.
//
// Errors: InvalidRequestException.
func (r *Registry) ListCertificatesByCA(ctx context.Context, scope Scope, caID string, opts ListOptions) (*CertificatePage, error) {
	caID, err := ParseCertificateID("caCertificateId", caID)
	if err != nil {
		return nil, err
	}
	return r.listCertificates(ctx, CertificateQuery{Scope: scope, CACertificateID: caID}, opts)
}
