//go:build unix

package connlimit

import "syscall"

// fileLimit returns the soft limit of open files (RLIMIT_NOFILE).
func fileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
