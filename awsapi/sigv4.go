package awsapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// AWS Signature Version 4, as the SigV4 documentation ("Create a signed AWS
// API request") specifies it, header form only.
const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	sigV4Service   = "iot" // signingName of the model
	sigV4Terminal  = "aws4_request"
	amzDateFormat  = "20060102T150405Z"

	// maxClockSkew is how far the request time may be from the server's:
	// AWS refuses a signature more than 15 minutes old or ahead.
	maxClockSkew = 15 * time.Minute
)

// sigV4Auth is a parsed Authorization header.
type sigV4Auth struct {
	accessKeyID   string
	date          string // YYYYMMDD of the credential scope
	region        string
	scope         string // date/region/service/aws4_request
	signedHeaders string
	signature     [sha256.Size]byte
}

// authenticate verifies the request's SigV4 signature against the stored
// secret of its access key. On success it sets c's scope (the key's account
// and the credential scope's region), access key id, query and body. It
// reads the body, which the signature covers.
//
// Errors (all 403 but the body limit): MissingAuthenticationTokenException,
// IncompleteSignatureException, InvalidSignatureException,
// UnrecognizedClientException; InvalidRequestException (413) for a body
// over the limit.
func (h *Handler) authenticate(c *call, r *http.Request) error {
	header := r.Header.Get("Authorization")
	if header == "" {
		return fleetcert.Errorf(codeMissingAuthenticationToken, "Missing Authentication Token")
	}
	a, err := parseAuthorization(header)
	if err != nil {
		return err
	}
	c.accessKeyID = a.accessKeyID
	t, amzDate, err := requestTime(r)
	if err != nil {
		return err
	}
	if amzDate[:8] != a.date {
		return fleetcert.Errorf(codeInvalidSignature,
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			a.date, amzDate[:8], amzDate)
	}
	if err := checkClockSkew(t, h.now().UTC()); err != nil {
		return err
	}

	// The cheap checks are done: only now touch the store and the body.
	key, err := h.accessKey(c, a.accessKeyID)
	if err != nil {
		return err
	}
	body, err := h.readBody(c, r)
	if err != nil {
		return err
	}
	query := r.URL.Query()
	if err := checkSignature(r, query, a, amzDate, body, key.Secret, &h.auth); err != nil {
		return err
	}
	c.scope = fleetcert.Scope{AccountID: key.AccountID, Region: a.region}
	c.query = query
	c.body = body
	return nil
}

// checkSignature compares a's signature of r, with body and query, with the
// one secret makes, in constant time, caching the signing key of a
// signature that verified in ac.
func checkSignature(r *http.Request, query url.Values, a *sigV4Auth, amzDate string, body []byte, secret string, ac *authCache) error {
	sum := sha256.Sum256(body)
	var payloadHash [2 * sha256.Size]byte
	hex.Encode(payloadHash[:], sum[:])
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" && !strings.EqualFold(v, string(payloadHash[:])) {
		// Also refuses UNSIGNED-PAYLOAD: the body is always signed here.
		return fleetcert.Errorf(codeInvalidSignature,
			"The provided 'x-amz-content-sha256' header does not match what was computed.")
	}

	canonical := canonicalRequest(r, query, a.signedHeaders, payloadHash[:])
	crHash := sha256.Sum256(canonical)
	sts := make([]byte, 0, 128)
	sts = append(sts, sigV4Algorithm+"\n"...)
	sts = append(sts, amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, a.scope...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, crHash[:])

	signingKey, cached := ac.signingKey(secret, a.date, a.region)
	mac := hmac.New(sha256.New, signingKey)
	mac.Write(sts)
	if !hmac.Equal(mac.Sum(nil), a.signature[:]) {
		return fleetcert.Errorf(codeInvalidSignature,
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	if !cached {
		// Only keys that verified a signature are kept, so requests with
		// made-up regions or dates cannot fill the cache.
		ac.storeSigningKey(secret, a.date, a.region, signingKey)
	}
	return nil
}

// SigV4Verifier verifies SigV4 signatures (header form, signing name iot)
// exactly as Handler does, with secrets from a function instead of the
// store: fleetcert-bench's ceiling server verifies with it, so that the
// ceiling does the API's signature work and nothing more.
type SigV4Verifier struct {
	// Secret returns the secret of an access key id, false for none.
	Secret func(accessKeyID string) (string, bool)
	Now    func() time.Time

	auth authCache // signing keys of signatures that verified
}

// Verify checks r's signature over body and returns its access key id and
// the region of its credential scope. Its errors are Handler's:
// *fleetcert.Error with the codes of the AWS error the API would answer.
func (v *SigV4Verifier) Verify(r *http.Request, body []byte) (accessKeyID, region string, err error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return "", "", fleetcert.Errorf(codeMissingAuthenticationToken, "Missing Authentication Token")
	}
	a, err := parseAuthorization(header)
	if err != nil {
		return "", "", err
	}
	t, amzDate, err := requestTime(r)
	if err != nil {
		return "", "", err
	}
	if amzDate[:8] != a.date {
		return "", "", fleetcert.Errorf(codeInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
	}
	if err := checkClockSkew(t, v.Now().UTC()); err != nil {
		return "", "", err
	}
	secret, ok := v.Secret(a.accessKeyID)
	if !ok {
		return "", "", fleetcert.Errorf(codeUnrecognizedClient, "The security token included in the request is invalid.")
	}
	if err := checkSignature(r, r.URL.Query(), a, amzDate, body, secret, &v.auth); err != nil {
		return "", "", err
	}
	return a.accessKeyID, a.region, nil
}

// otherIoTServices are the AWS IoT APIs besides the control plane that
// clients sign under their own names, and what to do instead.
var otherIoTServices = map[string]string{
	"iotdata":       "the AWS IoT data plane (aws iot-data: Publish, device shadows, retained messages); devices and clients publish over MQTT to fleetcert's device gateway",
	"iot-jobs-data": "the AWS IoT jobs data plane (aws iot-jobs-data)",
}

// unsupportedService answers a request signed for another service than
// AWS IoT's control plane: a client given fleetcert's --endpoint-url for
// an API fleetcert does not serve, such as aws iot-data publish. AWS would
// answer InvalidSignatureException ("Credential should be scoped to
// correct service"), which sends the user looking for a key problem; the
// API is what is missing.
func unsupportedService(service string) error {
	what := "the '" + truncate(service) + "' API"
	if s, ok := otherIoTServices[service]; ok {
		what = s
	}
	return fleetcert.Errorf(codeUnknownOperation,
		"fleetcert does not support %s; it serves the AWS IoT certificate API (requests signed for service 'iot').", what)
}

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/iot/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=hex".
//
// Errors: IncompleteSignatureException for a malformed header;
// InvalidSignatureException for a scope of another service or no region.
func parseAuthorization(header string) (*sigV4Auth, error) {
	rest, ok := strings.CutPrefix(header, sigV4Algorithm+" ")
	if !ok {
		return nil, fleetcert.Errorf(codeIncompleteSignature,
			"Unsupported Authorization Type: the Authorization header must use %s.", sigV4Algorithm)
	}
	var credential, signedHeaders, signature string
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, "Credential="); ok {
			credential = v
		} else if v, ok := strings.CutPrefix(part, "SignedHeaders="); ok {
			signedHeaders = v
		} else if v, ok := strings.CutPrefix(part, "Signature="); ok {
			signature = v
		}
	}
	var missing string
	if credential == "" {
		missing += "Authorization header requires 'Credential' parameter. "
	}
	if signature == "" {
		missing += "Authorization header requires 'Signature' parameter. "
	}
	if signedHeaders == "" {
		missing += "Authorization header requires 'SignedHeaders' parameter. "
	}
	if missing != "" {
		return nil, fleetcert.Errorf(codeIncompleteSignature, "%s", strings.TrimSpace(missing))
	}

	var a sigV4Auth
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" || parts[4] != sigV4Terminal {
		return nil, fleetcert.Errorf(codeIncompleteSignature,
			"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'.", truncate(credential))
	}
	a.accessKeyID, a.date, a.region = parts[0], parts[1], parts[2]
	if _, err := time.Parse("20060102", a.date); err != nil {
		return nil, fleetcert.Errorf(codeIncompleteSignature,
			"Credential date must be in YYYYMMDD format, got '%s'.", truncate(a.date))
	}
	if parts[3] != sigV4Service {
		return nil, unsupportedService(parts[3])
	}
	if !fleetcert.ValidRegion(a.region) {
		return nil, fleetcert.Errorf(codeInvalidSignature, "Credential should be scoped to a valid region.")
	}
	a.scope = credential[len(a.accessKeyID)+1:]

	hasHost := false
	for name := range strings.SplitSeq(signedHeaders, ";") {
		if name == "" {
			return nil, fleetcert.Errorf(codeIncompleteSignature,
				"SignedHeaders must be a semicolon-separated list of header names, got '%s'.", truncate(signedHeaders))
		}
		hasHost = hasHost || name == "host"
	}
	if !hasHost {
		return nil, fleetcert.Errorf(codeIncompleteSignature,
			"'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	a.signedHeaders = signedHeaders

	if len(signature) != 2*sha256.Size {
		return nil, fleetcert.Errorf(codeIncompleteSignature, "Signature must be %d hexadecimal digits.", 2*sha256.Size)
	}
	if _, err := hex.Decode(a.signature[:], []byte(signature)); err != nil {
		return nil, fleetcert.Errorf(codeIncompleteSignature, "Signature must be %d hexadecimal digits.", 2*sha256.Size)
	}
	return &a, nil
}

// requestTime returns the signing time from X-Amz-Date, or else Date, and
// its ISO 8601 basic form used in the string to sign.
//
// Errors: IncompleteSignatureException.
func requestTime(r *http.Request) (time.Time, string, error) {
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		// time.Parse also takes a fractional second or a one-digit hour;
		// SigV4 takes the basic format exactly, as AWS does.
		t, err := time.Parse(amzDateFormat, v)
		if err != nil || t.Format(amzDateFormat) != v {
			return time.Time{}, "", fleetcert.Errorf(codeIncompleteSignature,
				"Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", truncate(v))
		}
		return t, v, nil
	}
	if v := r.Header.Get("Date"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, "", fleetcert.Errorf(codeIncompleteSignature,
				"Date must be an HTTP date. Got '%s'.", truncate(v))
		}
		t = t.UTC()
		return t, t.Format(amzDateFormat), nil
	}
	return time.Time{}, "", fleetcert.Errorf(codeIncompleteSignature,
		"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
}

// checkClockSkew refuses a request time more than maxClockSkew from now,
// with AWS's messages.
//
// Errors: InvalidSignatureException.
func checkClockSkew(t, now time.Time) error {
	if earliest := now.Add(-maxClockSkew); t.Before(earliest) {
		return fleetcert.Errorf(codeInvalidSignature, "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			t.Format(amzDateFormat), earliest.Format(amzDateFormat), now.Format(amzDateFormat))
	}
	if latest := now.Add(maxClockSkew); t.After(latest) {
		return fleetcert.Errorf(codeInvalidSignature, "Signature not yet current: %s is still later than %s (%s + 15 min.)",
			t.Format(amzDateFormat), latest.Format(amzDateFormat), now.Format(amzDateFormat))
	}
	return nil
}

// canonicalRequest rebuilds the canonical request from r itself:
//
//	method \n canonical URI \n canonical query \n canonical headers \n
//	signed headers \n payload hash
func canonicalRequest(r *http.Request, query url.Values, signedHeaders string, payloadHash []byte) []byte {
	b := make([]byte, 0, 512)
	b = append(b, r.Method...)
	b = append(b, '\n')

	// Canonical URI: the path as sent (already URI-encoded), URI-encoded
	// once more. Services other than S3 encode each segment twice; the SDK
	// signers and botocore do exactly this.
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	b = appendURIEncoded(b, p, false)
	b = append(b, '\n')

	b = appendCanonicalQuery(b, query)
	b = append(b, '\n')

	for name := range strings.SplitSeq(signedHeaders, ";") {
		b = append(b, name...)
		b = append(b, ':')
		switch name {
		case "host":
			b = appendTrimmed(b, r.Host)
		case "content-length":
			if vs := r.Header.Values(name); len(vs) > 0 {
				b = appendHeaderValues(b, vs)
			} else if r.ContentLength >= 0 {
				b = strconv.AppendInt(b, r.ContentLength, 10)
			}
		default:
			b = appendHeaderValues(b, r.Header.Values(name))
		}
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, signedHeaders...)
	b = append(b, '\n')
	b = append(b, payloadHash...)
	return b
}

// appendCanonicalQuery appends the query parameters URI-encoded and sorted
// by name, then value.
func appendCanonicalQuery(b []byte, query url.Values) []byte {
	if len(query) == 0 {
		return b
	}
	type param struct{ name, value string }
	params := make([]param, 0, len(query))
	for name, values := range query {
		name = uriEncode(name)
		for _, v := range values {
			params = append(params, param{name, uriEncode(v)})
		}
	}
	slices.SortFunc(params, func(x, y param) int {
		if c := strings.Compare(x.name, y.name); c != 0 {
			return c
		}
		return strings.Compare(x.value, y.value)
	})
	for i, p := range params {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p.name...)
		b = append(b, '=')
		b = append(b, p.value...)
	}
	return b
}

// appendHeaderValues appends a header's values trimmed, inner runs of
// spaces collapsed, joined by commas.
func appendHeaderValues(b []byte, values []string) []byte {
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTrimmed(b, v)
	}
	return b
}

// appendTrimmed appends v without leading and trailing whitespace and with
// each run of spaces inside it as one space (SigV4 "Trimall").
func appendTrimmed(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b = append(b, c)
	}
	return b
}

// uriEncode returns s URI-encoded as SigV4 requires: every byte but the
// unreserved characters A-Z a-z 0-9 - _ . ~ as %XY, upper-case hex.
func uriEncode(s string) string {
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			return string(appendURIEncoded(make([]byte, 0, len(s)+16), s, true))
		}
	}
	return s
}

// appendURIEncoded appends s URI-encoded; '/' is kept unless encodeSlash.
func appendURIEncoded(b []byte, s string, encodeSlash bool) []byte {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || c == '/' && !encodeSlash {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// truncate shortens a caller-supplied value echoed in an error message.
func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// accessKey returns the access key id, from the cache while it is fresh.
// Unknown keys are never cached, so a key created by `fleetcert keys create`
// in another process is accepted on its first request.
// Deleted keys are forgotten (ForgetAccessKey) as soon as this process
// learns of them.
//
// Errors: UnrecognizedClientException for an unknown key; store failures
// unchanged.
func (h *Handler) accessKey(c *call, id string) (*fleetcert.AccessKey, error) {
	ttl := h.KeyCacheTTL
	if ttl == 0 {
		ttl = DefaultKeyCacheTTL
	}
	now := time.Now()
	if ttl > 0 {
		if k := h.auth.key(id, now); k != nil {
			return k, nil
		}
	}
	// Taken before the read: a key deleted while it is read is not cached
	// (storeKey compares it).
	gen := h.auth.generation()
	k, err := h.Registry.AccessKey(c.ctx, id)
	if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
		return nil, fleetcert.Errorf(codeUnrecognizedClient, "The security token included in the request is invalid.")
	} else if err != nil {
		return nil, err
	}
	if ttl > 0 {
		h.auth.storeKey(k, now.Add(ttl), gen)
	}
	return k, nil
}

// ForgetAccessKey removes access key id from the cache, so that the next
// request signed with it reads the store (and is refused once the key is
// deleted); "" forgets every key. Give it to
// fleetcert.Registry.OnAccessKeyDeleted.
func (h *Handler) ForgetAccessKey(id string) {
	h.auth.forget(id)
}

// maxCacheEntries bounds each map of authCache; a full map is emptied.
const maxCacheEntries = 4096

// authCache keeps found access keys for a short time and the SigV4 signing
// keys derived from them, which change only daily.
type authCache struct {
	mu      sync.RWMutex
	keys    map[string]cachedKey
	signing map[signingKeyID][]byte
	gen     uint64 // counts forgets: a key read before one is not stored
}

type cachedKey struct {
	key     *fleetcert.AccessKey
	expires time.Time
}

// signingKeyID names a derived signing key. It holds the secret itself, so
// a key whose secret changed never matches an old entry.
type signingKeyID struct {
	secret, date, region string
}

func (ac *authCache) key(id string, now time.Time) *fleetcert.AccessKey {
	ac.mu.RLock()
	e, ok := ac.keys[id]
	ac.mu.RUnlock()
	if !ok || now.After(e.expires) {
		return nil
	}
	return e.key
}

// generation returns the count of forgets, to pass to storeKey.
func (ac *authCache) generation() uint64 {
	ac.mu.RLock()
	defer ac.mu.RUnlock()
	return ac.gen
}

// forget removes key id, every key when id is "".
func (ac *authCache) forget(id string) {
	ac.mu.Lock()
	ac.gen++
	if id == "" {
		ac.keys = nil
	} else {
		delete(ac.keys, id)
	}
	ac.mu.Unlock()
}

// storeKey caches k unless a key was forgotten since generation gen was
// read: k may be one deleted meanwhile.
func (ac *authCache) storeKey(k *fleetcert.AccessKey, expires time.Time, gen uint64) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if ac.gen != gen {
		return
	}
	if ac.keys == nil || len(ac.keys) >= maxCacheEntries {
		ac.keys = make(map[string]cachedKey)
	}
	ac.keys[k.ID] = cachedKey{k, expires}
}

// signingKey returns the SigV4 signing key of secret for date and region,
// and whether it came from the cache.
func (ac *authCache) signingKey(secret, date, region string) ([]byte, bool) {
	id := signingKeyID{secret, date, region}
	ac.mu.RLock()
	k, ok := ac.signing[id]
	ac.mu.RUnlock()
	if ok {
		return k, true
	}
	return deriveSigningKey(secret, date, region), false
}

func (ac *authCache) storeSigningKey(secret, date, region string, k []byte) {
	ac.mu.Lock()
	if ac.signing == nil || len(ac.signing) >= maxCacheEntries {
		ac.signing = make(map[signingKeyID][]byte)
	}
	ac.signing[signingKeyID{secret, date, region}] = k
	ac.mu.Unlock()
}

// deriveSigningKey computes
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
func deriveSigningKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, sigV4Service)
	return hmacSHA256(k, sigV4Terminal)
}

func hmacSHA256(key []byte, data string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return mac.Sum(nil)
}
