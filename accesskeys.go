package fleetcert

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Access keys are made, listed, rotated and deleted by the operator
// (`fleetcert keys …`), never through the AWS API: AWS manages them in IAM,
// another service. A deleted key stops working at once: this process
// forgets it before DeleteAccessKey returns, and every other process
// sharing the store when its WatchAccessKeys reads the deletion from the
// change feed.

// deletedKeySetting is the setting that remembers a deleted access key, so
// that a bootstrap key given in the environment (EnsureAccessKey) is not
// stored again by the next start after it was deleted.
func deletedKeySetting(id string) string { return "deleted-access-key/" + id }

// keyListeners holds the functions told of deleted access keys.
type keyListeners struct {
	mu  sync.Mutex
	fns []func(id string)
}

func (l *keyListeners) forget(id string) {
	l.mu.Lock()
	fns := l.fns
	l.mu.Unlock()
	for _, fn := range fns {
		fn(id)
	}
}

// OnAccessKeyDeleted registers fn to be called with the id of each access
// key deleted: by this Registry, before DeleteAccessKey or RotateAccessKey
// returns, and by any other process, when WatchAccessKeys reads it. An id
// of "" means that deletions may have been missed (the change feed was
// pruned past the watcher's position): forget every key. fn must be quick
// and must not call back into the Registry.
func (r *Registry) OnAccessKeyDeleted(fn func(id string)) {
	r.keys.mu.Lock()
	r.keys.fns = append(r.keys.fns, fn)
	r.keys.mu.Unlock()
}

// DeleteAccessKey deletes the access key id and records the deletion in the
// change feed in the same transaction. Requests signed with it are refused
// from when it returns on this process, and on others once they read the
// feed.
//
// Errors: ResourceNotFoundException.
func (r *Registry) DeleteAccessKey(ctx context.Context, id string) error {
	err := r.update(ctx, "DeleteAccessKey", func(tx Tx) error { return r.deleteAccessKey(ctx, tx, id) })
	if err != nil {
		return keyNotFound(err, id)
	}
	r.keys.forget(id)
	return nil
}

func (r *Registry) deleteAccessKey(ctx context.Context, tx Tx, id string) error {
	k, err := tx.AccessKey(ctx, id)
	if err != nil {
		return err
	}
	if err := tx.DeleteAccessKey(ctx, id); err != nil {
		return err
	}
	// Key ids are random and never made twice, but a store restored from
	// a backup may hold a key deleted before: its mark is there already.
	if _, err := tx.Setting(ctx, deletedKeySetting(id)); ErrorCode(err) == EResourceNotFound {
		if err := tx.CreateSetting(ctx, deletedKeySetting(id), []byte(k.AccountID)); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return tx.AppendChange(ctx, &Change{
		Kind: ChangeAccessKeyDeleted, Scope: Scope{AccountID: k.AccountID},
		Resource: id, Time: r.now(),
	})
}

// RotateAccessKey makes a new access key for the account of the key id and
// returns it; unless keepOld, it deletes the key id in the same
// transaction (DeleteAccessKey's promise holds). With keepOld both keys work
// until the old one is deleted: IAM's rotation (create, switch the clients
// over, then delete), without IAM's inactive state.
//
// Errors: ResourceNotFoundException.
func (r *Registry) RotateAccessKey(ctx context.Context, id string, keepOld bool) (*AccessKey, error) {
	var k *AccessKey
	err := r.update(ctx, "RotateAccessKey", func(tx Tx) error {
		old, err := tx.AccessKey(ctx, id)
		if err != nil {
			return err
		}
		if k, err = NewAccessKey(old.AccountID, r.now()); err != nil {
			return err
		}
		if err := r.createAccessKeyIn(ctx, tx, k); err != nil {
			return err
		}
		if keepOld {
			return nil
		}
		return r.deleteAccessKey(ctx, tx, id)
	})
	if err != nil {
		return nil, keyNotFound(err, id)
	}
	if !keepOld {
		r.keys.forget(id)
	}
	return k, nil
}

// ListAccessKeys returns up to limit access keys, of accountID only when it
// is not empty, in id order after the id after, without their secrets, and
// the id to pass as after for the next page ("" after the last).
//
// Errors: InvalidRequestException for a malformed account id.
func (r *Registry) ListAccessKeys(ctx context.Context, accountID, after string, limit int) ([]*AccessKey, string, error) {
	if accountID != "" && !ValidAccountID(accountID) {
		return nil, "", Errorf(EInvalidRequest, "Account id %q is not 12 digits.", accountID)
	}
	if limit <= 0 {
		limit = 100
	}
	var keys []*AccessKey
	err := r.Store.View(ctx, func(tx Tx) error {
		var err error
		keys, err = tx.ListAccessKeys(ctx, AccessKeyQuery{AccountID: accountID, After: after, Limit: limit + 1})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list access keys: %w", err)
	}
	next := ""
	if len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1].ID
	}
	return keys, next, nil
}

// keyNotFound gives ResourceNotFoundException a message naming the key.
func keyNotFound(err error, id string) error {
	if ErrorCode(err) == EResourceNotFound {
		return Errorf(EResourceNotFound, "The access key %s does not exist.", id)
	}
	return err
}

// WatchAccessKeys reads the change feed's position, then follows the feed
// in the background until ctx ends, calling the functions given to
// OnAccessKeyDeleted for every access key deleted in any process: woken by
// this Registry's commits, by the store's notifications (ChangeNotifier)
// and every poll, reading the feed at most once per keyReadGap however
// many commits wake it. Call it before serving requests, so that no deletion
// committed after a key was first read is missed. The returned wait blocks
// until the watcher has stopped.
func (r *Registry) WatchAccessKeys(ctx context.Context, poll time.Duration) (wait func(), err error) {
	head, err := r.ChangesHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch access keys: %w", err)
	}
	notify, err := r.NotifyChanges(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch access keys: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			// Taken before reading, so that a commit during the read wakes
			// the next wait.
			signal := r.ChangeSignal()
			head = r.readKeyChanges(ctx, head)
			// Under a stream of writes every commit wakes the watcher, and
			// a read per commit cost a tenth of the server's CPU at 600
			// registrations/s (profile in BENCHMARKS.md): one read covers
			// what committed meanwhile. This process's own deletions do not
			// wait for it (DeleteAccessKey tells the listeners itself).
			select {
			case <-ctx.Done():
				return
			case <-time.After(keyReadGap):
			}
			select {
			case <-ctx.Done():
				return
			case <-signal:
			case _, ok := <-notify:
				if !ok {
					notify = nil
				}
			case <-tick.C:
			}
		}
	}()
	return func() { <-done }, nil
}

// keyReadGap is the least time between two reads of the change feed by
// WatchAccessKeys: the most another process's key deletion waits beyond
// its notification.
const keyReadGap = 50 * time.Millisecond

// readKeyChanges forgets the keys deleted after head and returns the new
// position. A store failure leaves the position for the next wake: cached
// keys then live at most their cache's time.
func (r *Registry) readKeyChanges(ctx context.Context, head int64) int64 {
	for {
		changes, err := r.Changes(ctx, head, 1000)
		if errors.Is(err, ErrChangesPruned) {
			h, err := r.ChangesHead(ctx)
			if err != nil {
				return head
			}
			r.keys.forget("")
			head = h
			continue
		}
		if err != nil {
			return head
		}
		for i := range changes {
			if changes[i].Kind == ChangeAccessKeyDeleted {
				r.keys.forget(changes[i].Resource)
			}
			head = changes[i].Seq
		}
		if len(changes) < 1000 {
			return head
		}
	}
}

// createAccessKeyIn stores k in tx and records it in the change feed (for
// the audit log: no watcher acts on a new key).
func (r *Registry) createAccessKeyIn(ctx context.Context, tx Tx, k *AccessKey) error {
	if err := tx.CreateAccessKey(ctx, k); err != nil {
		return err
	}
	return tx.AppendChange(ctx, &Change{
		Kind: ChangeAccessKeyCreated, Scope: Scope{AccountID: k.AccountID},
		Resource: k.ID, Time: r.now(),
	})
}
