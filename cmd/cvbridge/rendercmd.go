package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// cmdRender runs one poll of a connection against a sink that prints the
// XML each completion would become and commits nothing.
func cmdRender(ctx context.Context, args []string, out io.Writer) (cmdErr error) {
	fs := newFlags("render")
	cfgPath := configFlag(fs)
	connName := fs.String("connection", "", "the LMS connection to read (required when there are several)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	conn, err := pickConnection(cfg, *connName)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	built, err := buildSource(cfg, conn, log)
	if err != nil {
		return err
	}
	if c, ok := built.Source.(io.Closer); ok {
		defer closeInto(&cmdErr, c)
	}
	if !built.Caps.DryRun {
		return fmt.Errorf("connection %s: adapter %s cannot be polled without changing anything, so render cannot show it", conn.Name, conn.Type)
	}
	src := built.Source
	schema, err := daemon.LoadSchema(cfg)
	if err != nil {
		return err
	}
	defer schema.Close()
	renderer, err := result.NewRenderer(cfg.ResultOptions(conn), schema)
	if err != nil {
		return err
	}
	store, err := daemon.OpenStore(ctx, cfg, clock.System{})
	if err != nil {
		return err
	}
	defer closeInto(&cmdErr, store)
	sink := &dryRunSink{store: store, connection: conn.Name, renderer: renderer, out: out, log: log}
	if err := src.Poll(ctx, sink); err != nil && !errors.Is(err, source.ErrDryRun) {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d result(s) would be sent, %d rejected; nothing was stored or moved\n", sink.ok, sink.rejected)
	return nil
}

func pickConnection(cfg *config.Config, name string) (*config.Connection, error) {
	if name == "" {
		if len(cfg.Connections) != 1 {
			return nil, usageError{fmt.Sprintf("--connection is required: %d connections are configured", len(cfg.Connections))}
		}
		return cfg.Connections[0], nil
	}
	conn, ok := cfg.Connection(name)
	if !ok {
		return nil, usageError{fmt.Sprintf("no LMS connection called %q", name)}
	}
	return conn, nil
}

// dryRunSink prints instead of committing. It reads the cursor and marks
// from the real store, so it shows what the next real poll would send.
type dryRunSink struct {
	store        outbox.Store
	connection   string
	renderer     *result.Renderer
	out          io.Writer
	log          *slog.Logger
	ok, rejected int
}

func (s *dryRunSink) Cursor(ctx context.Context) ([]byte, error) {
	return s.store.Cursor(ctx, s.connection)
}

func (s *dryRunSink) Seen(ctx context.Context, mark string) (bool, error) {
	return s.store.Marked(ctx, s.connection, mark)
}

// Enrolments offers the connection's enrolment list from the real store,
// as the daemon's sink does, so a source that follows it (Moodle's
// web-service mode) previews what its next real poll would read.
func (s *dryRunSink) Enrolments(ctx context.Context) ([]source.Enrolled, error) {
	list, _ := s.store.(inboundstore.EnrolmentList)
	return intake.Enrolments(ctx, list, s.connection)
}

func (s *dryRunSink) Commit(_ context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	err := fill(func(c result.Completion) error {
		body, err := s.renderer.Render(c)
		if err != nil {
			s.rejected++
			_, _ = fmt.Fprintf(s.out, "<!-- %s: REJECTED: %v -->\n", c.SourceRef, err)
			if cp.Rejected != nil {
				return cp.Rejected(c.SourceRef, err.Error())
			}
			return nil
		}
		s.ok++
		_, _ = fmt.Fprintf(s.out, "<!-- %s -->\n%s", c.SourceRef, body)
		return nil
	})
	if err != nil {
		return source.Summary{}, err
	}
	return source.Summary{}, source.ErrDryRun
}

// DryRun marks the sink as a dry run, so sources change nothing.
func (s *dryRunSink) DryRun() bool { return true }

// ReportProblems shows input the source could not use as a comment among
// the rendered messages, where the daemon would count it.
func (s *dryRunSink) ReportProblems(p source.Problems) {
	var parts []string
	if p.BadRows > 0 {
		parts = append(parts, fmt.Sprintf("%d bad rows skipped", p.BadRows))
	}
	if p.FailedFiles > 0 {
		parts = append(parts, fmt.Sprintf("%d files set aside", p.FailedFiles))
	}
	for _, reason := range slices.Sorted(maps.Keys(p.Skipped)) {
		parts = append(parts, fmt.Sprintf("%d %s", p.Skipped[reason], reason))
	}
	summary := strings.Join(parts, ", ")
	if p.Last != "" && summary != "" {
		summary += ": "
	}
	_, _ = fmt.Fprintf(s.out, "<!-- PROBLEMS: %s%s -->\n", summary, p.Last)
}
