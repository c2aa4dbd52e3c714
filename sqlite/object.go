package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// objectColumns are the columns of an object, in the order of the
// parameters of insertObjectSQL and of scanObject.
const objectColumns = `account_id, region, kind, name, label, body, version, creation_date, last_modified_date`

// linkColumns are the columns of a link, in the order of the parameters of
// insertLinkSQL and of scanLink.
const linkColumns = `account_id, region, kind, "from", "to", body, creation_date`

const (
	selectObjectSQL = `SELECT ` + objectColumns + ` FROM objects
		WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND name = ?4`
	insertObjectSQL = `INSERT INTO objects (` + objectColumns + `)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`
	// The version test makes the update optimistic: a writer that read an
	// older version changes nothing (and UpdateObject tells why).
	updateObjectSQL = `UPDATE objects SET label = ?5, body = ?6, last_modified_date = ?7, version = version + 1
		WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND name = ?4 AND version = ?8`
	selectObjectVersionSQL = `SELECT version FROM objects
		WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND name = ?4`
	deleteObjectSQL = `DELETE FROM objects
		WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND name = ?4`

	selectLinkSQL = `SELECT ` + linkColumns + ` FROM links
		WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND "from" = ?4 AND "to" = ?5`
	insertLinkSQL = `INSERT INTO links (` + linkColumns + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`
	deleteLinkSQL = `DELETE FROM links
		WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND "from" = ?4 AND "to" = ?5`
)

// Filters of ListObjects, a bit each: the index of the statement that
// applies them in statements.listObjects.
const (
	objectByLabel   = 1 << iota // label = ?4
	objectAfter                 // name > ?5
	objectPrefixEnd             // name < ?7 (name >= ?6, the prefix, is always there)

	objectFilters = 1 << iota // how many combinations
)

// listObjectsSQL returns the query of ListObjects for one combination of
// filters. Its parameters: ?1 account, ?2 region, ?3 kind, ?4 label, ?5
// the name to resume after, ?6 the name prefix (empty when unset: every name
// is at or above it), ?7 the prefix's end, ?8 limit. A page is a range on
// the primary key, or on objects_by_label, in name order.
func listObjectsSQL(filters int) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + objectColumns + ` FROM objects`)
	if filters&objectByLabel != 0 {
		b.WriteString(` INDEXED BY objects_by_label`)
	}
	b.WriteString(` WHERE account_id = ?1 AND region = ?2 AND kind = ?3`)
	if filters&objectByLabel != 0 {
		b.WriteString(` AND label = ?4`)
	}
	if filters&objectAfter != 0 {
		b.WriteString(` AND name > ?5`)
	}
	b.WriteString(` AND name >= ?6`)
	if filters&objectPrefixEnd != 0 {
		b.WriteString(` AND name < ?7`)
	}
	b.WriteString(` ORDER BY name LIMIT ?8`)
	return b.String()
}

// Listings of ListLinks: the index of the statement in statements.listLinks.
const (
	linksFrom      = iota // "from" = ?4, in "to" order
	linksFromAfter        // and "to" > ?6
	linksTo               // "to" = ?5, in "from" order
	linksToAfter          // and "from" > ?6
	linksAll              // every link of the kind, in ("from", "to") order

	linkListings // how many
)

// listLinksSQL returns the query of one listing of ListLinks. Its
// parameters: ?1 account, ?2 region, ?3 kind, ?4 from, ?5 to, ?6 the key to
// resume after, ?7 limit.
func listLinksSQL(listing int) string {
	where := map[int]string{
		linksFrom:      `"from" = ?4 ORDER BY "to"`,
		linksFromAfter: `"from" = ?4 AND "to" > ?6 ORDER BY "to"`,
		linksTo:        `"to" = ?5 ORDER BY "from"`,
		linksToAfter:   `"to" = ?5 AND "from" > ?6 ORDER BY "from"`,
		linksAll:       `true ORDER BY "from", "to"`,
	}[listing]
	index := ``
	if listing == linksTo || listing == linksToAfter {
		index = ` INDEXED BY links_by_to`
	}
	return `SELECT ` + linkColumns + ` FROM links` + index +
		` WHERE account_id = ?1 AND region = ?2 AND kind = ?3 AND ` + where + ` LIMIT ?7`
}

// objectName names an object in errors, as "thing sensor-7".
func objectName(kind fleetcert.ObjectKind, name string) string {
	return string(kind) + " " + name
}

// linkName names a link in errors, as "thing-principal link sensor-7 to arn:…".
func linkName(kind fleetcert.LinkKind, from, to string) string {
	return fmt.Sprintf("%s link %s to %s", kind, from, to)
}

// body returns b as a BLOB column value: never NULL.
func body(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanObject reads a row of objectColumns.
func scanObject(s scanner) (*fleetcert.Object, error) {
	var (
		o                 fleetcert.Object
		kind              string
		created, modified sql.NullInt64
	)
	if err := s.Scan(&o.AccountID, &o.Region, &kind, &o.Name, &o.Label, &o.Body, &o.Version, &created, &modified); err != nil {
		return nil, err
	}
	o.Kind = fleetcert.ObjectKind(kind)
	if len(o.Body) == 0 {
		o.Body = nil
	}
	o.CreationDate = fromNanos(created)
	o.LastModifiedDate = fromNanos(modified)
	return &o, nil
}

// scanLink reads a row of linkColumns.
func scanLink(s scanner) (*fleetcert.Link, error) {
	var (
		l       fleetcert.Link
		kind    string
		created sql.NullInt64
	)
	if err := s.Scan(&l.AccountID, &l.Region, &kind, &l.From, &l.To, &l.Body, &created); err != nil {
		return nil, err
	}
	l.Kind = fleetcert.LinkKind(kind)
	if len(l.Body) == 0 {
		l.Body = nil
	}
	l.CreationDate = fromNanos(created)
	return &l, nil
}

// Object returns the object (scope, kind, name).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Object(ctx context.Context, scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) (*fleetcert.Object, error) {
	row := tx.stmt(ctx, tx.stmts.object).QueryRowContext(ctx, scope.AccountID, scope.Region, string(kind), name)
	o, err := scanObject(row)
	if err != nil {
		return nil, storeError(err, objectName(kind, name))
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
	var e encoder
	args := []any{o.AccountID, o.Region, string(o.Kind), o.Name, o.Label, body(o.Body), version,
		e.nanos(o.CreationDate), e.nanos(o.LastModifiedDate)}
	if e.err != nil {
		return fmt.Errorf("create %s: %w", what, e.err)
	}
	if _, err := tx.stmt(ctx, tx.stmts.insertObject).ExecContext(ctx, args...); err != nil {
		return storeError(err, what)
	}
	o.Version = version
	return nil
}

// UpdateObject replaces the Label, Body and LastModifiedDate of the object
// (o.Scope, o.Kind, o.Name) if its stored version is o.Version, and adds 1
// to both. The Update's write lock keeps the version from changing between
// the update and the read that tells a missing object from a conflict.
//
// Errors: ResourceNotFoundException; VersionConflictException.
func (tx *Tx) UpdateObject(ctx context.Context, o *fleetcert.Object) error {
	what := objectName(o.Kind, o.Name)
	if err := tx.checkWritable("update " + what); err != nil {
		return err
	}
	var e encoder
	modified := e.nanos(o.LastModifiedDate)
	if e.err != nil {
		return fmt.Errorf("update %s: %w", what, e.err)
	}
	key := []any{o.AccountID, o.Region, string(o.Kind), o.Name}
	res, err := tx.stmt(ctx, tx.stmts.updateObject).ExecContext(ctx, append(key, o.Label, body(o.Body), modified, o.Version)...)
	if err != nil {
		return storeError(err, what)
	}
	if n, err := res.RowsAffected(); err != nil {
		return storeError(err, what)
	} else if n == 1 {
		o.Version++
		return nil
	}
	var stored int64
	if err := tx.stmt(ctx, tx.stmts.objectVersion).QueryRowContext(ctx, key...).Scan(&stored); err != nil {
		return storeError(err, what)
	}
	return versionConflict(what, stored, o.Version)
}

// versionConflict is UpdateObject's error when the stored version is not
// the one the caller read.
func versionConflict(what string, stored, expected int64) error {
	return fleetcert.Errorf(fleetcert.EVersionConflict,
		"The %s is at version %d, not %d: it was updated in the meantime. Read it again and retry.", what, stored, expected)
}

// DeleteObject removes the object (scope, kind, name).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteObject(ctx context.Context, scope fleetcert.Scope, kind fleetcert.ObjectKind, name string) error {
	what := objectName(kind, name)
	if err := tx.checkWritable("delete " + what); err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.deleteObject).ExecContext(ctx, scope.AccountID, scope.Region, string(kind), name)
	return rowsAffected(res, err, what)
}

// ListObjects returns up to q.Limit objects of q.Scope and q.Kind matching
// q's filters, in byte-wise Name order, strictly after q.After when set.
func (tx *Tx) ListObjects(ctx context.Context, q fleetcert.ObjectQuery) ([]*fleetcert.Object, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	filters := 0
	if q.Label != "" {
		filters |= objectByLabel
	}
	if q.After != "" {
		filters |= objectAfter
	}
	// A range on the key: the names with the prefix sort from it up to,
	// not including, the prefix with its last byte incremented.
	end, ok := prefixEnd(q.NamePrefix)
	if ok {
		filters |= objectPrefixEnd
	}
	rows, err := tx.stmt(ctx, tx.stmts.listObjects[filters]).QueryContext(ctx,
		q.AccountID, q.Region, string(q.Kind), q.Label, q.After, q.NamePrefix, end, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list %s objects: %w", q.Kind, err)
	}
	defer rows.Close()
	var objects []*fleetcert.Object
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s objects: %w", q.Kind, err)
		}
		objects = append(objects, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s objects: %w", q.Kind, err)
	}
	return objects, nil
}

// Link returns the link (scope, kind, from, to).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) Link(ctx context.Context, scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) (*fleetcert.Link, error) {
	row := tx.stmt(ctx, tx.stmts.link).QueryRowContext(ctx, scope.AccountID, scope.Region, string(kind), from, to)
	l, err := scanLink(row)
	if err != nil {
		return nil, storeError(err, linkName(kind, from, to))
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
	var e encoder
	created := e.nanos(l.CreationDate)
	if e.err != nil {
		return fmt.Errorf("create %s: %w", what, e.err)
	}
	_, err := tx.stmt(ctx, tx.stmts.insertLink).ExecContext(ctx,
		l.AccountID, l.Region, string(l.Kind), l.From, l.To, body(l.Body), created)
	return storeError(err, what)
}

// DeleteLink removes the link (scope, kind, from, to).
//
// Errors: ResourceNotFoundException.
func (tx *Tx) DeleteLink(ctx context.Context, scope fleetcert.Scope, kind fleetcert.LinkKind, from, to string) error {
	what := linkName(kind, from, to)
	if err := tx.checkWritable("delete " + what); err != nil {
		return err
	}
	res, err := tx.stmt(ctx, tx.stmts.deleteLink).ExecContext(ctx, scope.AccountID, scope.Region, string(kind), from, to)
	return rowsAffected(res, err, what)
}

// ListLinks returns up to q.Limit links of q.Scope and q.Kind, from q.From,
// to q.To, both or neither; see fleetcert.Tx.ListLinks for the order.
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
	var listing int
	switch {
	case q.From != "" && q.After != "":
		listing = linksFromAfter
	case q.From != "":
		listing = linksFrom
	case q.To != "" && q.After != "":
		listing = linksToAfter
	case q.To != "":
		listing = linksTo
	default:
		listing = linksAll
	}
	rows, err := tx.stmt(ctx, tx.stmts.listLinks[listing]).QueryContext(ctx,
		q.AccountID, q.Region, string(q.Kind), q.From, q.To, q.After, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list %s links: %w", q.Kind, err)
	}
	defer rows.Close()
	var links []*fleetcert.Link
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s links: %w", q.Kind, err)
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s links: %w", q.Kind, err)
	}
	return links, nil
}
