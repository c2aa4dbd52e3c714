package main

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1048576", 1 << 20},
		{"512B", 512},
		{"64KiB", 64 << 10},
		{"900MiB", 900 << 20},
		{"1GiB", 1 << 30},
		{"2TiB", 2 << 40},
		{"", 0},
		{"0", 0},
		{"-1GiB", 0},
		{"1.5GiB", 0},
		{"1GB", 0}, // GOMEMLIMIT's units are binary: GiB, not GB
		{"MiB", 0},
		{"9999999TiB", 0},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  int64 // 0: no limit
	}{
		{"v2 limit", map[string]string{"memory.max": "1073741824\n"}, 1 << 30},
		{"v2 unlimited", map[string]string{"memory.max": "max\n"}, 0},
		{"v1 limit", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, 512 << 20},
		{"v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"none", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
				if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := cgroupMemoryLimit(root)
			if ok != (tt.want != 0) || got != tt.want {
				t.Errorf("cgroupMemoryLimit = %d, %v; want %d", got, ok, tt.want)
			}
		})
	}
}

func TestMemoryLimitPrecedence(t *testing.T) {
	limited := t.TempDir()
	os.WriteFile(filepath.Join(limited, "memory.max"), []byte("1000000000\n"), 0o644)
	unlimited := t.TempDir()
	tests := []struct {
		name, value, gomemlimit, cgroup string
		want                            int64
		source                          string
	}{
		{"flag", "700MiB", "", limited, 700 << 20, "--memory-limit"},
		{"flag over GOMEMLIMIT", "700MiB", "1GiB", limited, 700 << 20, "--memory-limit"},
		{"off", "off", "", limited, 0, "off"},
		{"GOMEMLIMIT, applied by the runtime", "", "1GiB", limited, 0, "GOMEMLIMIT"},
		{"container", "", "", limited, 900000000, "cgroup"},
		{"nothing", "", "", unlimited, 0, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			got, source, err := memoryLimit(tt.value, tt.cgroup)
			if err != nil || got != tt.want || source != tt.source {
				t.Errorf("memoryLimit = %d, %s, %v; want %d, %s", got, source, err, tt.want, tt.source)
			}
		})
	}
	if _, _, err := memoryLimit("a lot", unlimited); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("memoryLimit(a lot): %v, want an error naming the flag", err)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	var log bytes.Buffer
	if err := applyMemoryLimit("900MiB", slog.New(slog.NewTextHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 900<<20 {
		t.Errorf("runtime memory limit %d, want %d", got, 900<<20)
	}
	if !strings.Contains(log.String(), "limit=900MiB source=--memory-limit") {
		t.Errorf("log %q", log.String())
	}
	if err := applyMemoryLimit("off", slog.New(slog.NewTextHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("runtime memory limit %d after off, want none", got)
	}
}
