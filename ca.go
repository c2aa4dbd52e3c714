package fleetcert

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// CAStatus is the status of a CA certificate (CACertificateStatus in the
// AWS model): ACTIVE or INACTIVE only.
type CAStatus string

// CA certificate statuses.
const (
	CAStatusActive   CAStatus = "ACTIVE"
	CAStatusInactive CAStatus = "INACTIVE"
)

// AutoRegistrationStatus says whether devices presenting a certificate
// issued by a CA are registered on first connect (just-in-time
// registration).
type AutoRegistrationStatus string

// Auto-registration statuses.
const (
	AutoRegistrationEnable  AutoRegistrationStatus = "ENABLE"
	AutoRegistrationDisable AutoRegistrationStatus = "DISABLE"
)

// MaxCAsPerSubject is how many CA certificates with one subject an account
// may register (RegisterCACertificate: "up to 10 CA certificates with the
// same CA subject field per Amazon Web Services account").
const MaxCAsPerSubject = 10

// CACertificate is a CA certificate registered in one account and region
// (CACertificateDescription in the AWS model).
type CACertificate struct {
	Scope
	ID                     string
	Status                 CAStatus
	PEM                    string
	Mode                   CertificateMode
	AutoRegistrationStatus AutoRegistrationStatus
	RegistrationConfig     RegistrationConfig
	Tags                   []Tag

	// Subject is the CA's raw DER subject: a device certificate's raw
	// issuer is compared with it to find the CA that may have signed it.
	Subject []byte

	OwnedBy          string
	CreationDate     time.Time
	LastModifiedDate time.Time
	CustomerVersion  int
	GenerationID     string
	NotBefore        time.Time
	NotAfter         time.Time

	Seq int64 // set by the store
}

// RegistrationConfig is a CA's just-in-time provisioning configuration,
// stored and returned as given.
type RegistrationConfig struct {
	TemplateBody string
	RoleARN      string
	TemplateName string
}

// Tag is a resource tag.
type Tag struct {
	Key   string
	Value string
}

// ARN returns the CA certificate's ARN, arn:aws:iot:{region}:{account}:cacert/{id}.
func (ca *CACertificate) ARN() string {
	return CACertificateARN(ca.Scope, ca.ID)
}

// CACertificateARN returns the ARN of CA certificate id in scope.
func CACertificateARN(s Scope, id string) string {
	return fmt.Sprintf("arn:aws:iot:%s:%s:cacert/%s", s.Region, s.AccountID, id)
}

// RegisterCAInput is the input of RegisterCACertificate.
type RegisterCAInput struct {
	CACertificatePEM           string
	VerificationCertificatePEM string
	Mode                       CertificateMode // "" means DEFAULT
	SetAsActive                bool
	AllowAutoRegistration      bool
	RegistrationConfig         RegistrationConfig
	Tags                       []Tag
}

// GetRegistrationCode returns the registration code of scope, creating one
// when there is none: the same code until DeleteRegistrationCode.
func (r *Registry) GetRegistrationCode(ctx context.Context, scope Scope) (string, error) {
	var code string
	err := r.update(ctx, "GetRegistrationCode", func(tx Tx) error {
		var err error
		code, err = tx.RegistrationCode(ctx, scope)
		if ErrorCode(err) != EResourceNotFound {
			return err
		}
		// AWS IoT (GetRegistrationCode): created by the call if it does not
		// exist or has been deleted. 64 hex digits, as the model's
		// RegistrationCode shape.
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		code = hex.EncodeToString(b[:])
		if err := tx.PutRegistrationCode(ctx, scope, code); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &Change{Kind: ChangeRegistrationCodeCreated, Scope: scope, Time: r.now()})
	})
	if err != nil {
		return "", fmt.Errorf("get registration code: %w", err)
	}
	return code, nil
}

// DeleteRegistrationCode deletes the registration code of scope; the next
// GetRegistrationCode creates a new one.
//
// Errors: ResourceNotFoundException when there is none.
func (r *Registry) DeleteRegistrationCode(ctx context.Context, scope Scope) error {
	err := r.update(ctx, "DeleteRegistrationCode", func(tx Tx) error {
		if err := tx.DeleteRegistrationCode(ctx, scope); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &Change{Kind: ChangeRegistrationCodeDeleted, Scope: scope, Time: r.now()})
	})
	if ErrorCode(err) == EResourceNotFound {
		return Errorf(EResourceNotFound, "There is no registration code in this account and region; GetRegistrationCode creates one.")
	}
	return err
}

// RegisterCACertificate registers a CA certificate. In DEFAULT mode the
// caller proves possession of the CA's key with a verification certificate
// signed by it whose subject common name is the account's registration
// code; SNI_ONLY mode needs no proof, and the same CA may then be
// registered in several accounts.
//
// Errors: InvalidRequestException, CertificateValidationException,
// RegistrationCodeValidationException, ResourceAlreadyExistsException,
// LimitExceededException.
func (r *Registry) RegisterCACertificate(ctx context.Context, scope Scope, in RegisterCAInput) (*CACertificate, error) {
	mode := in.Mode
	switch mode {
	case "":
		mode = ModeDefault
	case ModeDefault, ModeSNIOnly:
	default:
		return nil, Errorf(EInvalidRequest, "Unknown certificateMode %q; use DEFAULT or SNI_ONLY.", in.Mode)
	}
	if err := checkRegistrationConfig(in.RegistrationConfig); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	cert, err := ParseCertificatePEM("caCertificate", in.CACertificatePEM)
	if err != nil {
		return nil, err
	}
	now := r.now()
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, Errorf(ECertificateValidation, "The certificate is not a CA certificate: its basic constraints do not say CA:TRUE.")
	}
	if err := CheckValidity(cert, now); err != nil {
		return nil, err
	}
	if err := checkTemplate(in.RegistrationConfig); err != nil {
		return nil, err
	}
	var verification *x509.Certificate
	if mode == ModeDefault {
		if in.VerificationCertificatePEM == "" {
			// AWS IoT (RegisterCACertificate): verificationCertificate is
			// required in DEFAULT mode.
			return nil, Errorf(EInvalidRequest, "A verification certificate is required to register a CA in DEFAULT mode; register it in SNI_ONLY mode to skip proof of possession.")
		}
		if verification, err = ParseCertificatePEM("verificationCertificate", in.VerificationCertificatePEM); err != nil {
			return nil, err
		}
		if err := verification.CheckSignatureFrom(cert); err != nil {
			return nil, Errorf(ECertificateValidation, "The verification certificate is not signed by the CA certificate's private key.")
		}
		if err := CheckValidity(verification, now); err != nil {
			return nil, err
		}
	}

	ca := &CACertificate{
		Scope:                  scope,
		ID:                     CertificateID(cert.Raw),
		Status:                 CAStatusInactive,
		PEM:                    EncodeCertificatePEM(cert.Raw),
		Mode:                   mode,
		AutoRegistrationStatus: AutoRegistrationDisable,
		RegistrationConfig:     in.RegistrationConfig,
		Tags:                   in.Tags,
		Subject:                cert.RawSubject,
		OwnedBy:                scope.AccountID,
		CreationDate:           now,
		LastModifiedDate:       now,
		CustomerVersion:        1,
		GenerationID:           newGenerationID(),
		NotBefore:              cert.NotBefore.UTC(),
		NotAfter:               cert.NotAfter.UTC(),
	}
	if in.SetAsActive {
		ca.Status = CAStatusActive
	}
	if in.AllowAutoRegistration {
		ca.AutoRegistrationStatus = AutoRegistrationEnable
	}
	err = r.update(ctx, "RegisterCACertificate", func(tx Tx) error {
		if verification != nil {
			code, err := tx.RegistrationCode(ctx, scope)
			if ErrorCode(err) == EResourceNotFound {
				return Errorf(ERegistrationCodeValidation, "There is no registration code in this account and region; call GetRegistrationCode and put the code in the verification certificate's common name.")
			} else if err != nil {
				return err
			}
			if verification.Subject.CommonName != code {
				return Errorf(ERegistrationCodeValidation, "The verification certificate's common name is not this account's registration code.")
			}
			// AWS IoT: a CA in DEFAULT mode belongs to one account per region;
			// only SNI_ONLY lets several accounts register the same CA.
			others, err := tx.CACertificatesByID(ctx, scope.Region, ca.ID)
			if err != nil {
				return err
			}
			for _, o := range others {
				if o.AccountID != scope.AccountID && o.Mode == ModeDefault {
					return Errorf(EResourceAlreadyExists, "The CA certificate is already registered in DEFAULT mode by another account in this region; register it in SNI_ONLY mode.")
				}
			}
		}
		sameSubject, err := tx.ListCACertificates(ctx, CAQuery{Scope: scope, Subject: ca.Subject, Limit: MaxCAsPerSubject + 1})
		if err != nil {
			return err
		}
		for _, o := range sameSubject {
			if o.ID == ca.ID {
				return &Error{Code: EResourceAlreadyExists, Message: "The CA certificate is already registered in this account.", ResourceID: ca.ID, ResourceARN: ca.ARN()}
			}
		}
		if len(sameSubject) >= MaxCAsPerSubject {
			return Errorf(ELimitExceeded, "This account already has %d CA certificates with this subject, the most allowed.", MaxCAsPerSubject)
		}
		if err := tx.CreateCACertificate(ctx, ca); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &Change{Kind: ChangeCACertificateCreated, Scope: scope, CertificateID: ca.ID, NewStatus: Status(ca.Status), Time: now})
	})
	if err != nil {
		return nil, fmt.Errorf("register CA certificate: %w", err)
	}
	return ca, nil
}

// UpdateCAInput is the input of UpdateCACertificate; empty members leave
// the CA unchanged.
type UpdateCAInput struct {
	NewStatus                 string
	NewAutoRegistrationStatus string
	RemoveAutoRegistration    bool
	RegistrationConfig        *RegistrationConfig
}

// UpdateCACertificate changes a CA's status, auto-registration status or
// registration config. Deactivating a CA stops registration under it and
// auto-registration; certificates it issued keep working.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) UpdateCACertificate(ctx context.Context, scope Scope, id string, in UpdateCAInput) error {
	id, err := ParseCertificateID("caCertificateId", id)
	if err != nil {
		return err
	}
	switch CAStatus(in.NewStatus) {
	case "", CAStatusActive, CAStatusInactive:
	default:
		return Errorf(EInvalidRequest, "A CA certificate's status can only be ACTIVE or INACTIVE, not %q.", in.NewStatus)
	}
	auto := AutoRegistrationStatus(in.NewAutoRegistrationStatus)
	switch auto {
	case "", AutoRegistrationEnable, AutoRegistrationDisable:
	default:
		return Errorf(EInvalidRequest, "newAutoRegistrationStatus must be ENABLE or DISABLE, not %q.", in.NewAutoRegistrationStatus)
	}
	if in.RemoveAutoRegistration {
		if auto == AutoRegistrationEnable {
			return Errorf(EInvalidRequest, "removeAutoRegistration and newAutoRegistrationStatus ENABLE contradict each other.")
		}
		auto = AutoRegistrationDisable
	}
	if in.RegistrationConfig != nil {
		if err := checkRegistrationConfig(*in.RegistrationConfig); err != nil {
			return err
		}
		if err := checkTemplate(*in.RegistrationConfig); err != nil {
			return err
		}
	}
	err = r.update(ctx, "UpdateCACertificate", func(tx Tx) error {
		ca, err := tx.CACertificate(ctx, scope, id)
		if err != nil {
			return err
		}
		old := ca.Status
		changed := false
		if in.NewStatus != "" && CAStatus(in.NewStatus) != ca.Status {
			ca.Status, changed = CAStatus(in.NewStatus), true
		}
		if auto != "" && auto != ca.AutoRegistrationStatus {
			ca.AutoRegistrationStatus, changed = auto, true
		}
		if in.RegistrationConfig != nil && *in.RegistrationConfig != ca.RegistrationConfig {
			ca.RegistrationConfig, changed = *in.RegistrationConfig, true
		}
		if !changed {
			return nil
		}
		ca.LastModifiedDate = r.now()
		ca.CustomerVersion++
		ca.GenerationID = newGenerationID()
		if err := tx.UpdateCACertificate(ctx, ca); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &Change{Kind: ChangeCACertificateUpdated, Scope: scope, CertificateID: id,
			OldStatus: Status(old), NewStatus: Status(ca.Status), Time: ca.LastModifiedDate})
	})
	return caNotFound(err, id)
}

// DescribeCACertificate returns the CA certificate id of scope.
//
// Errors: InvalidRequestException, ResourceNotFoundException.
func (r *Registry) DescribeCACertificate(ctx context.Context, scope Scope, id string) (*CACertificate, error) {
	id, err := ParseCertificateID("caCertificateId", id)
	if err != nil {
		return nil, err
	}
	var ca *CACertificate
	err = r.Store.View(ctx, func(tx Tx) error {
		ca, err = tx.CACertificate(ctx, scope, id)
		return err
	})
	if err != nil {
		return nil, caNotFound(err, id)
	}
	return ca, nil
}

// DeleteCACertificate deletes a CA certificate that is INACTIVE.
// Certificates registered under it stay registered.
//
// Errors: InvalidRequestException, ResourceNotFoundException,
// CertificateStateException.
func (r *Registry) DeleteCACertificate(ctx context.Context, scope Scope, id string) error {
	id, err := ParseCertificateID("caCertificateId", id)
	if err != nil {
		return err
	}
	err = r.update(ctx, "DeleteCACertificate", func(tx Tx) error {
		ca, err := tx.CACertificate(ctx, scope, id)
		if err != nil {
			return err
		}
		if ca.Status != CAStatusInactive {
			// AWS IoT (DeleteCACertificate): deactivate the CA first.
			return Errorf(ECertificateState, "The CA certificate is ACTIVE; deactivate it before deleting it.")
		}
		if err := tx.DeleteCACertificate(ctx, scope, id); err != nil {
			return err
		}
		return tx.AppendChange(ctx, &Change{Kind: ChangeCACertificateDeleted, Scope: scope, CertificateID: id,
			OldStatus: Status(ca.Status), Time: r.now()})
	})
	return caNotFound(err, id)
}

// CAPage is one page of a CA certificate listing.
type CAPage struct {
	CACertificates []*CACertificate
	NextMarker     string
}

var templateNamePattern = regexp.MustCompile(`^[0-9A-Za-z_-]+$`)

// ListCACertificates returns a page of the CA certificates of scope,
// newest first unless opts.Ascending, optionally only those whose
// registration config names templateName.
//
// Errors: InvalidRequestException.
func (r *Registry) ListCACertificates(ctx context.Context, scope Scope, opts ListOptions, templateName string) (*CAPage, error) {
	if templateName != "" && (len(templateName) > 36 || !templateNamePattern.MatchString(templateName)) {
		return nil, Errorf(EInvalidRequest, "templateName must be 1 to 36 letters, digits, '_' or '-'.")
	}
	q := CAQuery{Scope: scope, TemplateName: templateName, Ascending: opts.Ascending}
	cas, next, err := listPage(ctx, r.Store, opts,
		func(tx Tx, after *Cursor, limit int) ([]*CACertificate, error) {
			q.After, q.Limit = after, limit
			return tx.ListCACertificates(ctx, q)
		},
		func(ca *CACertificate) Cursor { return Cursor{CreationDate: ca.CreationDate, Seq: ca.Seq} })
	if err != nil {
		return nil, fmt.Errorf("list CA certificates: %w", err)
	}
	return &CAPage{CACertificates: cas, NextMarker: next}, nil
}

func caNotFound(err error, id string) error {
	if ErrorCode(err) == EResourceNotFound {
		return Errorf(EResourceNotFound, "The CA certificate %s does not exist.", id)
	}
	return err
}

func checkRegistrationConfig(c RegistrationConfig) error {
	// Limits of the model's TemplateBody, RoleArn and TemplateName shapes.
	switch {
	case len([]rune(c.TemplateBody)) > MaxTemplateBodyLength:
		return Errorf(EInvalidRequest, "registrationConfig.templateBody is longer than %d characters.", MaxTemplateBodyLength)
	case c.RoleARN != "" && (len(c.RoleARN) < 20 || len(c.RoleARN) > 2048):
		return Errorf(EInvalidRequest, "registrationConfig.roleArn must be 20 to 2048 characters.")
	case c.TemplateName != "" && (len(c.TemplateName) > 36 || !templateNamePattern.MatchString(c.TemplateName)):
		return Errorf(EInvalidRequest, "registrationConfig.templateName must be 1 to 36 letters, digits, '_' or '-'.")
	}
	return nil
}

// checkTemplate checks a registration config's template body when it is
// given, so that a CA never holds a template that cannot run; what depends
// on a device's certificate is checked when it connects
// (https://docs.aws.amazon.com/iot/latest/developerguide/jit-provisioning.html).
// InvalidRequestException is the only client error UpdateCACertificate has
// in the AWS model, and RegisterCACertificate's for a malformed request.
func checkTemplate(c RegistrationConfig) error {
	if c.TemplateBody == "" {
		return nil
	}
	_, err := ParseProvisioningTemplate(c.TemplateBody)
	return err
}

func checkTags(tags []Tag) error {
	seen := map[string]bool{}
	for _, t := range tags {
		// Limits of the model's TagKey and TagValue shapes.
		if len(t.Key) < 1 || len(t.Key) > 128 || len(t.Value) > 256 {
			return Errorf(EInvalidRequest, "Tag keys must be 1 to 128 characters and values at most 256.")
		}
		if seen[t.Key] {
			return Errorf(EInvalidRequest, "The tag key %q is given twice.", t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

// findIssuer returns the CA of scope that signed cert: the one given as
// caPEM, or else the registered CA whose subject is cert's issuer and whose
// key verifies cert's signature.
//
// Errors: CertificateValidationException when no registered CA signed it;
// CertificateConflictException when several did and caPEM does not say
// which.
//
// memo, when not nil, keeps each CA's signature check, so that finding the
// issuer again (in a registration's transaction, after a View found it)
// verifies only what it did not verify before.
func findIssuer(ctx context.Context, tx Tx, scope Scope, cert *x509.Certificate, caPEM string, memo *issuerMemo) (*CACertificate, error) {
	if caPEM != "" {
		caCert, err := memo.parse(caPEM)
		if err != nil {
			return nil, err
		}
		ca, err := tx.CACertificate(ctx, scope, CertificateID(caCert.Raw))
		if ErrorCode(err) == EResourceNotFound {
			// aws-behaviour-notes.md: a CA not registered in this account and
			// region → CertificateValidationException (unverified on AWS).
			return nil, Errorf(ECertificateValidation, "The CA certificate is not registered in this account and region; register it with RegisterCACertificate first.")
		} else if err != nil {
			return nil, err
		}
		if !memo.signed(cert, ca.ID, caCert) {
			return nil, Errorf(ECertificateValidation, "The certificate is not signed by the given CA certificate.")
		}
		return ca, nil
	}
	candidates, err := tx.ListCACertificates(ctx, CAQuery{Scope: scope, Subject: cert.RawIssuer, Limit: MaxCAsPerSubject + 1})
	if err != nil {
		return nil, err
	}
	var found []*CACertificate
	for _, ca := range candidates {
		if ok, kept := memo.kept(ca.ID); kept {
			if ok {
				found = append(found, ca)
			}
			continue
		}
		caCert, err := ParseCertificatePEM("caCertificate", ca.PEM)
		if err != nil {
			return nil, fmt.Errorf("stored CA %s: %w", ca.ID, err)
		}
		if bytes.Equal(caCert.RawSubject, cert.RawIssuer) && memo.signed(cert, ca.ID, caCert) {
			found = append(found, ca)
		}
	}
	switch len(found) {
	case 0:
		return nil, Errorf(ECertificateValidation, "The certificate is not signed by a CA registered in this account and region; register the CA first, or use RegisterCertificateWithoutCA.")
	case 1:
		return found[0], nil
	}
	// AWS IoT (RegisterCertificate): with several CAs of the same subject,
	// the caller must say which CA signed the certificate.
	return nil, Errorf(ECertificateConflict, "Several registered CA certificates with this subject verify the certificate; pass caCertificatePem to choose one.")
}

// issuerMemo keeps, by CA id, whether a certificate's signature verified
// against that CA (findIssuer). A CA's id is the hash of its certificate,
// so the answer holds for as long as the id names a CA. The nil memo keeps
// nothing.
type issuerMemo struct {
	checked map[string]bool
	given   *x509.Certificate // caPEM, parsed
}

// parse parses caPEM, the CA certificate the caller gave, once.
func (m *issuerMemo) parse(caPEM string) (*x509.Certificate, error) {
	if m != nil && m.given != nil {
		return m.given, nil
	}
	caCert, err := ParseCertificatePEM("caCertificatePem", caPEM)
	if m != nil && err == nil {
		m.given = caCert
	}
	return caCert, err
}

// kept returns CA id's check, when it is kept.
func (m *issuerMemo) kept(id string) (ok, kept bool) {
	if m == nil {
		return false, false
	}
	ok, kept = m.checked[id]
	return ok, kept
}

// signed reports whether cert's signature verifies against CA id, whose
// certificate is caCert, and keeps the answer.
func (m *issuerMemo) signed(cert *x509.Certificate, id string, caCert *x509.Certificate) bool {
	if ok, kept := m.kept(id); kept {
		return ok
	}
	ok := cert.CheckSignatureFrom(caCert) == nil
	if m != nil {
		if m.checked == nil {
			m.checked = map[string]bool{}
		}
		m.checked[id] = ok
	}
	return ok
}
