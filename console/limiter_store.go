package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/fleetcert/fleetcert"
)

// kindSignIn is the expiring state of the sign-in limiter in a store.
const kindSignIn = "console.signin"

// reserveSignIn counts a sign-in attempt with keyID from addr against the
// limits, as signInLimiter.reserve does, and returns the function that
// gives it back. With SignInLimitStore set, the counts are kept in that
// store, so that every node of a cluster holds a client to the same
// limits; windows then start at multiples of the window's length.
func (h *Handler) reserveSignIn(ctx context.Context, keyID string, addr netip.Addr, now time.Time, lim limits) (release func(), wait time.Duration, ok bool, err error) {
	if h.SignInLimitStore == nil {
		r, wait, ok := h.limiter.reserve(keyID, addr, now, lim)
		return func() {
			if r != nil {
				h.limiter.release(r)
			}
		}, wait, ok, nil
	}
	s := h.SignInLimitStore
	start := now.Truncate(lim.window)
	expires := start.Add(lim.window)
	network := limitNetwork(addr).String()
	sum := sha256.Sum256([]byte(keyID))
	win := strconv.FormatInt(start.UnixNano(), 10)
	keyKey := "key/" + hex.EncodeToString(sum[:]) + "/" + network + "/" + win
	addrKey := "addr/" + network + "/" + win
	count := func(tx fleetcert.Tx, key string) (int, error) {
		v, err := tx.Expiring(ctx, kindSignIn, key, now)
		if fleetcert.ErrorCode(err) == fleetcert.EResourceNotFound {
			return 0, nil
		} else if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return 0, fmt.Errorf("sign-in count %s: %w", key, err)
		}
		return n, nil
	}
	add := func(tx fleetcert.Tx, key string, delta int) error {
		n, err := count(tx, key)
		if err != nil {
			return err
		}
		return tx.PutExpiring(ctx, kindSignIn, key, []byte(strconv.Itoa(max(n+delta, 0))), expires)
	}
	// One transaction reads and counts both: attempts on several nodes at
	// once cannot overshoot a limit between check and record.
	err = s.Update(ctx, func(tx fleetcert.Tx) error {
		ok = false
		kn, err := count(tx, keyKey)
		if err != nil {
			return err
		}
		an, err := count(tx, addrKey)
		if err != nil {
			return err
		}
		if kn >= lim.perKey || an >= lim.perAddr {
			return nil
		}
		ok = true
		if err := add(tx, keyKey, 1); err != nil {
			return err
		}
		return add(tx, addrKey, 1)
	})
	if err != nil || !ok {
		return nil, expires.Sub(now), false, err
	}
	return func() {
		// Given back after the request's own work; a failure to do so
		// leaves one attempt counted until the window ends.
		err := s.Update(context.WithoutCancel(ctx), func(tx fleetcert.Tx) error {
			if err := add(tx, keyKey, -1); err != nil {
				return err
			}
			return add(tx, addrKey, -1)
		})
		if err != nil {
			h.Logger.Error("console: give back a sign-in attempt", "err", err)
		}
	}, 0, true, nil
}
