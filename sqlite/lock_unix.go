//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes a lock on the file at path, creating it: shared for a
// process that uses the store, exclusive for Restore, which replaces it.
// It does not wait: a lock held the other way answers errLocked. Closing the
// file releases the lock, as does the end of the process, however it ends.
//
// The lock is flock(2) on a file of its own: SQLite's own locks are POSIX
// byte-range locks on the database file, which say nothing about a process
// that has the file open between transactions.
func lockFile(path string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if !exclusive && (errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP)) {
		// A file system without flock (some network file systems): the
		// store opens as before, and Restore, which cannot lock either,
		// refuses.
		return f, nil
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
