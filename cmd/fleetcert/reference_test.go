package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// README's configuration reference is generated from the commands' flag
// sets, so it cannot drift from them: a flag added, removed or given
// another default or usage fails this test until README is regenerated
// with FLEETCERT_UPDATE_README=1 go test -run TestConfigurationReference ./cmd/fleetcert/
func TestConfigurationReference(t *testing.T) {
	const readme = "../../README.md"
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := []byte("<!-- configuration reference: begin -->\n"), []byte("<!-- configuration reference: end -->")
	i, j := bytes.Index(b, begin), bytes.Index(b, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", begin, end)
	}
	want := configurationReference(t)
	if got := string(b[i+len(begin) : j]); got != want {
		if os.Getenv("FLEETCERT_UPDATE_README") != "" {
			out := append(append(append([]byte{}, b[:i+len(begin)]...), want...), b[j:]...)
			if err := os.WriteFile(readme, out, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Log("README.md: configuration reference regenerated")
			return
		}
		t.Errorf("README.md's configuration reference differs from the flags (%s);\nregenerate it: FLEETCERT_UPDATE_README=1 go test -run TestConfigurationReference ./cmd/fleetcert/", firstDifference(got, want))
	}
}

// configurationReference is the reference's Markdown: every command and
// subcommand, each flag with its variable, default and usage.
func configurationReference(t *testing.T) string {
	var w strings.Builder
	for _, c := range commands {
		for _, args := range commandLines(t, c.name) {
			fs := flagSetOf(t, args)
			fmt.Fprintf(&w, "\n#### `fleetcert %s`\n\n", strings.Join(args, " "))
			if strings.TrimSpace(fs.about) != "" {
				fmt.Fprintf(&w, "%s\n\n", strings.Join(strings.Fields(fs.about), " "))
			}
			n := 0
			fs.VisitAll(func(*flag.Flag) { n++ })
			if n == 0 {
				w.WriteString("No flags.\n")
				continue
			}
			w.WriteString("| flag | environment variable | default | meaning |\n|---|---|---|---|\n")
			fs.VisitAll(func(f *flag.Flag) {
				kind, usage := flag.UnquoteUsage(f)
				name := strings.TrimSpace("--" + f.Name + " " + kind)
				def := "`" + f.DefValue + "`"
				if f.DefValue == "" {
					def = `""`
				}
				env := "(command line only)"
				if e := fs.envOf(f.Name); e != "" {
					env = "`" + e + "`"
				}
				fmt.Fprintf(&w, "| `%s` | %s | %s | %s |\n", name, env, def,
					strings.ReplaceAll(strings.Join(strings.Fields(usage), " "), "|", `\|`))
			})
			if args[0] == "serve" {
				w.WriteString(`
Read from the environment only (secrets stay off the command line):

| environment variable | meaning |
|---|---|
| ` + "`FLEETCERT_ACCESS_KEY_ID`, `FLEETCERT_SECRET_ACCESS_KEY`" + ` | the bootstrap access key, made at the first start (both or neither; without them one is generated and printed once) |
| ` + "`FLEETCERT_ACCOUNT_ID`" + ` | the bootstrap key's account (default ` + "`123456789012`" + `) |
`)
			}
		}
	}
	return w.String()
}

// commandLines returns the command lines, before their flags, of command
// name: itself, or each of its subcommands, as its --help lists them.
func commandLines(t *testing.T, name string) [][]string {
	var stdout, stderr bytes.Buffer
	var seen bool
	inspectFlagSet = func(*flagSet) { seen = true }
	defer func() { inspectFlagSet = nil }()
	if err := run(context.Background(), []string{name, "--help"}, &stdout, &stderr); err != flag.ErrHelp {
		t.Fatalf("fleetcert %s --help: %v %s", name, err, stderr.String())
	}
	if seen {
		return [][]string{{name}}
	}
	_, list, ok := strings.Cut(stdout.String(), "subcommands:\n")
	if !ok {
		t.Fatalf("fleetcert %s --help shows neither flags nor subcommands:\n%s", name, stdout.String())
	}
	var lines [][]string
	for _, m := range regexp.MustCompile(`(?m)^  (\S+) `).FindAllStringSubmatch(list, -1) {
		lines = append(lines, []string{name, m[1]})
	}
	return lines
}

// flagSetOf returns the flag set of the command line args.
func flagSetOf(t *testing.T, args []string) *flagSet {
	var fs *flagSet
	inspectFlagSet = func(f *flagSet) { fs = f }
	defer func() { inspectFlagSet = nil }()
	var out bytes.Buffer
	if err := run(context.Background(), append(args, "--help"), &out, &out); err != flag.ErrHelp || fs == nil {
		t.Fatalf("fleetcert %s --help: %v %s", strings.Join(args, " "), err, out.String())
	}
	return fs
}

// firstDifference names the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d of the section: README has %q, the flags give %q", i+1, gl, wl)
		}
	}
	return "no line differs"
}
