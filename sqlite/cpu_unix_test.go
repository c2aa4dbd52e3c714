//go:build unix

package sqlite_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) this process has used: on
// a shared machine it varies far less with the other load than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
