package awsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// epochTime is a timestamp in rest-json's default format: a JSON number of
// seconds since the epoch with a millisecond fraction (1700000000.123).
type epochTime time.Time

// IsZero reports whether t is unset, for omitzero.
func (t epochTime) IsZero() bool { return time.Time(t).IsZero() }

// MarshalJSON implements json.Marshaler.
func (t epochTime) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// marshal encodes v as JSON without HTML escaping: PEM and messages travel
// as they are, as AWS sends them.
func marshal(v any) ([]byte, error) {
	return appendJSON(new(bytes.Buffer), v)
}

// jsonBuffers recycles response buffers: a response's encoding is a sixth
// of what a DescribeCertificate allocates, and garbage collection is what
// stretches the latency tail under load.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// appendJSON encodes v into buf, emptied first, and returns the bytes,
// valid until buf is reused.
func appendJSON(buf *bytes.Buffer, v any) ([]byte, error) {
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeBody reads the JSON body members of an operation into v. An empty
// body has no members.
//
// Errors: InvalidRequestException for a body that is not a JSON object or
// has a member of the wrong type.
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	err := json.Unmarshal(body, v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fleetcert.Errorf(fleetcert.EInvalidRequest,
			"The member '%s' of the request body cannot be a JSON %s.", typeErr.Field, typeErr.Value)
	case errors.As(err, &typeErr):
		return fleetcert.Errorf(fleetcert.EInvalidRequest, "The request body must be a JSON object.")
	}
	return fleetcert.Errorf(fleetcert.EInvalidRequest, "The request body is not valid JSON.")
}

// queryString returns the first value of the query member named name (its
// locationName in the model) and whether it is present.
func queryString(q url.Values, name string) (string, bool) {
	vs, ok := q[name]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// queryBool reads a boolean query member: "true" or "false", as the SDKs
// send it; absent is false.
//
// Errors: InvalidRequestException for any other value.
func queryBool(q url.Values, name string) (bool, error) {
	v, ok := queryString(q, name)
	if !ok {
		return false, nil
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalidMember(name, v, "a boolean (true or false)")
}

// listOptions reads the paging members shared by the list operations:
// pageSize, marker and ascendingOrder (locationName isAscendingOrder). Their
// limits are the Registry's to check.
//
// Errors: InvalidRequestException for a pageSize that is not an integer or
// an isAscendingOrder that is not a boolean.
func listOptions(q url.Values) (fleetcert.ListOptions, error) {
	var opts fleetcert.ListOptions
	if v, ok := queryString(q, "pageSize"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return opts, invalidMember("pageSize", v, "an integer")
		}
		opts.PageSize = &n
	}
	opts.Marker, _ = queryString(q, "marker")
	var err error
	opts.Ascending, err = queryBool(q, "isAscendingOrder")
	return opts, err
}
