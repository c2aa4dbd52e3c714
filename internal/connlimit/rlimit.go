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
	soft, ok := fileLimit()
	if !ok || soft == 0 || soft > math.MaxInt32 {
		return 0
	}
	reserve := min(1024, soft/10)
	return int(soft - reserve)
}
