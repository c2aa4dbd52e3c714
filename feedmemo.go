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
// extends it past hi appends, any other replaces it. A store that reports
// its commits (CommitReporter) adds each of this process's transactions'
// entries as it commits, before anyone reads them.
//
// The memo also knows when its range ends at the feed's head, as of a
// commit stamp (CommitStamper): a read that returned fewer entries than
// asked for, with the stamp taken before it, or a commit the store saw no
// other commit follow. While the store's stamp is unchanged nothing has
// committed since, so a watcher that has read up to hi has read the feed,
// and the memo answers without a read: under a load of registrations,
// that read of nothing new after each commit cost as much as reading the
// commit's entries.
type feedMemo struct {
	mu      sync.Mutex
	lo      int64    // entries holds every entry with lo < Seq <= its last one's
	entries []Change // in Seq order
	atHead  bool     // the last entry was the feed's head when the store's stamp was stamp
	stamp   uint64
}

// take returns copies of up to limit entries after after, and the position
// to read the store from for more (the last entry held) when they are fewer
// than limit; ok is false when the memo does not hold the entries right
// after after. all is true when there are no more: the memo ends at the
// feed's head as of a stamp that current, the store's stamp now, still
// returns.
func (m *feedMemo) take(after int64, limit int, current func() (uint64, bool)) (out []Change, next int64, ok, all bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.entries)
	if n == 0 || after < m.lo || after > m.entries[n-1].Seq {
		return nil, 0, false, false
	}
	held := m.entries[firstAfter(m.entries, after):]
	if len(held) > limit {
		return slices.Clone(held[:limit]), m.entries[n-1].Seq, true, false
	}
	if m.atHead {
		stamp, ok := current()
		all = ok && stamp == m.stamp
	}
	if len(held) > 0 {
		out = slices.Clone(held)
	}
	return out, m.entries[n-1].Seq, true, all
}

// forget drops every entry held: the store pruned some of them, which a
// watcher behind must learn from the store (ErrChangesPruned).
func (m *feedMemo) forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lo, m.entries, m.atHead = 0, nil, false
}

// add records that the store returned chs as the entries after after, and
// with atHead that they end at the feed's head as of stamp.
func (m *feedMemo) add(after int64, chs []Change, atHead bool, stamp uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	end := after
	if len(chs) > 0 {
		end = chs[len(chs)-1].Seq
	}
	n := len(m.entries)
	switch {
	case n > 0 && after >= m.lo && after <= m.entries[n-1].Seq:
		// Extends (or overlaps, or meets) what is held: keep what is new.
		if end > m.entries[n-1].Seq {
			m.entries = append(m.entries, chs[firstAfter(chs, m.entries[n-1].Seq):]...)
			m.atHead = false
		}
	case len(chs) == 0:
		return
	default:
		m.lo, m.entries, m.atHead = after, append(m.entries[:0:0], chs...), false
	}
	if atHead && end == m.entries[len(m.entries)-1].Seq {
		m.atHead, m.stamp = true, stamp
	}
	if drop := len(m.entries) - feedMemoSize; drop > 0 {
		m.lo = m.entries[drop-1].Seq
		m.entries = m.entries[drop:]
	}
}

// commit adds a transaction's entries as its store reported them
// (CommitReporter).
func (m *feedMemo) commit(c Commit) {
	m.add(c.After, c.Changes, c.Last, c.Stamp)
}

// firstAfter is the index of the first of chs (in Seq order) whose Seq is
// above seq.
func firstAfter(chs []Change, seq int64) int {
	return sort.Search(len(chs), func(i int) bool { return chs[i].Seq > seq })
}
