package connlimit

import "math"

// DefaultMaxConnections returns a cap for one listener's connections below
// the process's limit of open files (RLIMIT_NOFILE, soft limit), so that
// running out of descriptors refuses new connections in Accept, at once and
// counted, rather than failing accept(2) in a retry loop, the store's
// files, or the other listener. It keeps free the lesser of 1024
// descriptors and a tenth of the limit: room for the API listener and its
// clients, the SQLite database and its WAL, and logs. (Go raises the soft
// limit to the hard limit at start on Linux, so this is the limit in force.)
// It returns 0, no cap, when the limit is unknown or unlimited.
func DefaultMaxConnections() int {
	soft := OpenFileLimit()
	if soft == 0 {
		return 0
	}
	return soft - min(1024, soft/10)
}

// MaxConnectionsLeaving returns a cap for a listener's connections that
// leaves reserve descriptors of the open-file limit free for everything
// else (another listener's cap, the store, logs); at least 1, and 0, no
// cap, when the limit is unknown or unlimited.
func MaxConnectionsLeaving(reserve int) int {
	soft := OpenFileLimit()
	if soft == 0 {
		return 0
	}
	return max(soft-reserve, 1)
}

// OpenFileLimit returns the process's soft limit of open files, 0 when it
// is unknown or unlimited.
func OpenFileLimit() int {
	soft, ok := fileLimit()
	if !ok || soft == 0 || soft > math.MaxInt32 {
		return 0
	}
	return int(soft)
}
