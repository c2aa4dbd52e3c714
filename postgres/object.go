package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
)

// objectColumns are the columns of an object, in the order of the
// parameters of insertObjectSQL and of scanObject.
const objectColumns = `account_id, region, kind, name, label, body, version, creation_date, last_modified_date`

// linkColumns are the columns of a link, in the order of the parameters of
// insertLinkSQL and of scanLink.
const linkColumns = `account_id, region, kind, "from", "to", body, creation_date`

const (
	selectObjectSQL = `SELECT ` + objectColumns + ` FROM objects
		WHERE account_id = $1 AND region = $2 AND kind = $3 AND name = $4`
	// ON CONFLICT DO NOTHING: a name taken is an answer (no row inserted),
	// not an error that would end the transaction.
	insertObjectSQL = `INSERT INTO objects (` + objectColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`
	// The version test makes the update optimistic. Under READ COMMITTED
	// an update that waited for another one re-tests it on the row that
	// one committed, so of two writers that read one version, one wins.
	updateObjectSQL = `UPDATE objects SET label = $5, body = $6, last_modified_date = $7, version = version + 1
		WHERE account_id = $1 AND region = $2 AND kind = $3 AND name = $4 AND version = $8`
	selectObjectVersionSQL = `SELECT version FROM objects
		WHERE account_id = $1 AND region = $2 AND kind = $3 AND name = $4`
	deleteObjectSQL = `DELETE FROM objects
		WHERE account_id = $1 AND region = $2 AND kind = $3 AND name = $4`

	selectLinkSQL = `SELECT ` + linkColumns + ` FROM links
		WHERE account_id = $1 AND region = $2 AND kind = $3 AND "from" = $4 AND "to" = $5`
	insertLinkSQL = `INSERT INTO links (` + linkColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT DO NOTHING`
	deleteLinkSQL = `DELETE FROM links
		WHERE account_id = $1 AND region = $2 AND kind = $3 AND "from" = $4 AND "to" = $5`
)

// objectKey is the lock of one object: a lookup that found none, an insert.
func objectKey(scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) int32 {
	return lockKey("object", scope.AccountID, scope.Region, string(kind), name)
}

// objectLabelKey is the lock of the objects of a kind with one label:
// ListObjects by label, an insert or update that gives an object the label.
func objectLabelKey(scope fleetcert.Scope, kind fleetcert.ObjectKind, label string) int32 {
	return lockKey("object-label", scope.AccountID, scope.Region, string(kind), label)
}

// objectKeys returns keys and, when o has a label, the lock of its label's
// set: a listing by that label in an Update sees no object join it until
// commit. No listing is by the empty label, so the many objects without
// one do not queue on its lock.
func objectKeys(o *fleetcert.Object, keys ...int32) []int32 {
	if o.Label != "" {
		keys = append(keys, objectLabelKey(o.Scope, o.Kind, o.Label))
	}
	return sortedKeys(keys...)
}

// linkKey is the lock of one link: a lookup that found none, an insert.
func linkKey(scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) int32 {
	return lockKey("link", scope.AccountID, scope.Region, string(kind), from, to)
}

// linkFromKey and linkToKey are the locks of the links of a kind from, or
// to, one record: ListLinks by From or by To, an insert.
func linkFromKey(scope fleetcert.Scope, kind fleetcert.LinkKind, from string) int32 {
	return lockKey("link-from", scope.AccountID, scope.Region, string(kind), from)
}

func linkToKey(scope fleetcert.Scope, kind fleetcert.LinkKind, to string) int32 {
	return lockKey("link-to", scope.AccountID, scope.Region, string(kind), to)
}

// sortedKeys returns keys in ascending order without repeats, so that
// transactions taking several take them in one order.
func sortedKeys(keys ...int32) []int32 {
	slices.Sort(keys)
	return slices.Compact(keys)
}

// objectName names an object in errors, as "thing sensor-7".
func objectName(kind fleetcert.ObjectKind, name string) string {
	return string(kind) + " " + name
}

// linkName names a link in errors, as "thing-principal link sensor-7 to arn:…".
func linkName(kind fleetcert.LinkKind, from, to string) string {
	return fmt.Sprintf("%s link %s to %s", kind, from, to)
}

// body returns b as a bytea column value: never NULL.
func body(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanObject reads a row of objectColumns.
func scanObject(row pgx.Row) (*fleetcert.Object, error) {
	var (
		o        fleetcert.Object
		kind     string
		created  time.Time
		modified *time.Time
	)
	if err := row.Scan(&o.AccountID, &o.Region, &kind, &o.Name, &o.Label, &o.Body, &o.Version, &created, &modified); err != nil {
		return nil, err
	}
	o.Kind = fleetcert.ObjectKind(kind)
	if len(o.Body) == 0 {
		o.Body = nil
	}
	o.CreationDate = created.UTC()
	o.LastModifiedDate = fromTime(modified)
	return &o, nil
}

// scanLink reads a row of linkColumns.
func scanLink(row pgx.Row) (*fleetcert.Link, error) {
	var (
		l       fleetcert.Link
		kind    string
		created time.Time
	)
	if err := row.Scan(&l.AccountID, &l.Region, &kind, &l.From, &l.To, &l.Body, &created); err != nil {
		return nil, err
	}
	l.Kind = fleetcert.LinkKind(kind)
	if len(l.Body) == 0 {
		l.Body = nil
	}
	l.CreationDate = created.UTC()
	return &l, nil
}

// Object returns the object (scope, kind, name). In an Update it stays as
// read (or absent) until commit.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Object(ctx context.Context, scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) (*fleetcert.Object, error) {
	var o *fleetcert.Object
	err := tx.readRecord(ctx, objectKey(scope, kind, name), func(row pgx.Row) (err error) {
		o, err = scanObject(row)
		return err
	}, selectObjectSQL, scope.AccountID, scope.Region, string(kind), name)
	if err != nil {
		return nil, storeError(ctx, err, objectName(kind, name))
	}
	return o, nil
}

// CreateObject stores o with o.Version when it is above 0, else 1, and
// sets o.Version.
//
// Errors: ResourceAlreadyExistsException when (o.Scope, o.Kind, o.Name)
// is taken.
func (tx *Tx) CreateObject(ctx context.Context, o *fleetcert.Object) error {
	what := objectName(o.Kind, o.Name)
	if err := tx.checkWritable("create " + what); err != nil {
		return err
	}
	version := max(o.Version, 1)
	keys := objectKeys(o, objectKey(o.Scope, o.Kind, o.Name))
	n, err := tx.lockedExecCount(ctx, keys, insertObjectSQL, o.AccountID, o.Region, string(o.Kind), o.Name, o.Label,
		body(o.Body), version, o.CreationDate.UTC(), timeArg(o.LastModifiedDate))
	if err != nil {
		return storeError(ctx, err, what)
	} else if n == 0 {
		return fleetcert.Errorf(fleetcert.EResourceAlreadyExists, "The %s already exists.", what)
	}
	o.Version = version
	return nil
}

// UpdateObject replaces the Label, Body and LastModifiedDate of the object
// (o.Scope, o.Kind, o.Name) if its stored version is o.Version, and adds 1
// to both.
//
// Errors: ResourceNotFoundException; VersionConflictException.
func (tx *Tx) UpdateObject(ctx context.Context, o *fleetcert.Object) error {
	what := objectName(o.Kind, o.Name)
	if err := tx.checkWritable("update " + what); err != nil {
		return err
	}
	keys := objectKeys(o)
	n, err := tx.lockedExecCount(ctx, keys, updateObjectSQL, o.AccountID, o.Region, string(o.Kind), o.Name,
		o.Label, body(o.Body), timeArg(o.LastModifiedDate), o.Version)
	if err != nil {
		return storeError(ctx, err, what)
	} else if n == 1 {
		o.Version++
		return nil
	}
	// Not updated: the object is gone, or at another version (the row the
	// update waited for, if any, has committed, and this read sees it).
	var stored int64
	err = tx.q.QueryRow(ctx, selectObjectVersionSQL, o.AccountID, o.Region, string(o.Kind), o.Name).Scan(&stored)
	if err != nil {
		return storeError(ctx, err, what)
	}
	return fleetcert.Errorf(fleetcert.EVersionConflict,
		"The %s is at version %d, not %d: it was updated in the meantime. Read it again and retry.", what, stored, o.Version)
}

// DeleteObject removes the object (scope, kind, name).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteObject(ctx context.Context, scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) error {
	what := objectName(kind, name)
	if err := tx.checkWritable("delete " + what); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, deleteObjectSQL, scope.AccountID, scope.Region, string(kind), name)
	return rowsAffected(ctx, tag.RowsAffected(), err, what)
}

// ListObjects returns up to q.Limit objects of q.Scope and q.Kind matching
// q's filters, in byte-wise Name order, strictly after q.After when set.
// In an Update, a listing by label also keeps objects from taking that
// label until commit.
func (tx *Tx) ListObjects(ctx context.Context, q fleetcert.ObjectQuery) ([]*fleetcert.Object, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	where := []string{"account_id = $1", "region = $2", "kind = $3"}
	args := []any{q.AccountID, q.Region, string(q.Kind)}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	var keys []int32
	if q.Label != "" {
		add("label = $%d", q.Label)
		keys = append(keys, objectLabelKey(q.Scope, q.Kind, q.Label))
	}
	if q.After != "" {
		add("name > $%d", q.After)
	}
	if p := q.NamePrefix; p != "" {
		if !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
			return nil, nil // no name stored is anything but UTF-8 without NUL
		}
		// A range on the key (the columns are COLLATE "C", so it compares
		// bytes): parameters both, so that a generic plan keeps the range.
		add("name >= $%d", p)
		if end, ok := prefixEnd(p); ok {
			add("name < $%d", end)
		}
	}
	args = append(args, q.Limit)
	query := fmt.Sprintf(`SELECT %s FROM objects WHERE %s ORDER BY name LIMIT $%d`,
		objectColumns, strings.Join(where, " AND "), len(args))
	var objects []*fleetcert.Object
	err := tx.readSet(ctx, keys, func(rows pgx.Rows) error {
		o, err := scanObject(rows)
		if err == nil {
			objects = append(objects, o)
		}
		return err
	}, query, args...)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("list %s objects: %w", q.Kind, err), "")
	}
	return objects, nil
}

// prefixEnd returns the smallest valid UTF-8 string above every string
// that starts with p, p valid UTF-8: p with its last rune incremented
// (dropping trailing runes that cannot be). UTF-8's byte order is its code
// points' order, so the strings with prefix p are those in [p, end). ok is
// false when no string is above them all.
func prefixEnd(p string) (end string, ok bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		switch {
		case r == utf8.MaxRune:
			continue
		case r == 0xD7FF: // the surrogates are not runes
			r = 0xE000
		default:
			r++
		}
		return p + string(r), true
	}
	return "", false
}

// Link returns the link (scope, kind, from, to). In an Update it stays as
// read (or absent) until commit.
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Link(ctx context.Context, scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) (*fleetcert.Link, error) {
	var l *fleetcert.Link
	err := tx.readRecord(ctx, linkKey(scope, kind, from, to), func(row pgx.Row) (err error) {
		l, err = scanLink(row)
		return err
	}, selectLinkSQL, scope.AccountID, scope.Region, string(kind), from, to)
	if err != nil {
		return nil, storeError(ctx, err, linkName(kind, from, to))
	}
	return l, nil
}

// CreateLink stores l.
//
// Errors: ResourceAlreadyExistsException when (l.Scope, l.Kind, l.From,
// l.To) is taken.
func (tx *Tx) CreateLink(ctx context.Context, l *fleetcert.Link) error {
	what := linkName(l.Kind, l.From, l.To)
	if err := tx.checkWritable("create " + what); err != nil {
		return err
	}
	keys := sortedKeys(linkKey(l.Scope, l.Kind, l.From, l.To), linkFromKey(l.Scope, l.Kind, l.From), linkToKey(l.Scope, l.Kind, l.To))
	n, err := tx.lockedExecCount(ctx, keys, insertLinkSQL, l.AccountID, l.Region, string(l.Kind), l.From, l.To,
		body(l.Body), l.CreationDate.UTC())
	if err != nil {
		return storeError(ctx, err, what)
	} else if n == 0 {
		return fleetcert.Errorf(fleetcert.EResourceAlreadyExists, "The %s already exists.", what)
	}
	return nil
}

// DeleteLink removes the link (scope, kind, from, to).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteLink(ctx context.Context, scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) error {
	what := linkName(kind, from, to)
	if err := tx.checkWritable("delete " + what); err != nil {
		return err
	}
	tag, err := tx.q.Exec(ctx, deleteLinkSQL, scope.AccountID, scope.Region, string(kind), from, to)
	return rowsAffected(ctx, tag.RowsAffected(), err, what)
}

// ListLinks returns up to q.Limit links of q.Scope and q.Kind, from q.From,
// to q.To, both or neither; see fleetcert.Tx.ListLinks for the order. In an
// Update, a listing from (or to) one record also keeps links from (or to)
// it from being added until commit.
func (tx *Tx) ListLinks(ctx context.Context, q fleetcert.LinkQuery) ([]*fleetcert.Link, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	if q.From != "" && q.To != "" {
		l, err := tx.Link(ctx, q.Scope, q.Kind, q.From, q.To)
		if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return []*fleetcert.Link{l}, nil
	}
	where := `true ORDER BY "from", "to"`
	args := []any{q.AccountID, q.Region, string(q.Kind), q.Limit}
	var keys []int32
	switch {
	case q.From != "":
		where, args = `"from" = $5`, append(args, q.From)
		if q.After != "" {
			where, args = where+` AND "to" > $6`, append(args, q.After)
		}
		where += ` ORDER BY "to"`
		keys = append(keys, linkFromKey(q.Scope, q.Kind, q.From))
	case q.To != "":
		where, args = `"to" = $5`, append(args, q.To)
		if q.After != "" {
			where, args = where+` AND "from" > $6`, append(args, q.After)
		}
		where += ` ORDER BY "from"`
		keys = append(keys, linkToKey(q.Scope, q.Kind, q.To))
	}
	query := `SELECT ` + linkColumns + ` FROM links WHERE account_id = $1 AND region = $2 AND kind = $3 AND ` +
		where + ` LIMIT $4`
	var links []*fleetcert.Link
	err := tx.readSet(ctx, keys, func(rows pgx.Rows) error {
		l, err := scanLink(rows)
		if err == nil {
			links = append(links, l)
		}
		return err
	}, query, args...)
	if err != nil {
		return nil, storeError(ctx, fmt.Errorf("list %s links: %w", q.Kind, err), "")
	}
	return links, nil
}

// lockedExecCount runs a write after taking the exclusive locks on keys
// and returns how many rows it wrote.
func (tx *Tx) lockedExecCount(ctx context.Context, keys []int32, query string, args ...any) (int64, error) {
	br, err := tx.locked(ctx, exclusive, keys, query, args...)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), err
}
