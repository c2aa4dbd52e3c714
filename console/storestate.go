package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetcert/fleetcert"
)

// StoreState implements LoginStore, FlashStore and ResultStore on the
// registry's store (its expiring state), so that every process sharing the
// store (the nodes of a cluster) serves every signed-in browser: a request
// sent to another node finds its session, its message and its results.
//
// Session tokens are stored hashed (SHA-256): whoever reads the database
// learns no cookie that would sign them in.
type StoreState struct {
	Store fleetcert.Store
	// MaxAge bounds how long a session is kept (the Handler's
	// MaxSessionAge); a session is also dropped once idle for the idle
	// timeout the Handler passes to Login.
	MaxAge time.Duration
	// Now is the clock of pruning (time.Now when nil).
	Now func() time.Time
}

// Kinds of the console's expiring values.
const (
	kindLogin  = "console.login"
	kindFlash  = "console.flash"
	kindResult = "console.result"
)

// lastSeenStep is how stale a stored session's LastSeen may be: a request
// rewrites the session only when LastSeen moved by more, rather than on
// every request.
const lastSeenStep = time.Minute

// storedLogin is a Login as stored: everything but the token.
type storedLogin struct {
	CSRF     string
	Scope    fleetcert.Scope
	KeyID    string
	Created  time.Time
	LastSeen time.Time
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *StoreState) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// loginExpires is when a stored session stops being valid: idle after its
// last use, or at its maximum age.
func loginExpires(l *storedLogin, idle, maxAge time.Duration) time.Time {
	end := l.Created.Add(maxAge)
	if idle > 0 && l.LastSeen.Add(idle).Before(end) {
		end = l.LastSeen.Add(idle)
	}
	return end
}

// CreateLogin implements LoginStore. Expired state of every session is
// pruned as sessions are made, so the table holds what is live.
func (s *StoreState) CreateLogin(ctx context.Context, l *Login) error {
	v, err := json.Marshal(storedLogin{CSRF: l.CSRF, Scope: l.Scope, KeyID: l.KeyID, Created: l.Created, LastSeen: l.LastSeen})
	if err != nil {
		return err
	}
	expires := l.Created.Add(s.MaxAge)
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		if _, err := tx.PruneExpiring(ctx, s.now()); err != nil {
			return err
		}
		return tx.PutExpiring(ctx, kindLogin, hashToken(l.Token), v, expires)
	})
}

// Login implements LoginStore.
func (s *StoreState) Login(ctx context.Context, token string, now time.Time, idle, maxAge time.Duration) (*Login, error) {
	key := hashToken(token)
	var sl storedLogin
	found, err := s.get(ctx, kindLogin, key, now, &sl)
	if err != nil || !found {
		return nil, err
	}
	if expired(&Login{Created: sl.Created, LastSeen: sl.LastSeen}, now, idle, maxAge) {
		return nil, s.DeleteLogin(ctx, token)
	}
	if now.Sub(sl.LastSeen) > lastSeenStep {
		sl.LastSeen = now
		if err := s.put(ctx, kindLogin, key, sl, loginExpires(&sl, idle, maxAge)); err != nil {
			return nil, err
		}
	}
	return &Login{Token: token, CSRF: sl.CSRF, Scope: sl.Scope, KeyID: sl.KeyID, Created: sl.Created, LastSeen: now}, nil
}

// SetRegion implements LoginStore.
func (s *StoreState) SetRegion(ctx context.Context, token, region string) error {
	key := hashToken(token)
	now := s.now()
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		v, err := tx.Expiring(ctx, kindLogin, key, now)
		if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
			return nil
		} else if err != nil {
			return err
		}
		var sl storedLogin
		if err := json.Unmarshal(v, &sl); err != nil {
			return fmt.Errorf("console session: %w", err)
		}
		sl.Scope.Region = region
		b, err := json.Marshal(sl)
		if err != nil {
			return err
		}
		return tx.PutExpiring(ctx, kindLogin, key, b, loginExpires(&sl, 0, s.MaxAge))
	})
}

// DeleteLogin implements LoginStore: the session and its pending message
// go; its results expire by themselves, and no other session can read them.
func (s *StoreState) DeleteLogin(ctx context.Context, token string) error {
	key := hashToken(token)
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		if err := tx.DeleteExpiring(ctx, kindLogin, key); err != nil {
			return err
		}
		return tx.DeleteExpiring(ctx, kindFlash, key)
	})
}

// SetFlash implements FlashStore.
func (s *StoreState) SetFlash(ctx context.Context, token string, f Flash) error {
	return s.put(ctx, kindFlash, hashToken(token), f, s.now().Add(s.MaxAge))
}

// PopFlash implements FlashStore.
func (s *StoreState) PopFlash(ctx context.Context, token string) (*Flash, error) {
	key := hashToken(token)
	now := s.now()
	var f *Flash
	err := s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		f = nil
		v, err := tx.Expiring(ctx, kindFlash, key, now)
		if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
			return nil
		} else if err != nil {
			return err
		}
		f = new(Flash)
		if err := json.Unmarshal(v, f); err != nil {
			return fmt.Errorf("console flash: %w", err)
		}
		return tx.DeleteExpiring(ctx, kindFlash, key)
	})
	return f, err
}

// PutResult implements ResultStore.
func (s *StoreState) PutResult(ctx context.Context, token, id string, data []byte, expires time.Time) error {
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		return tx.PutExpiring(ctx, kindResult, hashToken(token)+"/"+id, data, expires)
	})
}

// Result implements ResultStore.
func (s *StoreState) Result(ctx context.Context, token, id string, now time.Time) ([]byte, error) {
	var v []byte
	err := s.Store.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		v, err = tx.Expiring(ctx, kindResult, hashToken(token)+"/"+id, now)
		return err
	})
	if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
		return nil, nil
	}
	return v, err
}

// DeleteResult implements ResultStore.
func (s *StoreState) DeleteResult(ctx context.Context, token, id string) error {
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error {
		return tx.DeleteExpiring(ctx, kindResult, hashToken(token)+"/"+id)
	})
}

// get reads (kind, key) into v; false when there is none.
func (s *StoreState) get(ctx context.Context, kind, key string, now time.Time, v any) (bool, error) {
	var b []byte
	err := s.Store.View(ctx, func(tx fleetcert.Tx) error {
		var err error
		b, err = tx.Expiring(ctx, kind, key, now)
		return err
	})
	if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("console %s: %w", kind, err)
	}
	return true, nil
}

// put stores v under (kind, key) until expires.
func (s *StoreState) put(ctx context.Context, kind, key string, v any, expires time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Store.Update(ctx, func(tx fleetcert.Tx) error { return tx.PutExpiring(ctx, kind, key, b, expires) })
}
