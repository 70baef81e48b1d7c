package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// newFlags returns the flag set of the command at name ("outbox show"). It
// prints nothing itself: parse turns its errors into usage errors and a
// request for help into a helpRequest.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse reads args into fs. Flags may stand before or after the positional
// arguments (`target pause coachview --reason "…"`); -- ends them. A
// command whose usage line names no arguments refuses any.
func parse(fs *flag.FlagSet, args []string) error {
	path := strings.Fields(fs.Name())
	err := fs.Parse(interspersed(fs, args))
	switch {
	case errors.Is(err, flag.ErrHelp):
		return helpRequest{path: path, flags: fs}
	case err != nil:
		return usageError{fs.Name() + ": " + err.Error()}
	}
	if c, ok := lookup(path...); ok && c.args == "" && fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// interspersed moves the flags of args before its positional arguments, as
// the standard flag package reads them. A flag's value is the next argument
// unless the flag is a boolean or written --name=value; everything after
// -- is positional, and so is a lone - (standard input).
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(append(flags, "--"), positional...)
}

// isBoolFlag reports whether f takes no value (-offline, not -offline true).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// helpRequest asks dispatch to write a help on standard output: the list
// of commands (no path), a group's commands, or a command's usage and
// flags. Asking for help is not a mistake: it exits 0.
type helpRequest struct {
	path  []string
	flags *flag.FlagSet // the command's flags, when it has any
}

func (h helpRequest) Error() string { return "help for " + strings.Join(h.path, " ") }

// write writes the help h asks for to out.
func (h helpRequest) write(out io.Writer) error {
	var b strings.Builder
	c, _ := lookup(h.path...)
	switch {
	case len(h.path) == 0:
		writeCommands(&b)
	case len(c.subs) > 0:
		writeGroup(&b, h.path[0], c)
	default:
		fmt.Fprintf(&b, "usage: %s\n\n%s\n", usageLine(h.path, c), c.summary)
		if h.flags != nil {
			writeFlags(&b, h.flags)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// subcommand checks the command a group (outbox, target, …) is given as
// args[0]: help, -h or --help ask for the group's help; a missing or
// unknown command is a usage error.
func subcommand(group string, args []string) error {
	if len(args) == 0 {
		return usageError{group + ": no command given"}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return helpRequest{path: []string{group}}
	}
	if _, ok := lookup(group, args[0]); !ok {
		return usageError{fmt.Sprintf("%s: unknown command %q", group, args[0])}
	}
	return nil
}

// usageLine is a command's synopsis: cvbridge outbox show [flags] ID...
func usageLine(path []string, c command) string {
	line := "cvbridge " + strings.Join(path, " ")
	if !c.noFlags {
		line += " [flags]"
	}
	if c.args != "" {
		line += " " + c.args
	}
	return line
}

func writeCommands(w io.Writer) {
	_, _ = fmt.Fprint(w, "usage: cvbridge COMMAND [flags] [ARGUMENTS]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		summary := c.summary
		if len(c.subs) > 0 {
			names := make([]string, len(c.subs))
			for i, s := range c.subs {
				names[i] = s.name
			}
			summary += " (" + strings.Join(names, "|") + ")"
		}
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", c.name, summary)
	}
	_ = tw.Flush() // a strings.Builder does not fail
	_, _ = fmt.Fprint(w, "\nFlags may stand before or after the arguments; -- ends them.\n"+
		"`cvbridge help COMMAND` (or `cvbridge COMMAND --help`) shows a command's usage and flags.\n")
}

func writeGroup(w io.Writer, name string, group command) {
	_, _ = fmt.Fprintf(w, "usage: cvbridge %s COMMAND [flags] [ARGUMENTS]\n\n%s\n\ncommands:\n", name, group.summary)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range group.subs {
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", usageLine([]string{name, c.name}, c), c.summary)
	}
	_ = tw.Flush() // a strings.Builder does not fail
	_, _ = fmt.Fprintf(w, "\n`cvbridge help %s COMMAND` (or `cvbridge %s COMMAND --help`) shows a command's flags.\n", name, name)
}

// writeFlags lists fs's flags as they are typed: --name VALUE.
func writeFlags(w io.Writer, fs *flag.FlagSet) {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		switch arg {
		case "string", "value":
			arg = "VALUE"
		case "int", "int64", "uint", "uint64":
			arg = "N"
		case "float":
			arg = "NUMBER"
		case "duration":
			arg = "DURATION"
		}
		name := "--" + f.Name
		if arg != "" {
			name += " " + arg
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			format := " (default %s)"
			if g, ok := f.Value.(flag.Getter); ok {
				if _, isString := g.Get().(string); isString {
					format = " (default %q)"
				}
			}
			usage += fmt.Sprintf(format, f.DefValue)
		}
		lines = append(lines, fmt.Sprintf("  %s\t%s\n", name, usage))
	})
	if len(lines) == 0 {
		return
	}
	_, _ = fmt.Fprint(w, "\nflags:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range lines {
		_, _ = fmt.Fprint(tw, l)
	}
	_ = tw.Flush() // a strings.Builder does not fail
}

// report writes err to w for the operator, a line each, and after a
// mistake in the command line the usage of the command args name.
func report(w io.Writer, args []string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		_, _ = fmt.Fprintln(w, "cvbridge:", line)
	}
	var u usageError
	if !errors.As(err, &u) {
		return
	}
	var b strings.Builder
	path := commandPath(args)
	switch c, _ := lookup(path...); {
	case len(path) == 0:
		writeCommands(&b)
	case len(c.subs) > 0:
		writeGroup(&b, path[0], c)
	default:
		fmt.Fprintf(&b, "usage: %s\n`cvbridge help %s` shows its flags.\n", usageLine(path, c), strings.Join(path, " "))
	}
	_, _ = io.WriteString(w, b.String()) // nothing is left to tell a failing stderr
}

// commandPath is the command, and a group's command, that args begin with.
func commandPath(args []string) []string {
	for n := min(len(args), 2); n > 0; n-- {
		if _, ok := lookup(args[:n]...); ok {
			return args[:n]
		}
	}
	return nil
}
