// Command cvbridge carries e-learning results from LMSs to Coachview and
// enrolments back. Run `cvbridge help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/source"

	// Adapter kinds: one blank import each.
	_ "github.com/cvbridge/cvbridge/adapters/csvdrop"
	_ "github.com/cvbridge/cvbridge/adapters/moodle"
	_ "github.com/cvbridge/cvbridge/adapters/scorm"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand, or a group of them (outbox, target, …).
type command struct {
	name string
	// args are the positional arguments of its usage line ("ID...");
	// empty when it takes none.
	args    string
	summary string
	// noFlags marks the commands without flags, whose usage line has no [flags].
	noFlags bool
	// run runs it; a group's run gets the sub-command's name first.
	run func(ctx context.Context, args []string, out io.Writer) error
	// subs are a group's commands.
	subs []command
}

func commands() []command {
	return []command{
		{name: "run", summary: "run the daemon", run: cmdRun},
		{name: "check", summary: "validate the configuration, adapters, schema and store; reach each target", run: cmdCheck},
		{name: "outbox", summary: "list, show, retry, cancel or confirm results", run: cmdOutbox, subs: []command{
			{name: "list", summary: "results, newest first"},
			{name: "show", args: "ID...", summary: "results with their XML and every attempt"},
			{name: "retry", args: "ID...", summary: "queue failed, probably-delivered or cancelled results again"},
			{name: "cancel", args: "ID...", summary: "cancel pending, failed, probably-delivered or waiting results"},
			{name: "confirm", args: "ID...", summary: "record probably-delivered results as delivered"},
		}},
		{name: "target", summary: "pause, resume or show the Coachview targets", run: cmdTarget, subs: []command{
			{name: "pause", args: "NAME...", summary: "stop a target's deliveries"},
			{name: "resume", args: "NAME...", summary: "restart a target's deliveries"},
			{name: "status", args: "[NAME...]", summary: "targets' state and queue, and the running daemon's circuits"},
		}},
		{name: "inbox", summary: "list, show or retry enrolment requests from Coachview", run: cmdInbox, subs: []command{
			{name: "list", summary: "enrolment requests, newest first"},
			{name: "show", args: "ID...", summary: "requests and what became of them"},
			{name: "retry", args: "ID...", summary: "carry out failed requests again"},
		}},
		{name: "oauth", summary: "list or revoke the enrolment link's OAuth grants", run: cmdOAuth, subs: []command{
			{name: "list", summary: "codes and tokens by grant (never the tokens themselves)"},
			{name: "revoke", summary: "revoke a client's (--client ID) or a grant's (--grant ID) codes and tokens"},
		}},
		{name: "enrolments", summary: "whom the bridge enrolled or unenrolled, in which LMS connection", run: cmdEnrolments},
		{name: "forget", args: "PERSOONEXTERNEID", summary: "erase a person's personal data from the store", run: cmdForget},
		{name: "render", summary: "dry run: read a connection's input and print the XML it would send", run: cmdRender},
		{name: "sign", args: "FILE|-", summary: "print the X-WebHook-Signature of a file (for testing with Postman or curl)", run: cmdSign},
		{name: "sim", summary: "run a local Coachview results simulator", run: cmdSim},
		{name: "migrate", summary: "apply the outbox's schema migrations (when storage.migrate is false)", run: cmdMigrate},
		{name: "storage", summary: "back up the SQLite outbox, or move it into PostgreSQL", run: cmdStorage, subs: []command{
			{name: "backup", summary: "an online, checked copy of the SQLite outbox (--to FILE)"},
			{name: "copy", summary: "move an SQLite outbox (--from FILE) into the configured PostgreSQL"},
		}},
		{name: "version", summary: "print the version (also --version)", noFlags: true, run: cmdVersion},
		{name: "help", args: "[COMMAND [SUBCOMMAND]]", summary: "list the commands, or show a command's usage and flags", noFlags: true, run: cmdHelp},
	}
}

// lookup finds the command at path: a command ("check"), a group
// ("outbox") or a group's command ("outbox", "show").
func lookup(path ...string) (command, bool) {
	if len(path) == 0 || len(path) > 2 {
		return command{}, false
	}
	cmds := commands()
	var found command
	for _, name := range path {
		i := slices.IndexFunc(cmds, func(c command) bool { return c.name == name })
		if i < 0 {
			return command{}, false
		}
		found, cmds = cmds[i], cmds[i].subs
	}
	return found, true
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout); err != nil {
		report(os.Stderr, os.Args[1:], err)
		os.Exit(exitCode(err))
	}
}

// usageError marks a mistake in the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// dispatch runs the command args names. Help, asked for in any way, is
// written to out and is not an error; a failed write to out is (see output).
func dispatch(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		args = []string{"help"}
	case "-version", "--version":
		args = []string{"version"}
	}
	c, ok := lookup(args[0])
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	o := &output{w: out}
	err := c.run(ctx, args[1:], o)
	var h helpRequest
	if errors.As(err, &h) {
		err = h.write(o)
	}
	if err == nil && o.err != nil {
		err = fmt.Errorf("writing the output: %w", o.err)
	}
	return err
}

// cmdVersion prints the version.
func cmdVersion(_ context.Context, args []string, out io.Writer) error {
	if err := parse(newFlags("version"), args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, "cvbridge", version)
	return err
}

// cmdHelp asks for the list of commands, or for a command's usage and
// flags: what `cvbridge outbox show --help` shows. A command with flags is
// asked with --help, which every command answers before it reads the
// configuration or does anything else.
func cmdHelp(ctx context.Context, args []string, out io.Writer) error {
	c, ok := lookup(args...)
	switch {
	case len(args) == 0:
		return helpRequest{}
	case !ok:
		return usageError{fmt.Sprintf("help: no command %q", strings.Join(args, " "))}
	case len(c.subs) > 0 || c.noFlags:
		return helpRequest{path: args}
	}
	top, _ := lookup(args[0])
	return top.run(ctx, append(slices.Clone(args[1:]), "--help"), out)
}

// defaultConfigPath is $CVBRIDGE_CONFIG, else the packaged location.
func defaultConfigPath() string {
	if p := os.Getenv("CVBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "/etc/cvbridge/cvbridge.yaml"
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfigPath(), "the main configuration `FILE` ($CVBRIDGE_CONFIG)")
}

// newLogger builds the daemon's logger from the configuration.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// buildSource builds a connection's source through the adapter registry,
// which decodes and validates the connection's settings, and refuses
// enrol_codes on a connection whose source was not declared able to enrol.
func buildSource(cfg *config.Config, conn *config.Connection, log *slog.Logger) (source.Built, error) {
	if !adapters.Known(conn.Type) {
		return source.Built{}, conn.Errorf("type", "unknown adapter type %q (available: %s)", conn.Type, strings.Join(adapters.Kinds(), ", "))
	}
	settings := &conn.Settings
	if settings.Kind == 0 {
		settings = nil
	}
	built, err := adapters.Build(conn.Type, adapters.Connection{
		Name:     conn.Name,
		File:     conn.File,
		BaseDir:  cfg.Dir(),
		Location: cfg.Location,
		Logger:   log.With("connection", conn.Name),
	}, settings)
	if err != nil {
		return source.Built{}, conn.InSettings(err)
	}
	if err := daemon.CheckEnrol(conn, built.Caps); err != nil {
		closeSource(built.Source)
		return source.Built{}, err
	}
	return built, nil
}
