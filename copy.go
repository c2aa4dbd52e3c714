package fleetcert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"sort"
	"time"
)

// Record is one stored record, as an Exporter yields it: exactly one field
// is set. The change feed and the audit log are not records (a copy starts
// its own of each), nor is expiring state (console sign-ins: operators sign in again).
type Record struct {
	Certificate      *Certificate      `json:",omitempty"`
	CACertificate    *CACertificate    `json:",omitempty"`
	RegistrationCode *RegistrationCode `json:",omitempty"`
	Transfer         *Transfer         `json:",omitempty"`
	AccessKey        *AccessKey        `json:",omitempty"`
	Setting          *Setting          `json:",omitempty"`
	Object           *Object           `json:",omitempty"`
	Link             *Link             `json:",omitempty"`
}

// RegistrationCode is the CA registration code of one scope.
type RegistrationCode struct {
	Scope
	Code string
}

// Setting is one node-wide setting (Tx.Setting).
type Setting struct {
	Name  string
	Value []byte
}

// Exporter is implemented by a store that can list every record it holds
// (fleetcert migrate copies one store into another with it).
type Exporter interface {
	// Export calls fn with every record of one consistent snapshot of the
	// store: certificates and CA certificates in Seq order, so that a copy
	// made in that order keeps list order. An error from fn stops it and
	// is returned.
	Export(ctx context.Context, fn func(Record) error) error
}

// kind names the record's kind, as CopyStats counts it.
func (r Record) kind() string {
	switch {
	case r.Certificate != nil:
		return "certificates"
	case r.CACertificate != nil:
		return "caCertificates"
	case r.RegistrationCode != nil:
		return "registrationCodes"
	case r.Transfer != nil:
		return "transfers"
	case r.AccessKey != nil:
		return "accessKeys"
	case r.Setting != nil:
		return "settings"
	case r.Object != nil:
		return "objects"
	case r.Link != nil:
		return "links"
	}
	return ""
}

// key identifies the record in its store.
func (r Record) key() string {
	switch {
	case r.Certificate != nil:
		c := r.Certificate
		return "cert/" + c.AccountID + "/" + c.Region + "/" + c.ID
	case r.CACertificate != nil:
		c := r.CACertificate
		return "cacert/" + c.AccountID + "/" + c.Region + "/" + c.ID
	case r.RegistrationCode != nil:
		return "code/" + r.RegistrationCode.AccountID + "/" + r.RegistrationCode.Region
	case r.Transfer != nil:
		t := r.Transfer
		return fmt.Sprintf("transfer/%s/%s/%s/%d", t.Region, t.CertificateID, t.SourceAccountID, t.TransferDate.UnixNano())
	case r.AccessKey != nil:
		return "key/" + r.AccessKey.ID
	case r.Setting != nil:
		return "setting/" + r.Setting.Name
	case r.Object != nil:
		// Quoted: names may hold the separator (an ARN holds "/").
		o := r.Object
		return fmt.Sprintf("object/%s/%s/%s/%q", o.AccountID, o.Region, o.Kind, o.Name)
	case r.Link != nil:
		l := r.Link
		return fmt.Sprintf("link/%s/%s/%s/%q/%q", l.AccountID, l.Region, l.Kind, l.From, l.To)
	}
	return ""
}

// digest is the record's content without what a store assigns (Seq), its
// times to the millisecond: the precision every store keeps (an older
// SQLite store may hold an access key's creation time to the nanosecond).
func (r Record) digest() ([]byte, error) {
	ms := func(t *time.Time) { *t = t.Truncate(time.Millisecond) }
	if r.Certificate != nil {
		c := *r.Certificate
		c.Seq = 0
		ms(&c.CreationDate)
		ms(&c.LastModifiedDate)
		if c.Transfer != nil {
			tr := *c.Transfer
			ms(&tr.TransferDate)
			ms(&tr.AcceptDate)
			ms(&tr.RejectDate)
			c.Transfer = &tr
		}
		r.Certificate = &c
	}
	if r.CACertificate != nil {
		c := *r.CACertificate
		c.Seq = 0
		ms(&c.CreationDate)
		ms(&c.LastModifiedDate)
		r.CACertificate = &c
	}
	if r.AccessKey != nil {
		k := *r.AccessKey
		ms(&k.CreatedAt)
		r.AccessKey = &k
	}
	if r.Transfer != nil {
		t := *r.Transfer
		ms(&t.TransferDate)
		ms(&t.AcceptDate)
		ms(&t.RejectDate)
		ms(&t.CancelDate)
		r.Transfer = &t
	}
	if r.Object != nil {
		o := *r.Object
		ms(&o.CreationDate)
		ms(&o.LastModifiedDate)
		r.Object = &o
	}
	if r.Link != nil {
		l := *r.Link
		ms(&l.CreationDate)
		r.Link = &l
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// CopyStats is what CopyStore copied.
type CopyStats struct {
	Counts   map[string]int // records by kind: certificates, caCertificates, …
	Skipped  int            // records the target already held (CopyOptions.Merge)
	Checksum string         // SHA-256 over the copied records' contents, as read back from the target
}

// CopyOptions change what CopyStore does.
type CopyOptions struct {
	// Merge copies into a target that already holds records, leaving
	// those it holds as they are; without it, such a target is refused.
	Merge bool
	// Batch is how many records one target transaction writes (500 when 0).
	Batch int
}

// CopyStore copies every record of src into dst, then reads dst back and
// checks that it holds each copied record unchanged: the returned checksum
// is computed over the source's records and verified against the
// target's. A target that holds records is refused unless opt.Merge.
func CopyStore(ctx context.Context, src Exporter, dst Store, opt CopyOptions) (*CopyStats, error) {
	dstExp, ok := dst.(Exporter)
	if !ok {
		return nil, fmt.Errorf("the target store (%T) cannot list its records to verify a copy", dst)
	}
	if !opt.Merge {
		if n, err := countRecords(ctx, dstExp, 1); err != nil {
			return nil, fmt.Errorf("read target: %w", err)
		} else if n > 0 {
			return nil, fmt.Errorf("the target store already holds records; copy into an empty one, or merge into it on purpose")
		}
	}
	if opt.Batch <= 0 {
		opt.Batch = 500
	}
	stats := &CopyStats{Counts: map[string]int{}}
	want := map[string][]byte{} // key → digest
	var batch []Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		skipped := 0
		err := dst.Update(ctx, func(tx Tx) error {
			skipped = 0
			for _, r := range batch {
				if opt.Merge {
					// Asked before writing: on PostgreSQL a refused insert
					// would end the transaction.
					if held, err := holds(ctx, tx, r); err != nil {
						return err
					} else if held {
						skipped++
						continue
					}
				}
				if err := putRecord(ctx, tx, r); err != nil {
					return fmt.Errorf("copy %s: %w", r.key(), err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		stats.Skipped += skipped
		batch = batch[:0]
		return nil
	}
	err := src.Export(ctx, func(r Record) error {
		d, err := r.digest()
		if err != nil {
			return err
		}
		k := r.key()
		if _, dup := want[k]; dup {
			return fmt.Errorf("source holds %s twice", k)
		}
		want[k] = d
		stats.Counts[r.kind()]++
		batch = append(batch, r)
		if len(batch) >= opt.Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return stats, err
	}
	// Read the target back: every copied record, unchanged.
	got := map[string][]byte{}
	err = dstExp.Export(ctx, func(r Record) error {
		k := r.key()
		if _, ok := want[k]; !ok {
			return nil // the target's own (Merge)
		}
		d, err := r.digest()
		got[k] = d
		return err
	})
	if err != nil {
		return stats, fmt.Errorf("read target back: %w", err)
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	srcSum, dstSum := sha256.New(), sha256.New()
	var mismatch []string
	for _, k := range keys {
		addDigest(srcSum, k, want[k])
		addDigest(dstSum, k, got[k])
		if string(want[k]) != string(got[k]) && len(mismatch) < 5 {
			mismatch = append(mismatch, k)
		}
	}
	stats.Checksum = hex.EncodeToString(srcSum.Sum(nil))
	if len(mismatch) > 0 && !opt.Merge {
		return stats, fmt.Errorf("the target differs from the source after the copy, e.g. %v", mismatch)
	}
	if len(mismatch) > 0 {
		// Merged records the target already held may differ; the rest not.
		return stats, fmt.Errorf("%d records in the target differ from the source (the target held them before), e.g. %v", len(mismatch), mismatch)
	}
	if dst := hex.EncodeToString(dstSum.Sum(nil)); dst != stats.Checksum {
		return stats, fmt.Errorf("checksum of the target %s differs from the source's %s", dst, stats.Checksum)
	}
	return stats, nil
}

func addDigest(h hash.Hash, key string, d []byte) {
	fmt.Fprintf(h, "%s\x00", key)
	h.Write(d)
}

// putRecord stores r through tx's own methods, so any Store can be a
// target.
func putRecord(ctx context.Context, tx Tx, r Record) error {
	switch {
	case r.Certificate != nil:
		c := *r.Certificate
		return tx.CreateCertificate(ctx, &c)
	case r.CACertificate != nil:
		c := *r.CACertificate
		return tx.CreateCACertificate(ctx, &c)
	case r.RegistrationCode != nil:
		return tx.PutRegistrationCode(ctx, r.RegistrationCode.Scope, r.RegistrationCode.Code)
	case r.Transfer != nil:
		t := *r.Transfer
		return tx.PutTransfer(ctx, &t)
	case r.AccessKey != nil:
		k := *r.AccessKey
		return tx.CreateAccessKey(ctx, &k)
	case r.Setting != nil:
		return tx.CreateSetting(ctx, r.Setting.Name, r.Setting.Value)
	case r.Object != nil:
		// CreateObject keeps a Version above 0: the copy's version is the
		// source's, so a caller's expected version still holds.
		o := *r.Object
		return tx.CreateObject(ctx, &o)
	case r.Link != nil:
		l := *r.Link
		return tx.CreateLink(ctx, &l)
	}
	return fmt.Errorf("empty record")
}

// holds reports whether tx already holds a record with r's key. A
// transfer is stored by upsert, so it is never reported held.
func holds(ctx context.Context, tx Tx, r Record) (bool, error) {
	var err error
	switch {
	case r.Certificate != nil:
		_, err = tx.Certificate(ctx, r.Certificate.Scope, r.Certificate.ID)
	case r.CACertificate != nil:
		_, err = tx.CACertificate(ctx, r.CACertificate.Scope, r.CACertificate.ID)
	case r.RegistrationCode != nil:
		_, err = tx.RegistrationCode(ctx, r.RegistrationCode.Scope)
	case r.AccessKey != nil:
		_, err = tx.AccessKey(ctx, r.AccessKey.ID)
	case r.Setting != nil:
		_, err = tx.Setting(ctx, r.Setting.Name)
	case r.Object != nil:
		o := r.Object
		_, err = tx.Object(ctx, o.Scope, o.Kind, o.Name)
	case r.Link != nil:
		l := r.Link
		_, err = tx.Link(ctx, l.Scope, l.Kind, l.From, l.To)
	default:
		return false, nil
	}
	switch ErrorCode(err) {
	case "":
		return true, nil
	case EResourceNotFound:
		return false, nil
	}
	return false, err
}

// countRecords counts s's records, stopping at max.
func countRecords(ctx context.Context, s Exporter, max int) (int, error) {
	n := 0
	errEnough := fmt.Errorf("enough")
	err := s.Export(ctx, func(Record) error {
		n++
		if n >= max {
			return errEnough
		}
		return nil
	})
	if err == errEnough {
		err = nil
	}
	return n, err
}
