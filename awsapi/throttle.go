package awsapi

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetcert/fleetcert"
)

// Rate is a token bucket: PerSecond requests a second on average, up to
// Burst at once after a quiet spell.
type Rate struct {
	PerSecond float64
	Burst     int
}

// String returns r as ParseThrottle reads it: "rate/burst".
func (r Rate) String() string {
	return strconv.FormatFloat(r.PerSecond, 'g', -1, 64) + "/" + strconv.Itoa(r.Burst)
}

// awsRates are AWS IoT Core's default control plane rates, in transactions
// per second, for the 22 certificate operations and the 43 of things and
// policies: the table "AWS IoT Core API
// throttling limits" of AWS IoT Core endpoints and quotas,
// https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits
// (formerly "AWS IoT Throttling Limits" in the developer guide's limits-iot
// page). The limits apply per account and per Region ("Each limit applies on
// a per-region basis unless otherwise specified"). AWS publishes no burst:
// fleetcert allows one second's worth at once.
//
// CreateKeysAndCertificate and DescribeEndpoint are not in the table as we
// could read it; they get 10, the lowest rate the table gives any
// certificate operation, the conservative choice. RegisterCertificateWithoutCA,
// added to the table later, is listed at 10.
var awsRates = map[string]float64{
	"AcceptCertificateTransfer":    10,
	"CancelCertificateTransfer":    10,
	"CreateCertificateFromCsr":     15,
	"CreateKeysAndCertificate":     10, // not listed: conservative
	"DeleteCACertificate":          10,
	"DeleteCertificate":            10,
	"DeleteRegistrationCode":       10,
	"DescribeCACertificate":        10,
	"DescribeCertificate":          10,
	"DescribeEndpoint":             10, // not listed: conservative
	"GetRegistrationCode":          10,
	"ListCACertificates":           10,
	"ListCertificates":             10,
	"ListCertificatesByCA":         10,
	"ListOutgoingCertificates":     10,
	"RegisterCACertificate":        10,
	"RegisterCertificate":          10,
	"RegisterCertificateWithoutCA": 10,
	"RejectCertificateTransfer":    10,
	"TransferCertificate":          10,
	"UpdateCACertificate":          10,
	"UpdateCertificate":            10,

	// Things (issue 15): AWS's default quotas in Service Quotas (service
	// code iotcore, "<Operation> API TPS"; each quota code is beside its
	// rate, for `aws service-quotas get-aws-default-service-quota
	// --service-code iotcore --quota-code L-…`). The V2 listings have no
	// quota of their own there: they get their V1 operation's.
	"AddThingToThingGroup":      100, // L-2904683A
	"AttachThingPrincipal":      100, // L-F64D1AA6
	"CreateThing":               100, // L-64CBACAC
	"CreateThingGroup":          25,  // L-512F449C
	"CreateThingType":           15,  // L-8650816F
	"DeleteThing":               100, // L-889800F7
	"DeleteThingGroup":          15,  // L-FCAB1AF4
	"DeleteThingType":           15,  // L-CFBDB489
	"DeprecateThingType":        15,  // L-7F1DBFAE
	"DescribeThing":             350, // L-0EF0F5EE
	"DescribeThingGroup":        100, // L-52E1E197
	"DescribeThingType":         100, // L-DDCF8E97
	"DetachThingPrincipal":      100, // L-B5EE4A16
	"ListPrincipalThings":       10,  // L-C481616A
	"ListPrincipalThingsV2":     10,
	"ListThingGroups":           10,  // L-1E5260D6
	"ListThingGroupsForThing":   100, // L-75F129AD
	"ListThingPrincipals":       10,  // L-FC3EF4D9
	"ListThingPrincipalsV2":     10,
	"ListThingTypes":            10,  // L-F9EBF527
	"ListThings":                10,  // L-57AAC135
	"ListThingsInThingGroup":    25,  // L-D33FD5F9
	"RemoveThingFromThingGroup": 100, // L-2A81A394
	"UpdateThing":               100, // L-211F680E
	"UpdateThingGroup":          15,  // L-5D84F9FE

	// Policies: Service Quotas lists their operations too (AttachPolicy
	// L-CA7D4E3E, GetEffectivePolicies L-CE45290D, …) but we could not
	// read their default values; each gets 10, the lowest rate AWS gives
	// any of the operations above, until someone copies the values in.
	"AttachPolicy":            10,
	"AttachPrincipalPolicy":   10,
	"CreatePolicy":            10,
	"CreatePolicyVersion":     10,
	"DeletePolicy":            10,
	"DeletePolicyVersion":     10,
	"DetachPolicy":            10,
	"DetachPrincipalPolicy":   10,
	"GetEffectivePolicies":    10,
	"GetPolicy":               10,
	"GetPolicyVersion":        10,
	"ListAttachedPolicies":    10,
	"ListPolicies":            10,
	"ListPolicyVersions":      10,
	"ListPrincipalPolicies":   10,
	"ListTargetsForPolicy":    10,
	"SetDefaultPolicyVersion": 10,
	"TestAuthorization":       10,
}

// AWSRates returns AWS IoT Core's default rates for the operations of the
// model (certificates, things, policies), by operation name, each with a burst of one second's worth:
// what ParseThrottle("aws") throttles at.
func AWSRates() map[string]Rate {
	rates := make(map[string]Rate, len(awsRates))
	for op, perSecond := range awsRates {
		rates[op] = Rate{PerSecond: perSecond, Burst: defaultBurst(perSecond)}
	}
	return rates
}

// defaultBurst is one second's worth of requests, at least one.
func defaultBurst(perSecond float64) int {
	return int(max(1, math.Ceil(min(perSecond, math.MaxInt32))))
}

// Throttle limits how fast each account calls each operation in each
// Region, as AWS IoT Core does: one token bucket per (account, Region,
// operation), so that one account's flood never slows another account, nor
// another operation of its own. A request over its bucket's rate is answered
// ThrottlingException ("Rate exceeded", HTTP 400, as the model says), which
// the AWS SDKs retry with backoff.
//
// Buckets are made on first use and dropped once full again (an idle bucket
// is no different from a new one), so the buckets of idle accounts do not
// accumulate. Create it with NewThrottle or ParseThrottle; it is safe for
// concurrent use.
type Throttle struct {
	rates map[string]Rate // by operation name; absent: not throttled

	mu        sync.RWMutex
	buckets   map[bucketKey]*rate.Limiter
	sweepLen  int       // a new bucket beyond this many sweeps first
	nextSweep time.Time // a new bucket after this time sweeps first
}

type bucketKey struct {
	scope fleetcert.Scope
	op    string
}

const (
	// sweepInterval is how often, at most, a new bucket sweeps full ones
	// away when the map has not doubled since the last sweep.
	sweepInterval = time.Minute
	// minSweepLen is the least number of buckets that a sweep waits for.
	minSweepLen = 1024
)

// NewThrottle returns a Throttle with rates by operation name; operations
// without a rate are not throttled.
//
// Errors: an operation that is not one of the model's, a rate that is
// not a positive finite number, or a burst below 1.
func NewThrottle(rates map[string]Rate) (*Throttle, error) {
	t := &Throttle{
		rates:    make(map[string]Rate, len(rates)),
		buckets:  make(map[bucketKey]*rate.Limiter),
		sweepLen: minSweepLen,
	}
	for op, r := range rates {
		if err := checkOperationName(op); err != nil {
			return nil, err
		}
		if !(r.PerSecond > 0) || math.IsInf(r.PerSecond, 0) {
			return nil, fmt.Errorf("%s: rate %v is not a positive number of requests per second", op, r.PerSecond)
		}
		if r.Burst < 1 {
			return nil, fmt.Errorf("%s: burst %d is not a positive number of requests", op, r.Burst)
		}
		t.rates[op] = r
	}
	return t, nil
}

// ParseThrottle reads the value of fleetcert serve's --throttle flag:
//
//	""  or  "off"     no throttling (a nil *Throttle)
//	"aws"             AWS IoT Core's default rates (AWSRates)
//	"aws,ITEM,…"      AWS's rates, with ITEMs overriding them
//	"ITEM,…"          only the operations named are throttled
//
// where ITEM is "Operation=rate", "Operation=rate/burst" or "Operation=off"
// (that operation is not throttled): rate in requests per second (a
// positive decimal such as 10 or 0.5), burst an integer ≥ 1, by default
// one second's worth (the rate rounded up). Operation names are the model's,
// e.g. "aws,DescribeCertificate=500,ListCertificates=20/40".
//
// Errors: an unknown operation name, a malformed or non-positive number, or
// an operation given twice; the error names the item.
func ParseThrottle(spec string) (*Throttle, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "off" {
		return nil, nil
	}
	rates := make(map[string]Rate)
	items := strings.Split(spec, ",")
	if strings.TrimSpace(items[0]) == "aws" {
		rates = AWSRates()
		items = items[1:]
	}
	seen := make(map[string]bool)
	for _, item := range items {
		item = strings.TrimSpace(item)
		op, r, off, err := parseThrottleItem(item)
		if err != nil {
			return nil, fmt.Errorf("throttle item %q: %w", item, err)
		}
		if seen[op] {
			return nil, fmt.Errorf("throttle item %q: %s is given twice", item, op)
		}
		seen[op] = true
		if off {
			delete(rates, op)
		} else {
			rates[op] = r
		}
	}
	return NewThrottle(rates)
}

// parseThrottleItem reads "Operation=rate[/burst]" or "Operation=off".
func parseThrottleItem(item string) (op string, r Rate, off bool, err error) {
	if item == "aws" {
		return "", r, false, fmt.Errorf(`"aws" must come first`)
	}
	op, value, ok := strings.Cut(item, "=")
	op, value = strings.TrimSpace(op), strings.TrimSpace(value)
	if !ok || op == "" {
		return "", r, false, fmt.Errorf("want Operation=rate, Operation=rate/burst or Operation=off")
	}
	if err := checkOperationName(op); err != nil {
		return "", r, false, err
	}
	if value == "off" {
		return op, r, true, nil
	}
	perSecond, burst, hasBurst := strings.Cut(value, "/")
	r.PerSecond, err = strconv.ParseFloat(perSecond, 64)
	if err != nil || !(r.PerSecond > 0) || math.IsInf(r.PerSecond, 0) {
		return "", r, false, fmt.Errorf("rate %q is not a positive number of requests per second", perSecond)
	}
	r.Burst = defaultBurst(r.PerSecond)
	if hasBurst {
		if r.Burst, err = strconv.Atoi(burst); err != nil || r.Burst < 1 {
			return "", r, false, fmt.Errorf("burst %q is not a positive whole number of requests", burst)
		}
	}
	return op, r, false, nil
}

// checkOperationName refuses a name that is not one of the model's
// operations, suggesting the one it differs from only in case.
func checkOperationName(op string) error {
	if _, ok := awsRates[op]; ok {
		// An operation of the model, served or not yet (a policy
		// operation before its handler exists).
		return nil
	}
	ops := allOperations()
	for i := range ops {
		if ops[i].Name == op {
			return nil
		}
	}
	for i := range ops {
		if strings.EqualFold(ops[i].Name, op) {
			return fmt.Errorf("unknown operation %q (did you mean %s?)", op, ops[i].Name)
		}
	}
	return fmt.Errorf("unknown operation %q: want one of the AWS IoT certificate operations, e.g. DescribeCertificate", op)
}

// Rates returns the rate of each throttled operation.
func (t *Throttle) Rates() map[string]Rate {
	rates := make(map[string]Rate, len(t.rates))
	for op, r := range t.rates {
		rates[op] = r
	}
	return rates
}

// String returns t's rates in ParseThrottle's form, sorted by operation.
func (t *Throttle) String() string {
	if t == nil || len(t.rates) == 0 {
		return "off"
	}
	items := make([]string, 0, len(t.rates))
	for op, r := range t.rates {
		items = append(items, op+"="+r.String())
	}
	slices.Sort(items)
	return strings.Join(items, ",")
}

// allow reports whether scope may call op at now, taking a token from its
// bucket if so.
func (t *Throttle) allow(scope fleetcert.Scope, op string, now time.Time) bool {
	r, ok := t.rates[op]
	if !ok {
		return true
	}
	k := bucketKey{scope, op}
	t.mu.RLock()
	lim := t.buckets[k]
	t.mu.RUnlock()
	if lim == nil {
		lim = t.newBucket(k, r, now)
	}
	return lim.AllowN(now, 1)
}

// newBucket returns k's bucket, made full if it does not exist yet.
func (t *Throttle) newBucket(k bucketKey, r Rate, now time.Time) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if lim := t.buckets[k]; lim != nil {
		return lim // made by another request meanwhile
	}
	if len(t.buckets) >= t.sweepLen || now.After(t.nextSweep) {
		t.sweepLocked(now)
	}
	lim := rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
	t.buckets[k] = lim
	return lim
}

// sweepLocked drops every bucket that is full at now: dropping it changes
// nothing, since its next request makes a new, full one. Sweeping when the
// map has doubled keeps the work per new bucket constant on average and the
// map within twice the buckets in use; sweeping at least every
// sweepInterval lets idle accounts go even while the map does not grow.
func (t *Throttle) sweepLocked(now time.Time) {
	for k, lim := range t.buckets {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(t.buckets, k)
		}
	}
	t.sweepLen = max(minSweepLen, 2*len(t.buckets))
	t.nextSweep = now.Add(sweepInterval)
}
