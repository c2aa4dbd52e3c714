package fleetcert

import (
	"slices"
	"sort"
	"sync"
)

// feedMemoSize is how many of the change feed's newest entries read a
// Registry keeps: about half a second of a bulk job's changes (~4 MiB).
const feedMemoSize = 16384

// feedMemo keeps the change-feed entries this process read last, so that
// the process's watchers — the gateway's, the describe cache's, the CRL
// follower's, the access keys' — read each entry from the store once
// rather than once each: during a bulk job on one node the four read every
// change, a fifth of the server's CPU (BENCHMARKS.md).
//
// The feed's commit-order promise (Store) makes the memo exact: once a
// read returned entries up to Seq s, every entry below s has committed or
// never will, so the entries a read returned are all the entries in its
// range, for good. The memo holds one such range, (lo, hi]; a read that
// extends it past hi appends, any other replaces it.
type feedMemo struct {
	mu      sync.Mutex
	lo      int64    // entries holds every entry with lo < Seq <= its last one's
	entries []Change // in Seq order
}

// take returns copies of up to limit entries after after, and the position
// to read the store from for more (the last entry held) when they are fewer
// than limit; ok is false when the memo does not hold the entries right
// after after.
func (m *feedMemo) take(after int64, limit int) (out []Change, next int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.entries)
	if n == 0 || after < m.lo || after >= m.entries[n-1].Seq {
		return nil, 0, false
	}
	held := m.entries[firstAfter(m.entries, after):]
	if len(held) > limit {
		held = held[:limit]
	}
	return slices.Clone(held), m.entries[n-1].Seq, true
}

// add records that the store returned chs as the entries after after.
func (m *feedMemo) add(after int64, chs []Change) {
	if len(chs) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.entries)
	switch {
	case n > 0 && after >= m.lo && after <= m.entries[n-1].Seq:
		// Extends (or overlaps) what is held: keep what is new.
		m.entries = append(m.entries, chs[firstAfter(chs, m.entries[n-1].Seq):]...)
	default:
		m.lo, m.entries = after, append(m.entries[:0:0], chs...)
	}
	if drop := len(m.entries) - feedMemoSize; drop > 0 {
		m.lo = m.entries[drop-1].Seq
		m.entries = m.entries[drop:]
	}
}

// firstAfter is the index of the first of chs (in Seq order) whose Seq is
// above seq.
func firstAfter(chs []Change, seq int64) int {
	return sort.Search(len(chs), func(i int) bool { return chs[i].Seq > seq })
}
