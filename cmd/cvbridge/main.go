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
	"sort"
	"strings"
	"syscall"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/source"

	// Adapter kinds: one blank import each.
	_ "github.com/cvbridge/cvbridge/adapters/csvdrop"
	_ "github.com/cvbridge/cvbridge/adapters/moodle"
	_ "github.com/cvbridge/cvbridge/adapters/scorm"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon", cmdRun},
		{"check", "validate the configuration, open the store, reach each target", cmdCheck},
		{"outbox", "list, show, retry or cancel results (outbox list|show|retry|cancel)", cmdOutbox},
		{"target", "pause, resume or show targets (target pause|resume|status)", cmdTarget},
		{"inbox", "list, show or retry inbound enrolments (inbox list|show|retry)", cmdInbox},
		{"oauth", "list or revoke the enrolment link's OAuth grants (oauth list|revoke)", cmdOAuth},
		{"enrolments", "list whom the bridge enrolled or unenrolled, in which LMS connection", cmdEnrolments},
		{"forget", "erase a person's personal data from the store (forget PersoonExterneId)", cmdForget},
		{"render", "dry run: read a connection's input and print the XML it would send", cmdRender},
		{"sign", "print the X-WebHook-Signature of a file (for testing with Postman or curl)", cmdSign},
		{"sim", "run a local Coachview results simulator", cmdSim},
		{"migrate", "apply the outbox's schema migrations (when storage.migrate is false)", cmdMigrate},
		{"storage", "back up the SQLite outbox online (storage backup --to FILE), or move it into PostgreSQL (storage copy --from FILE)", cmdStorage},
		{"version", "print the version", func(_ context.Context, _ []string, out io.Writer) error {
			_, err := fmt.Fprintln(out, "cvbridge", version)
			return err
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cvbridge:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks a mistake in the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out)
		if len(args) == 0 {
			return usageError{"no command given"}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], out)
		}
	}
	usage(out)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func usage(out io.Writer) {
	fmt.Fprintln(out, "usage: cvbridge <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(out, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(out, "\n`cvbridge <command> -h` shows a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("cvbridge "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// defaultConfigPath is $CVBRIDGE_CONFIG, else the packaged location.
func defaultConfigPath() string {
	if p := os.Getenv("CVBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "/etc/cvbridge/cvbridge.yaml"
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfigPath(), "the main configuration file ($CVBRIDGE_CONFIG)")
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
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

// buildSource builds a connection's source through the adapter registry.
func buildSource(cfg *config.Config, conn *config.Connection, log *slog.Logger) (source.Source, error) {
	factory, ok := adapters.Lookup(conn.Type)
	if !ok {
		kinds := adapters.Kinds()
		sort.Strings(kinds)
		return nil, conn.Errorf("type", "unknown adapter type %q (available: %s)", conn.Type, strings.Join(kinds, ", "))
	}
	settings := &conn.Settings
	if settings.Kind == 0 {
		settings = nil
	}
	src, err := factory(adapters.Connection{
		Name:     conn.Name,
		File:     conn.File,
		BaseDir:  cfg.Dir(),
		Settings: settings,
		Location: cfg.Location,
		Logger:   log.With("connection", conn.Name),
	})
	if err != nil {
		return nil, conn.InSettings(err)
	}
	return src, nil
}
