package fleetcert

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"math"
	"time"
)

// Page sizes of the list operations (AWS model: PageSize 1–250; default 25
// per the ListCertificates documentation).
const (
	DefaultPageSize = 25
	MaxPageSize     = 250
)

// ListOptions are the paging members shared by the list operations.
type ListOptions struct {
	PageSize  *int // nil means DefaultPageSize
	Marker    string
	Ascending bool
}

// CertificatePage is one page of a certificate listing. NextMarker is ""
// on the last page.
type CertificatePage struct {
	Certificates []*Certificate
	NextMarker   string
}

// markerVersion prefixes every marker so the format can change later
// without misreading old markers. A position whose time lies beyond the
// int64 nanoseconds (after 2262: a NotAfter of 9999, in a listing by
// expiry) is written as markerVersionMicros, its time in microseconds.
const (
	markerVersion       = 1
	markerVersionMicros = 2
)

// Limits of a time as int64 Unix nanoseconds.
var (
	minMarkerNanos = time.Unix(0, math.MinInt64)
	maxMarkerNanos = time.Unix(0, math.MaxInt64)
)

// markerLen is the length of every marker: 17 bytes in base64.
var markerLen = base64.StdEncoding.EncodedLen(17)

// EncodeMarker returns the opaque marker for cursor c: standard base64, as
// the model's Marker pattern requires.
func EncodeMarker(c Cursor) string {
	var b [17]byte
	b[0] = markerVersion
	binary.BigEndian.PutUint64(b[1:], uint64(c.CreationDate.UnixNano()))
	if c.CreationDate.Before(minMarkerNanos) || c.CreationDate.After(maxMarkerNanos) {
		b[0] = markerVersionMicros
		binary.BigEndian.PutUint64(b[1:], uint64(c.CreationDate.UnixMicro()))
	}
	binary.BigEndian.PutUint64(b[9:], uint64(c.Seq))
	return base64.StdEncoding.EncodeToString(b[:])
}

// DecodeMarker parses a marker made by EncodeMarker.
//
// Errors: InvalidRequestException for anything else.
func DecodeMarker(m string) (*Cursor, error) {
	if m == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(m)
	// Strict, and only the form EncodeMarker writes: base64 would also take
	// line breaks and other unused padding bits, so one page would have
	// several markers.
	if len(m) != markerLen || err != nil || len(b) != 17 || (b[0] != markerVersion && b[0] != markerVersionMicros) {
		return nil, Errorf(EInvalidRequest, "The marker is not valid; pass the nextMarker of a previous response.")
	}
	t := time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))).UTC()
	if b[0] == markerVersionMicros {
		t = time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:]))).UTC()
		if !t.Before(minMarkerNanos) && !t.After(maxMarkerNanos) {
			// Only EncodeMarker's form: one marker per position.
			return nil, Errorf(EInvalidRequest, "The marker is not valid; pass the nextMarker of a previous response.")
		}
	}
	return &Cursor{CreationDate: t, Seq: int64(binary.BigEndian.Uint64(b[9:]))}, nil
}

// checkPageSize applies the default and the model's limits.
func checkPageSize(size *int) (int, error) {
	if size == nil {
		return DefaultPageSize, nil
	}
	if n := *size; n < 1 || n > MaxPageSize {
		return 0, Errorf(EInvalidRequest,
			"1 validation error detected: Value '%d' at 'pageSize' failed to satisfy constraint: Member must have value between 1 and %d", n, MaxPageSize)
	}
	return *size, nil
}

// listPage reads one page of a listing: it checks opts, reads up to one
// item more than the page size after opts.Marker (the extra one tells
// whether there is a next page), and returns the page and the marker of the
// next one ("" on the last page).
func listPage[T any](ctx context.Context, store Store, opts ListOptions,
	read func(tx Tx, after *Cursor, limit int) ([]T, error), cursor func(T) Cursor) ([]T, string, error) {
	size, err := checkPageSize(opts.PageSize)
	if err != nil {
		return nil, "", err
	}
	after, err := DecodeMarker(opts.Marker)
	if err != nil {
		return nil, "", err
	}
	var items []T
	err = store.View(ctx, func(tx Tx) error {
		items, err = read(tx, after, size+1)
		return err
	})
	if err != nil || len(items) <= size {
		return items, "", err
	}
	return items[:size], EncodeMarker(cursor(items[size-1])), nil
}
