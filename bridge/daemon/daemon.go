// Package daemon assembles a running cvbridge from its configuration: the
// outbox store, the XSD schema, one dispatcher per Coachview target, and one
// scheduled job per LMS connection. It owns start-up order, the retention
// purge and shutdown; the parts it wires own everything else.
//
// Sources are built by the caller (cmd/cvbridge, through the adapter
// registry), so the core never imports an adapter.
package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/cvbridge/cvbridge/bridge/admin"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/metrics"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// SourceBuilder builds the source of one LMS connection, with the
// capabilities its adapter declared for it.
type SourceBuilder func(cfg *config.Config, conn *config.Connection) (source.Built, error)

// Options are the daemon's injectable parts; zero values mean the real ones.
type Options struct {
	Logger *slog.Logger
	Clock  clock.Clock
	// PurgeEvery is how often delivered history older than the retention is
	// purged (1h).
	PurgeEvery time.Duration
	// Version is shown on the dashboard and in cvbridge_build_info.
	Version string
	// Store, when set, is the open outbox the daemon uses instead of opening
	// its own; Close leaves it open. A process keeps one store across
	// reloads: on SQLite, closing a second handle of the database file would
	// drop the locks the first one holds.
	Store outbox.Store
	// Metrics, when set, is where the daemon reports and what its
	// /metrics serves: the process keeps one across reloads, so counters
	// carry over. Run points its outbox gauges at this daemon's store and
	// targets. Nil: the daemon makes its own.
	Metrics *metrics.Metrics
}

// Daemon is an assembled cvbridge, ready to Run.
type Daemon struct {
	cfg         *config.Config
	store       outbox.Store
	ownsStore   bool // opened by Open, so closed by Close
	schema      *xsdschema.Schema
	dispatchers map[string]*delivery.Dispatcher
	runner      *intake.Runner
	sources     []source.Source
	log         *slog.Logger
	clock       clock.Clock
	purgeEvery  time.Duration
	owner       string
	metrics     *metrics.Metrics
	admin       http.Handler
	// Inbound enrolments, when the public listener is configured.
	public     http.Handler
	worker     *inbound.Worker
	enrolments admin.Enrolments
}

// Open assembles the daemon. On error everything opened so far is closed.
func Open(ctx context.Context, cfg *config.Config, build SourceBuilder, opts Options) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: opts.Logger, clock: opts.Clock, purgeEvery: opts.PurgeEvery,
		dispatchers: map[string]*delivery.Dispatcher{}, owner: instanceID()}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.clock == nil {
		d.clock = clock.System{}
	}
	if d.purgeEvery <= 0 {
		d.purgeEvery = time.Hour
	}
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()
	if d.store = opts.Store; d.store == nil {
		if d.store, err = OpenStore(ctx, cfg, d.clock); err != nil {
			return nil, err
		}
		d.ownsStore = true
	}
	if d.schema, err = LoadSchema(cfg); err != nil {
		return nil, err
	}
	d.metrics = opts.Metrics
	if d.metrics == nil {
		d.metrics = metrics.New(metrics.Options{Queue: d.store, Targets: cfg.TargetNames, Clock: d.clock, Version: opts.Version, Logger: d.log})
	}
	for _, name := range cfg.TargetNames() {
		disp, err := NewDispatcher(cfg.Targets[name], d.store, delivery.Options{
			Clock: d.clock, Logger: d.log, Owner: d.owner, Version: opts.Version, Observe: d.metrics.Delivered,
			Circuit: d.metrics.Circuit})
		if err != nil {
			return nil, err
		}
		d.dispatchers[name] = disp
	}
	if orphans, err := UnconfiguredTargets(ctx, d.store, cfg); err != nil {
		d.log.Warn("cannot tell whether results wait for a target no longer configured", "error", err)
	} else {
		for target, n := range orphans {
			d.log.Error("results wait for a target that is not configured (renamed or removed?): they are not sent; configure the target again, or cancel them (cvbridge outbox list --target …)",
				"target", target, "results", n)
		}
	}
	var jobs []intake.Job
	byName := map[string]source.Built{}
	owners := Owners{}
	for _, conn := range cfg.Connections {
		built, err := build(cfg, conn)
		if err != nil {
			return nil, err
		}
		src := built.Source
		d.sources = append(d.sources, src) // closed with d, should Open fail
		if err := owners.Claim(conn, built); err != nil {
			return nil, err
		}
		byName[conn.Name] = built
		renderer, err := result.NewRenderer(cfg.ResultOptions(conn), d.schema)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", conn.File, err)
		}
		sink := intake.NewSink(d.store, renderer, intake.SinkConfig{
			Connection: conn.Name,
			Target:     conn.Target,
			Policy:     outbox.EnqueuePolicy{ReplacePending: conn.ReplacesPending()},
			Logger:     d.log,
			Queued:     d.dispatchers[conn.Target].Wake,
			Committed:  d.metrics.Committed,
		})
		jobs = append(jobs, intake.Job{Name: conn.Name, Source: src, Watcher: built.Watcher(), Sink: sink, Schedule: conn.Cron,
			Polled: d.metrics.Polled, Problems: d.metrics.Problems})
	}
	ropts := intake.RunnerOptions{Logger: d.log, Clock: d.clock, Owner: d.owner, Leaser: d.store}
	d.runner = intake.NewRunner(jobs, ropts)
	if cfg.Public.Enabled() {
		if err := d.openInbound(cfg, byName); err != nil {
			return nil, err
		}
	}
	if d.admin, err = admin.New(admin.Options{
		Store:        d.store,
		Targets:      cfg.TargetNames,
		Connections:  d.runner.Statuses,
		Circuit:      d.circuit,
		Failing:      d.failing,
		Enrolments:   d.enrolments,
		Metrics:      d.metrics.Handler(),
		Requeued:     d.wake,
		Clock:        d.clock,
		Location:     cfg.Location,
		User:         cfg.Admin.User,
		PasswordHash: cfg.AdminPasswordHash,
		Logger:       d.log,
		Version:      opts.Version,
	}); err != nil {
		return nil, err
	}
	return d, nil
}

// PublicHandler serves the public listener: the OAuth endpoints, the
// enrolment link and the webhooks. It is nil when public.addr is not set.
func (d *Daemon) PublicHandler() http.Handler { return d.public }

// AdminHandler serves the admin listener: /healthz, /readyz, /metrics and
// the dashboard.
func (d *Daemon) AdminHandler() http.Handler { return d.admin }

// wake asks target's dispatcher to look for due results now.
func (d *Daemon) wake(target string) {
	if disp, ok := d.dispatchers[target]; ok {
		disp.Wake()
	}
}

// circuit returns target's circuit breaker, false when the daemon does
// not deliver to target.
func (d *Daemon) circuit(target string) (delivery.CircuitState, bool) {
	disp, ok := d.dispatchers[target]
	if !ok {
		return delivery.CircuitState{}, false
	}
	return disp.Circuit(), true
}

// failing returns why target's delivery steps fail, if they do.
func (d *Daemon) failing(target string) (delivery.StepFailure, bool) {
	disp, ok := d.dispatchers[target]
	if !ok {
		return delivery.StepFailure{}, false
	}
	return disp.Failing()
}

// Store returns the daemon's outbox store.
func (d *Daemon) Store() outbox.Store { return d.store }

// Runner returns the daemon's poll scheduler.
func (d *Daemon) Runner() *intake.Runner { return d.runner }

// Run delivers and polls until ctx ends, then stops claiming, lets requests
// in flight finish and returns.
//
// On a database shared by several daemons, Run stops by itself, with a
// *outbox.NewerSchemaError, once another cvbridge has migrated the database
// to a schema this build does not know (see sharedStoreLoop).
func (d *Daemon) Run(ctx context.Context) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	d.metrics.ReadQueue(d.store, d.cfg.TargetNames, d.log)
	for name := range d.dispatchers {
		// Each dispatcher's circuit starts closed, whatever the previous
		// configuration's was.
		d.metrics.Circuit(name, false)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(d.dispatchers)+1)
	for name, disp := range d.dispatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := disp.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("target %s: %w", name, err)
			}
		}()
	}
	if d.worker != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.worker.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("inbound worker: %w", err)
			}
		}()
	}
	wg.Add(3)
	go func() { defer wg.Done(); d.runner.Run(ctx) }()
	go func() { defer wg.Done(); d.purgeLoop(ctx) }()
	go func() { defer wg.Done(); d.sharedStoreLoop(ctx, stop) }()
	d.log.Info("cvbridge running", "targets", len(d.dispatchers), "connections", len(d.sources), "store", d.cfg.Storage.Driver)
	wg.Wait()
	close(errs)
	var all []error
	if newer := (*outbox.NewerSchemaError)(nil); errors.As(context.Cause(ctx), &newer) {
		all = append(all, newer)
	}
	for err := range errs {
		all = append(all, err)
	}
	d.log.Info("cvbridge stopped")
	return errors.Join(all...)
}

// Close closes the sources, the schema and the store it opened.
func (d *Daemon) Close() error {
	var errs []error
	for _, s := range d.sources {
		if c, ok := s.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	if d.schema != nil {
		d.schema.Close()
	}
	if d.store != nil && d.ownsStore {
		errs = append(errs, d.store.Close())
	}
	return errors.Join(errs...)
}

func (d *Daemon) purgeLoop(ctx context.Context) {
	ticker := d.clock.NewTicker(d.purgeEvery)
	defer ticker.Stop()
	for {
		d.purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.Chan():
		}
	}
}

// purge deletes expired history in small batches, so no transaction holds
// the store for long: delivered results past storage.retention (0 keeps
// them), then the inbound side, whose personal-data erasure runs whatever
// storage.retention says.
func (d *Daemon) purge(ctx context.Context) {
	if d.cfg.Storage.Retention > 0 && d.purgeResults(ctx) > 0 {
		// Deleted results leave the write-ahead log too (SQLite; the
		// inbound erasure below scrubs by itself).
		if s, ok := d.store.(scrubber); ok {
			if err := s.Scrub(ctx); err != nil {
				d.log.Warn("after the retention purge", "error", err)
			}
		}
	}
	if pd, ok := d.store.(inboundstore.PersonalData); ok {
		// Names and e-mail addresses of processed requests, past their retention.
		if _, err := inbound.ErasePersonalData(ctx, pd, d.clock.Now(), d.cfg.Inbound.Retention(), d.log); err != nil {
			d.log.Error("erasing personal data past its retention failed", "error", err)
		}
	}
	if purger, ok := d.store.(inboundstore.MessagePurger); ok && d.cfg.Inbound.MessageKeep() > 0 {
		// Processed requests past inbound.keep_messages; the enrolment list keeps its entries.
		if _, err := inbound.PurgeMessages(ctx, purger, d.clock.Now(), d.cfg.Inbound.MessageKeep(), d.log); err != nil {
			d.log.Error("deleting processed inbound messages past inbound.keep_messages failed", "error", err)
		}
	}
	if tokens, ok := d.store.(inboundstore.TokenStore); ok {
		// OAuth codes and tokens that are revoked or expired are of no use.
		if n, err := tokens.PurgeTokens(ctx, d.clock.Now()); err != nil {
			d.log.Error("purging expired OAuth tokens failed", "error", err)
		} else if n > 0 {
			d.log.Info("purged expired OAuth tokens", "deleted", n)
		}
	}
}

// maxClockSkew is how far this machine's clock may be from the database
// server's before the daemon warns.
const maxClockSkew = 5 * time.Second

// clockSyncEvery is how often a daemon on a shared database measures its
// clock against the server's again.
const clockSyncEvery = time.Minute

// minClockStep is the least change of the measured offset that is applied:
// smaller ones are the noise of the round trip.
const minClockStep = 20 * time.Millisecond

// skewReader is a store shared by several machines that can tell how far
// the store's clock is from its server's.
type skewReader interface {
	ClockSkew(ctx context.Context) (time.Duration, error)
}

// SyncClock keeps a daemon on a database shared by several machines
// (PostgreSQL) on the database server's clock: it measures how far the
// store's clock is from the server's and, when clk (the clock the store
// and the daemon tell time by) is a *clock.Adjusted, moves it by that much,
// so due times, retry schedules and leases written by every daemon agree.
// It returns this machine's own skew (before any adjustment); ok is false
// when the store has no server clock or could not be read. It warns through
// log when the machine's clock is off by more than 5 s.
func SyncClock(ctx context.Context, store outbox.Store, clk clock.Clock, log *slog.Logger) (time.Duration, bool) {
	sr, ok := store.(skewReader)
	if !ok {
		return 0, false
	}
	skew, err := sr.ClockSkew(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("cannot compare this machine's clock with the database's", "error", err)
		}
		return 0, false
	}
	own := skew
	if adj, ok := clk.(*clock.Adjusted); ok {
		own = skew - adj.Offset() // skew is (own time + offset) − server
		if skew > minClockStep || skew < -minClockStep {
			adj.SetOffset(adj.Offset() - skew)
		}
	}
	return own, true
}

// sharedStoreLoop watches a database several daemons may share
// (PostgreSQL), at start and then every minute. It keeps the daemon on the
// database server's clock (SyncClock) and warns, at most hourly, while this
// machine's own clock is off by more than maxClockSkew. And it stops the
// daemon, through stop, once another cvbridge has migrated the database to
// a schema this build does not know: its statements were written for the
// older one, and every daemon on a database must run the same version.
func (d *Daemon) sharedStoreLoop(ctx context.Context, stop context.CancelCauseFunc) {
	_, skews := d.store.(skewReader)
	schema, checks := d.store.(outbox.SchemaChecker)
	if !skews && !checks {
		return
	}
	ticker := d.clock.NewTicker(clockSyncEvery)
	defer ticker.Stop()
	var warned time.Time
	for {
		if own, ok := SyncClock(ctx, d.store, d.clock, d.log); ok && (own > maxClockSkew || own < -maxClockSkew) &&
			d.clock.Now().Sub(warned) >= time.Hour {
			d.log.Warn("this machine's clock differs from the database server's: keep them in step (NTP); "+
				"the daemon follows the server's clock, its log lines this machine's", "skew", own.Round(time.Millisecond))
			warned = d.clock.Now()
		}
		if checks {
			var newer *outbox.NewerSchemaError
			if err := schema.CheckSchema(ctx); errors.As(err, &newer) {
				d.log.Error("another cvbridge migrated the outbox database to a newer schema: this daemon stops; "+
					"upgrade it to the same version (every daemon on a database must run one version)",
					"schema", newer.Current, "known", newer.Known)
				stop(newer)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.Chan():
		}
	}
}

// scrubber is a store that can remove deleted bytes from its files.
type scrubber interface {
	Scrub(ctx context.Context) error
}

// purgeResults deletes ignored, rejected, superseded and cancelled results
// past storage.retention and erases delivered ones (outbox.Store's Purge),
// a batch at a time, and returns how many rows it deleted or erased.
func (d *Daemon) purgeResults(ctx context.Context) int {
	const batch = 1000
	cutoff := d.clock.Now().Add(-d.cfg.Storage.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := d.store.Purge(ctx, cutoff, batch)
		if err != nil {
			d.log.Error("retention purge failed", "error", err)
			return total
		}
		total += n
		if n < batch {
			break
		}
	}
	if total > 0 {
		d.log.Info("retention purge: history deleted, delivered results erased", "rows", total, "older_than", cutoff.Format(time.RFC3339))
	}
	return total
}

// instanceID names this daemon in leases and claims: host, process and a
// random part, so a restarted process never mistakes an old claim for its own.
func instanceID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%x", host, os.Getpid(), b)
}

// OpenStore opens the configured outbox store.
func OpenStore(ctx context.Context, cfg *config.Config, clk clock.Clock) (outbox.Store, error) {
	switch cfg.Storage.Driver {
	case "sqlite":
		opts := []sqlite.Option{sqlite.WithClock(clk)}
		if !cfg.Storage.MigratesAtStart() {
			opts = append(opts, sqlite.WithoutMigrations())
		}
		if err := checkStoreOwner(cfg.Storage.Path); err != nil {
			return nil, err
		}
		s, err := sqlite.Open(ctx, cfg.Storage.Path, opts...)
		if err != nil {
			return nil, fmt.Errorf("open the outbox %s: %w", cfg.Storage.Path, err)
		}
		return s, nil
	case "postgres":
		opts := []postgres.Option{postgres.WithClock(clk)}
		if !cfg.Storage.MigratesAtStart() {
			opts = append(opts, postgres.WithoutMigrations())
		}
		s, err := postgres.Open(ctx, cfg.Storage.DSN, opts...)
		if err != nil {
			// The error never carries the DSN: it may hold a password.
			return nil, fmt.Errorf("open the PostgreSQL outbox: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("storage driver %q is not supported", cfg.Storage.Driver)
	}
}

// LoadSchema loads the operator's XSD file, or the bundled schema.
func LoadSchema(cfg *config.Config) (*xsdschema.Schema, error) {
	if cfg.Results.XSDFile != "" {
		return xsdschema.Load(cfg.Results.XSDFile)
	}
	return xsdschema.Bundled()
}

// NewDispatcher builds the dispatcher of one target.
func NewDispatcher(t *config.Target, store outbox.Store, opts delivery.Options) (*delivery.Dispatcher, error) {
	signer, err := sign.NewSigner(t.Algorithm, t.Secret)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	return delivery.New(delivery.Target{
		Name:     t.Name,
		URL:      t.URL,
		Signer:   signer,
		Settings: t.Settings,
	}, store, opts)
}

// UnconfiguredTargets returns the targets of store, not in cfg, that have
// results not done, with how many: a target renamed or removed in the
// configuration leaves them waiting, sent by no dispatcher, counted by no
// metric.
func UnconfiguredTargets(ctx context.Context, store outbox.Store, cfg *config.Config) (map[string]int, error) {
	unfinished, err := store.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	for target := range unfinished {
		if _, ok := cfg.Targets[target]; ok {
			delete(unfinished, target)
		}
	}
	return unfinished, nil
}
