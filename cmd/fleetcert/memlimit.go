package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime's soft memory limit (runtime/debug.SetMemoryLimit, the
// GOMEMLIMIT setting). Without one the collector lets the heap grow to twice
// what is live, counting goroutine stacks: an idle device keeps 38 KiB live
// (24 KiB of it the stacks of its two broker goroutines), and the process
// may then hold up to twice that. With a limit the collector runs sooner as
// the process nears it, and costs nothing while it is far below (see
// BENCHMARKS.md, "Device gateway").

// cgroupShare is the part of a container's memory limit given to the Go
// runtime when no limit is set: the rest is for what it does not manage
// (SQLite's page cache, the binary).
const cgroupShare = 0.9

// memoryLimit decides the limit: the value of --memory-limit (or
// FLEETCERT_MEMORY_LIMIT; "off" for none), else GOMEMLIMIT's, which the
// runtime has already applied, else cgroupShare of the container's memory
// limit read under cgroupRoot, if there is one. limit is 0 when there is
// none to set; source says where it came from.
func memoryLimit(value, cgroupRoot string) (limit int64, source string, err error) {
	switch {
	case value == "off":
		return 0, "off", nil
	case value != "":
		n, err := parseSize(value)
		if err != nil {
			return 0, "", fmt.Errorf("--memory-limit: %w", err)
		}
		return n, "--memory-limit", nil
	case os.Getenv("GOMEMLIMIT") != "":
		return 0, "GOMEMLIMIT", nil
	}
	if n, ok := cgroupMemoryLimit(cgroupRoot); ok {
		return int64(float64(n) * cgroupShare), "cgroup", nil
	}
	return 0, "none", nil
}

// applyMemoryLimit sets the limit value asks for (see memoryLimit) and logs
// it.
func applyMemoryLimit(value string, logger *slog.Logger) error {
	limit, source, err := memoryLimit(value, "/sys/fs/cgroup")
	if err != nil {
		return err
	}
	if source == "off" {
		debug.SetMemoryLimit(math.MaxInt64)
	} else if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	current := debug.SetMemoryLimit(-1)
	if current == math.MaxInt64 {
		logger.Info("memory limit", "limit", "none", "source", source)
	} else {
		logger.Info("memory limit", "limit", formatSize(current), "source", source)
	}
	return nil
}

// parseSize reads a size as GOMEMLIMIT does: a number of bytes, with an
// optional unit B, KiB, MiB, GiB or TiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q: want a positive number of bytes with an optional unit B, KiB, MiB, GiB or TiB (e.g. 900MiB)", s)
	}
	return n << shift, nil
}

func formatSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dB", n)
}

// cgroupMemoryLimit returns the memory limit of the process's container,
// from cgroup v2 (memory.max) or v1 (memory/memory.limit_in_bytes) under
// root. It reports false when neither sets one (v2 "max"; v1 shows no
// limit as a number near 2^63).
func cgroupMemoryLimit(root string) (int64, bool) {
	if b, err := os.ReadFile(filepath.Join(root, "memory.max")); err == nil {
		return positive(strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile(filepath.Join(root, "memory", "memory.limit_in_bytes")); err == nil {
		if n, ok := positive(strings.TrimSpace(string(b))); ok && n < 1<<62 {
			return n, true
		}
	}
	return 0, false
}

func positive(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}
