package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// cmdCheck is the configuration linter: it loads everything the daemon
// would, builds each adapter, opens the store and asks each target URL
// whether it is there, without sending a result.
func cmdCheck(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("check")
	cfgPath := configFlag(fs)
	offline := fs.Bool("offline", false, "do not contact the targets or the LMSs")
	if err := parse(fs, args); err != nil {
		return err
	}
	// Every problem is reported, not only the first: those of each file,
	// then those of the adapters, built for every LMS file that was read.
	cfg, err := config.Inspect(*cfgPath)
	if cfg == nil {
		return err
	}
	var problems config.Errors
	problems.Add(err)
	if err == nil {
		_, _ = fmt.Fprintf(out, "ok   configuration %s (%d targets, %d LMS connections, time zone %s)\n",
			cfg.File, len(cfg.Targets), len(cfg.Connections), cfg.TimeZone)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	owners := daemon.Owners{}
	for _, conn := range cfg.Connections {
		built, err := buildSource(cfg, conn, log)
		if err == nil {
			if err = owners.Claim(conn, built); err != nil {
				closeSource(built.Source)
			}
		}
		var located *config.Error
		switch {
		case err == nil && !slices.ContainsFunc(problems, func(p *config.Error) bool { return p.File == conn.File }):
			err = checkSource(ctx, built, conn, out, *offline)
		case err == nil:
			closeSource(built.Source) // its file has a mistake: it is not "ok"
		case !errors.As(err, &located):
			err = fmt.Errorf("connection %s (%s): %w", conn.Name, conn.File, err)
		}
		problems.Add(err)
	}
	if len(problems) > 0 {
		return problems.Sorted()
	}
	// Assembling the daemon loads the schema, opens the store and puts
	// together what only it does: the inbound routes, OAuth clients,
	// webhooks and the dashboard. Nothing is started.
	d, err := openDaemon(ctx, cfg, log, nil, nil, nil)
	if err != nil {
		return err
	}
	orphans, err := daemon.UnconfiguredTargets(ctx, d.Store(), cfg)
	if err != nil {
		_ = d.Close()
		return err
	}
	counts, err := d.Store().Counts(ctx, "")
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(out, "ok   XSD schema", orDefault(cfg.Results.XSDFile, "(bundled)"))
	_, _ = fmt.Fprintf(out, "ok   store %s (%d pending, %d failed)\n", storeName(cfg), counts["pending"], counts["failed"])
	for _, target := range slices.Sorted(maps.Keys(orphans)) {
		_, _ = fmt.Fprintf(out, "WARN store: %d result(s) wait for target %s, which is not configured (renamed or removed?): they are not sent; configure it again, or cancel them\n",
			orphans[target], target)
	}
	if cfg.Public.Enabled() {
		_, _ = fmt.Fprintf(out, "ok   inbound on %s (%d webhooks, %d OAuth clients)\n", cfg.Public.Addr, len(cfg.Inbound.Webhooks), len(cfg.Inbound.OAuth.Clients))
	}
	if *offline {
		return nil
	}
	var failed int
	for _, name := range cfg.TargetNames() {
		msg, err := probeTarget(ctx, cfg.Targets[name])
		if err != nil {
			failed++
			_, _ = fmt.Fprintf(out, "FAIL target %s: %v\n", name, err)
			continue
		}
		_, _ = fmt.Fprintf(out, "ok   target %s: %s\n", name, msg)
	}
	if failed > 0 {
		return fmt.Errorf("%d target(s) not reachable", failed)
	}
	return nil
}

// checkSource reports a connection, asking the source to check its link
// to the LMS when it can and the check is not offline.
func checkSource(ctx context.Context, built source.Built, conn *config.Connection, out io.Writer, offline bool) error {
	defer closeSource(built.Source)
	if checker := built.Checker(); checker != nil && !offline {
		notes, err := checker.Check(ctx)
		if err != nil {
			return fmt.Errorf("connection %s (%s): %w", conn.Name, conn.File, err)
		}
		for _, n := range notes {
			_, _ = fmt.Fprintf(out, "note connection %s: %s\n", conn.Name, n)
		}
	}
	_, _ = fmt.Fprintf(out, "ok   connection %s (%s → %s, schedule %q)\n", conn.Name, conn.Type, conn.Target, conn.Schedule)
	return nil
}

// closeSource releases what a source holds, if anything.
func closeSource(src source.Source) {
	if c, ok := src.(io.Closer); ok {
		_ = c.Close() // it was only built to be checked
	}
}

// probeTarget sends a GET to the results URL. Coachview answers 405 to
// anything but POST, which proves the endpoint is there without
// registering a result.
func probeTarget(ctx context.Context, t *config.Target) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its URL may carry the plugin key
		}
		return "", fmt.Errorf("unreachable (%s): %w", kit.ShowURL(t.URL), err)
	}
	_ = resp.Body.Close() // only the status is wanted
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return fmt.Sprintf("reachable, answers 405 to GET as Coachview does (%s)", took), nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "", fmt.Errorf("redirects (%d to %s): use the final URL", resp.StatusCode, kit.ShowURL(resp.Header.Get("Location")))
	default:
		return fmt.Sprintf("reachable, answered %d to GET (%s)", resp.StatusCode, took), nil
	}
}

// storeName names the configured store without its DSN, which may hold a password.
func storeName(cfg *config.Config) string {
	if cfg.Storage.Driver == "sqlite" {
		return cfg.Storage.Path
	}
	return cfg.Storage.Driver
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
