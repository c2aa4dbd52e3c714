//go:build !unix

package sqlite_test

import "time"

// processCPU is unknown here: zero.
func processCPU() time.Duration { return 0 }
