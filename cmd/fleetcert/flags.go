package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// flagSet is one command's flags. Each flag can also be set in the
// environment as FLEETCERT_<FLAG> (--data-dir: FLEETCERT_DATA_DIR); the
// command line wins over the environment.
type flagSet struct {
	*flag.FlagSet
	synopsis string // "fleetcert serve [flags]"
	about    string

	// emptyMeans names the flags whose empty value means something other
	// than their default (--mqtt-addr "" disables the gateway). A variable
	// set but empty gives them that value; for a flag whose default is
	// itself empty, it is that default; for any other flag it is an error,
	// since an empty value would only be a mistake.
	emptyMeans map[string]bool

	// commandLineOnly names the flags not read from the environment:
	// keys delete's and rotate's --access-key-id, whose variable
	// FLEETCERT_ACCESS_KEY_ID names the bootstrap key, which a forgotten
	// flag must not delete.
	commandLineOnly map[string]bool
}

// envOf is the environment variable of flag name in fs, "" when the flag
// is read from the command line only.
func (fs *flagSet) envOf(name string) string {
	if fs.commandLineOnly[name] {
		return ""
	}
	return envName(name)
}

func newFlagSet(name, synopsis, about string) *flagSet {
	return &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), synopsis: synopsis, about: about}
}

// inspectFlagSet, when set, is given every flag set before it parses: the
// test of README's configuration reference walks each command's flags so.
var inspectFlagSet func(*flagSet)

// envName is the environment variable of flag name.
func envName(name string) string {
	return "FLEETCERT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parse sets the flags from args, then those not on the command line from
// the environment. --help writes the usage to stdout and returns
// flag.ErrHelp; a command line that cannot be run writes it to stderr and
// returns a usageError.
func (fs *flagSet) parse(args []string, stdout, stderr io.Writer) error {
	if inspectFlagSet != nil {
		inspectFlagSet(fs)
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.writeUsage(stdout)
		return flag.ErrHelp
	case err != nil:
		fs.writeUsage(stderr)
		return usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
	case fs.NArg() > 0:
		fs.writeUsage(stderr)
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if fs.commandLineOnly[f.Name] {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || onCommandLine[f.Name] {
			return
		}
		if v == "" && !fs.emptyMeans[f.Name] {
			if f.DefValue != "" {
				errs = append(errs, fmt.Errorf("%s is set but empty: unset it for --%s's default (%s), or give it a value",
					envName(f.Name), f.Name, f.DefValue))
			}
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// writeUsage writes the command's synopsis, description and flags, each
// with its environment variable and default.
func (fs *flagSet) writeUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", fs.synopsis)
	if fs.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(fs.about))
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(w, "\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  %s\n    \t%s\n    \t(", strings.TrimSpace("--"+f.Name+" "+kind), strings.ReplaceAll(usage, "\n", "\n    \t"))
		if env := fs.envOf(f.Name); env != "" {
			fmt.Fprintf(w, "env %s", env)
		} else {
			fmt.Fprint(w, "command line only")
		}
		if f.DefValue != "" {
			fmt.Fprintf(w, "; default %s", f.DefValue)
		}
		fmt.Fprint(w, ")\n")
	})
}
