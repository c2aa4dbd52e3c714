package mqtt

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetcert/fleetcert"
)

// Just-in-time registration rates. Each registration is a write
// transaction on the store (the one SQLite writer, shared with the API),
// and a device whose certificate is not registered yet is refused anyway
// and retries: so registrations are paced per CA and per account, and a
// device over the pace is refused like any not-yet-registered device
// (CONNACK not authorized), to be registered on a later attempt. AWS
// publishes no just-in-time registration rate; these defaults let a fleet's
// first boot through quickly (a burst of 100 per CA: a production line's
// batch; 10 a second after that, 36,000 an hour per CA) while a flood of
// new certificates under one CA, or under the many CAs of one account,
// cannot take the store's writes from the rest.
const (
	DefaultAutoRegistrationsPerSecondPerCA      = 10
	DefaultAutoRegistrationBurstPerCA           = 100
	DefaultAutoRegistrationsPerSecondPerAccount = 50
	DefaultAutoRegistrationBurstPerAccount      = 200
)

// maxLimiterKeys bounds the buckets kept per CA and per account. Only CAs
// registered in the store reach them (the handshake refuses others), so
// the bound is a safeguard: when full, idle buckets are dropped first.
const maxLimiterKeys = 10000

// keyedLimiter is a token bucket per key.
type keyedLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

// reserve takes a token of key's bucket at now, or reports false.
func (k *keyedLimiter) reserve(key string, now time.Time) (*rate.Reservation, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[key]
	if l == nil {
		if k.m == nil {
			k.m = map[string]*rate.Limiter{}
		}
		if len(k.m) >= maxLimiterKeys {
			for key, l := range k.m {
				if l.TokensAt(now) >= float64(k.burst) {
					delete(k.m, key) // full again: as good as new
				}
			}
			if len(k.m) >= maxLimiterKeys {
				return nil, false
			}
		}
		l = rate.NewLimiter(k.limit, k.burst)
		k.m[key] = l
	}
	r := l.ReserveN(now, 1)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return nil, false
	}
	return r, true
}

// autoRegistrationLimits paces just-in-time registration per CA (and
// region) and per account.
type autoRegistrationLimits struct {
	perCA, perAccount keyedLimiter

	mu        sync.Mutex
	caAccount map[string]string // CA key → the account it registered a device in
}

func (a *autoRegistrationLimits) init(l *limits) {
	a.perCA = keyedLimiter{limit: rate.Limit(l.autoRegPerCA), burst: l.autoRegBurstCA}
	a.perAccount = keyedLimiter{limit: rate.Limit(l.autoRegPerAccount), burst: l.autoRegBurstAcct}
}

func caKey(region, caID string) string { return region + "/" + caID }

// allow takes a registration from the CA's and the account's buckets, or
// returns the quota that refuses it. The account is the one the device
// named (TLS server name), else the one its CA last registered a device
// in; until then the CA's pace alone applies.
func (a *autoRegistrationLimits) allow(q fleetcert.DeviceQuery, l *limits, now time.Time) (string, quota, bool) {
	if len(q.Chain) < 2 {
		return q.AccountID, 0, true // not eligible: AutoRegisterDevice reads nothing
	}
	ca := caKey(q.Region, fleetcert.CertificateID(q.Chain[1].Raw))
	account := q.AccountID
	if account == "" {
		a.mu.Lock()
		account = a.caAccount[ca]
		a.mu.Unlock()
	}
	var caRes *rate.Reservation
	if l.autoRegPerCA > 0 {
		r, ok := a.perCA.reserve(ca, now)
		if !ok {
			return account, quotaAutoRegistrationsPerCA, false
		}
		caRes = r
	}
	if l.autoRegPerAccount > 0 && account != "" {
		if _, ok := a.perAccount.reserve(q.Region+"/"+account, now); !ok {
			if caRes != nil {
				caRes.CancelAt(now)
			}
			return account, quotaAutoRegistrationsPerAccount, false
		}
	}
	return account, 0, true
}

// learn records the account a CA registered a device in.
func (a *autoRegistrationLimits) learn(q fleetcert.DeviceQuery, reg *fleetcert.AutoRegistration) {
	ca := caKey(q.Region, reg.CA.ID)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.caAccount == nil {
		a.caAccount = map[string]string{}
	}
	if len(a.caAccount) >= maxLimiterKeys {
		clear(a.caAccount)
	}
	a.caAccount[ca] = reg.CA.AccountID
}

// throttleAutoRegistration reports whether the just-in-time registration
// of a device is over its pace, logging and counting it if so.
func (g *Gateway) throttleAutoRegistration(q fleetcert.DeviceQuery, certificateID, clientID, remote string) bool {
	account, quota, ok := g.autoReg.allow(q, &g.limits, time.Now())
	if ok {
		return false
	}
	g.refusedByQuota(quota, quotaSubject{certificateID: certificateID, clientID: clientID, remote: remote,
		scope: fleetcert.Scope{AccountID: account, Region: q.Region}})
	return true
}
