package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0–100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func summary(d []time.Duration) string {
	slices.Sort(d)
	return fmt.Sprintf("p50=%s p90=%s p99=%s max=%s",
		percentile(d, 50).Round(10*time.Microsecond), percentile(d, 90).Round(10*time.Microsecond),
		percentile(d, 99).Round(10*time.Microsecond), percentile(d, 100).Round(10*time.Microsecond))
}

// rssMiB returns the resident set size of process pid in MiB, from
// /proc/PID/status.
func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
