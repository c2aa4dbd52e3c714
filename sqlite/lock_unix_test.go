//go:build unix

package sqlite_test

import (
	"os"
	"syscall"
	"testing"
)

// holdExclusiveLock takes the lock Restore takes, and returns its release.
func holdExclusiveLock(tb testing.TB, path string) func() {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		tb.Fatal(err)
	}
	return func() { f.Close() }
}
