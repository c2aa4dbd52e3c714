//go:build !unix

package connlimit

// fileLimit is unknown here.
func fileLimit() (uint64, bool) { return 0, false }
