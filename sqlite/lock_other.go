//go:build !unix

package sqlite

import "os"

// lockFile opens the file at path without locking it: this platform has no
// flock(2), so Restore cannot tell whether a server has the store open and
// the operator must make sure none has.
func lockFile(path string, exclusive bool) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
