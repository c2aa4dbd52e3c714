package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// runVersion is "fleetcert version": the module version, the commit and
// the Go version, from the build information Go stamps into the binary.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "fleetcert version", "Prints fleetcert's version, the commit it was built from and the Go version.")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

// Set by the linker where the build has no VCS information to stamp, as in
// the Dockerfile's build stage (no .git in the context):
// -ldflags "-X main.stampedVersion=v1.2.3 -X main.stampedCommit=abc…".
var stampedVersion, stampedCommit string

// versionLine is e.g. "fleetcert v0.0.0-20261201101500-d850057abcde commit
// d850057abcdef… (modified) go1.26.8 linux/amd64".
func versionLine() string {
	version, commit, modified := "(unknown)", "(unknown)", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if stampedVersion != "" {
		version = stampedVersion
	}
	if stampedCommit != "" {
		commit = stampedCommit
	}
	line := fmt.Sprintf("fleetcert %s commit %s", version, commit)
	if modified {
		line += " (modified)"
	}
	return fmt.Sprintf("%s %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
