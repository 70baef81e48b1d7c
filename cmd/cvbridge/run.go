package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
	"github.com/cvbridge/cvbridge/bridge/metrics"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// cmdRun runs the daemon until SIGINT or SIGTERM. SIGHUP reloads the
// configuration, LMS files and secrets: the new configuration is assembled
// completely before the running one is stopped, so a mistake in it is
// refused with a log line and the old configuration keeps running. Queued
// work is in the store and carries over. Under systemd (Type=notify) it
// reports READY, RELOADING and STOPPING and pings the watchdog from this
// main loop, so a hung daemon is restarted.
func cmdRun(ctx context.Context, args []string, _ io.Writer) error {
	fs := newFlags("run")
	cfgPath := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)
	// One set of metrics for the process: its counters carry over reloads.
	m := metrics.New(metrics.Options{Version: version, Logger: log})
	// On a database shared by several machines the daemon keeps to the
	// server's clock (daemon.SyncClock), from before its first claim on.
	base, err := processClock(log)
	if err != nil {
		return err
	}
	clk := &clock.Adjusted{Base: base}
	// One open store for the process, too: a reload never opens the
	// database again (on SQLite, closing a second handle of the file would
	// drop the locks that keep other clients from deleting its WAL).
	if cfg.Storage.Driver == "sqlite" {
		lock, err := daemon.LockSQLiteOutbox(cfg.Storage.Path)
		if err != nil {
			return err
		}
		defer func() { _ = lock.Close() }() // releases the lock; nothing was written that matters
	}
	store, err := daemon.OpenStore(ctx, cfg, clk)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the outbox failed", "error", err)
		}
	}()
	opened := cfg.Storage // what the store was opened with: a reload keeps it
	daemon.SyncClock(ctx, store, clk, log)
	d, err := openDaemon(ctx, cfg, log, m, store, clk)
	if err != nil {
		return err
	}
	// The admin listener lives as long as the process; a reload swaps the
	// handler behind it, so no connection is dropped.
	adminSrv, adminHandler, err := serveAdmin(cfg.Admin.Listen, cfg.Admin.Hosts, log)
	if err != nil {
		_ = d.Close()
		return err
	}
	defer shutdown(adminSrv)
	adminHandler.set(d.AdminHandler())
	public, err := startPublic(cfg, log)
	if err != nil {
		_ = d.Close()
		return err
	}
	if public != nil {
		defer shutdown(public.srv)
		public.swap(d.PublicHandler(), cfg.Public, nil)
	}
	cur := launch(ctx, d)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	watchdog := watchdogTicker()
	defer watchdog.Stop()
	notify(log, sd.SdNotifyReady)

	for {
		select {
		case <-ctx.Done():
			notify(log, sd.SdNotifyStopping)
			return cur.stop()
		case err := <-cur.done:
			// The daemon ended by itself: report it, let systemd restart us.
			cur.done = nil
			return fmt.Errorf("daemon stopped: %w", closeAfter(cur.d, err))
		case <-hup:
			notify(log, sd.SdNotifyReloading)
			next, nextCfg, nextLog, err := reload(ctx, *cfgPath, cfg, opened, m, store, clk)
			var material *tlsMaterial
			if err == nil && public != nil && nextCfg.Public.Enabled() {
				if material, err = loadTLS(nextCfg.Public.TLS); err != nil {
					_ = next.Close()
				}
			}
			if err != nil {
				log.Error("reload refused; the running configuration stays in force", "error", err)
				notify(log, sd.SdNotifyReady)
				continue
			}
			// Stopping lets requests in flight finish (up to the target's
			// timeout): keep the watchdog fed meanwhile.
			if err := stopFeeding(cur, watchdog, log); err != nil {
				if newer := (*outbox.NewerSchemaError)(nil); errors.As(err, &newer) {
					// It had stopped by itself: no configuration runs on that schema.
					_ = next.Close()
					return fmt.Errorf("daemon stopped: %w", err)
				}
				log.Error("the previous configuration stopped with an error", "error", err)
			}
			log = nextLog
			slog.SetDefault(log)
			next.Runner().CarryFailures(cur.d.Runner())
			cur = launch(ctx, next)
			adminHandler.set(next.AdminHandler())
			if public != nil {
				public.swap(next.PublicHandler(), nextCfg.Public, material)
			}
			m.Forget(removedNames(cfg, nextCfg))
			cfg = nextCfg
			log.Info("configuration reloaded", "config", *cfgPath)
			notify(log, sd.SdNotifyReady)
		case <-watchdog.C:
			notify(log, sd.SdNotifyWatchdog)
		}
	}
}

// reload loads the configuration and assembles a daemon from it on the
// running store, without starting it. Listener addresses and the storage
// section change only at a restart.
func reload(ctx context.Context, path string, running *config.Config, opened config.Storage, m *metrics.Metrics, store outbox.Store, clk clock.Clock) (*daemon.Daemon, *config.Config, *slog.Logger, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(cfg, os.Stderr)
	if cfg.Admin.Listen != running.Admin.Listen {
		log.Warn("admin.listen changes only at a restart", "listening", running.Admin.Listen, "configured", cfg.Admin.Listen)
	}
	if !slices.Equal(cfg.Admin.Hosts, running.Admin.Hosts) {
		log.Warn("admin.hosts changes only at a restart", "serving", running.Admin.Hosts, "configured", cfg.Admin.Hosts)
	}
	if cfg.Public.Addr != running.Public.Addr {
		log.Warn("public.addr changes only at a restart", "listening", running.Public.Addr, "configured", cfg.Public.Addr)
	}
	if was, is := opened, cfg.Storage; was.Driver != is.Driver || was.Path != is.Path || was.DSN != is.DSN {
		log.Warn("the storage section (driver, path, DSN) changes only at a restart; the open outbox stays in use")
	}
	d, err := openDaemon(ctx, cfg, log, m, store, clk)
	if err != nil {
		return nil, nil, nil, err
	}
	return d, cfg, log, nil
}

// removedNames returns the LMS connections and targets of before that
// after no longer has.
func removedNames(before, after *config.Config) (connections, targets []string) {
	for _, c := range before.Connections {
		if _, ok := after.Connection(c.Name); !ok {
			connections = append(connections, c.Name)
		}
	}
	for name := range before.Targets {
		if _, ok := after.Targets[name]; !ok {
			targets = append(targets, name)
		}
	}
	return connections, targets
}

// openDaemon assembles a daemon for cfg that reports to m, on store when it
// is set and on a store of its own otherwise, telling time by clk (nil: the
// system clock).
func openDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics, store outbox.Store, clk clock.Clock) (*daemon.Daemon, error) {
	return daemon.Open(ctx, cfg, func(cfg *config.Config, conn *config.Connection) (source.Built, error) {
		return buildSource(cfg, conn, log)
	}, daemon.Options{Logger: log, Version: version, Metrics: m, Store: store, Clock: clk})
}

// clockOffsetEnv names the environment variable that moves the daemon's
// clock by a duration ("2m", "-30s"). The fault tests use it to run daemons
// whose clocks disagree, as machines without NTP do; never set it in
// production.
const clockOffsetEnv = "CVBRIDGE_TEST_CLOCK_OFFSET"

// processClock is this machine's clock: the system clock, moved by
// $CVBRIDGE_TEST_CLOCK_OFFSET when that is set.
func processClock(log *slog.Logger) (clock.Clock, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return clock.System{}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clockOffsetEnv, err)
	}
	log.Warn("the daemon's clock is moved for testing", "env", clockOffsetEnv, "offset", d)
	return clock.Skewed{Base: clock.System{}, By: d}, nil
}

// swapHandler serves whatever handler was set last.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// serveAdmin starts the admin listener on addr, serving requests for IP
// addresses, localhost and hosts only (listen.HostPolicy).
func serveAdmin(addr string, hosts []string, log *slog.Logger) (*http.Server, *swapHandler, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("admin listener (admin.listen): %w", err)
	}
	h := &swapHandler{}
	srv := &http.Server{
		Handler:           listen.NewHostCheck(listen.HostPolicy{Names: hosts}, h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "error", err)
		}
	}()
	log.Info("admin listener", "address", "http://"+ln.Addr().String()+"/")
	return srv, h, nil
}

// shutdown stops a server, letting requests in progress finish briefly.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// running is a started daemon.
type running struct {
	d      *daemon.Daemon
	cancel context.CancelFunc
	done   chan error
}

func launch(ctx context.Context, d *daemon.Daemon) *running {
	runCtx, cancel := context.WithCancel(ctx)
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(runCtx) }()
	return r
}

// stop ends the daemon gracefully (requests in flight finish, claims are
// released) and closes it.
func (r *running) stop() error {
	r.cancel()
	return closeAfter(r.d, <-r.done)
}

func closeAfter(d *daemon.Daemon, runErr error) error {
	if err := d.Close(); err != nil && runErr == nil {
		return err
	}
	return runErr
}

// stopFeeding stops r as stop does, pinging systemd's watchdog at each tick
// of watchdog until it has stopped: a reload waits for requests in flight,
// which may take as long as the target's timeout.
func stopFeeding(r *running, watchdog *time.Ticker, log *slog.Logger) error {
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	for {
		select {
		case err := <-stopped:
			return err
		case <-watchdog.C:
			notify(log, sd.SdNotifyWatchdog)
		}
	}
}

// watchdogTicker ticks at half systemd's watchdog interval, or never when
// the watchdog is off.
func watchdogTicker() *time.Ticker {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		t := time.NewTicker(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTicker(interval / 2)
}

// notify tells systemd the daemon's state; outside systemd it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("cannot notify systemd", "state", state, "error", err)
	}
}
