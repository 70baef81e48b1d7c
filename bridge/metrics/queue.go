package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// Queue is the part of the outbox the scrape-time gauges read; outbox.Store
// is one.
type Queue interface {
	// Counts returns the number of rows per state of target.
	Counts(ctx context.Context, target string) (map[outbox.State]int, error)
	// TargetState returns whether target is paused.
	TargetState(ctx context.Context, target string) (outbox.TargetState, error)
	// OldestPending returns when target's oldest waiting result was queued.
	OldestPending(ctx context.Context, target string) (time.Time, bool, error)
}

var _ Queue = outbox.Store(nil)

// queueCollector reads the outbox gauges from the store at scrape time.
type queueCollector struct {
	// src is the store and targets read, swapped when a reloaded daemon
	// takes over; nil until one is set, and then no gauges are reported.
	src     atomic.Pointer[queueSource]
	clock   clock.Clock
	timeout time.Duration
	log     *slog.Logger // for a source set without a logger of its own

	up     *prometheus.Desc
	depth  *prometheus.Desc
	oldest *prometheus.Desc
	paused *prometheus.Desc
}

// queueSource is what a scrape reads the outbox gauges from.
type queueSource struct {
	queue   Queue
	targets func() []string
	log     *slog.Logger // warned when a scrape cannot read queue
}

func newQueueCollector(opts Options) *queueCollector {
	return &queueCollector{
		clock: opts.Clock, timeout: opts.ScrapeTimeout, log: opts.Logger,
		up: prometheus.NewDesc(namespace+"_store_up",
			"1 when the outbox store answered the scrape's queries, 0 when it did not (the other outbox gauges are then missing).", nil, nil),
		depth: prometheus.NewDesc(namespace+"_outbox_results",
			"Results in the outbox, by target and state.", []string{"target", "state"}, nil),
		oldest: prometheus.NewDesc(namespace+"_outbox_oldest_pending_age_seconds",
			"Age of the oldest result of a target still waiting for delivery (pending or sending), 0 when none waits.", []string{"target"}, nil),
		paused: prometheus.NewDesc(namespace+"_target_paused",
			"1 while a target is paused (by a 403 or by the operator), else 0.", []string{"target"}, nil),
	}
}

// read makes scrapes read q's gauges for the targets targets returns (nil:
// none), warning log (nil: the collector's logger) when q fails.
func (c *queueCollector) read(q Queue, targets func() []string, log *slog.Logger) {
	if targets == nil {
		targets = func() []string { return nil }
	}
	if log == nil {
		log = c.log
	}
	c.src.Store(&queueSource{queue: q, targets: targets, log: log})
}

// Describe sends the descriptors of the outbox gauges.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.depth
	ch <- c.oldest
	ch <- c.paused
}

// Collect reads every target's counts, oldest waiting row and paused state.
// When the store fails it reports cvbridge_store_up 0 and no outbox gauges,
// so a dashboard never shows stale or partial numbers as current.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return
	}
	ctx, cancel := scrapeContext(c.timeout)
	defer cancel()
	var out []prometheus.Metric
	now := c.clock.Now()
	for _, target := range src.targets() {
		ms, err := c.target(ctx, src.queue, target, now)
		if err != nil {
			src.log.Warn("metrics: reading the outbox failed; cvbridge_store_up is 0", "target", target, "error", err)
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
			return
		}
		out = append(out, ms...)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, m := range out {
		ch <- m
	}
}

func (c *queueCollector) target(ctx context.Context, q Queue, target string, now time.Time) ([]prometheus.Metric, error) {
	counts, err := q.Counts(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("counting results: %w", err)
	}
	st, err := q.TargetState(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("reading the paused state: %w", err)
	}
	oldest, ok, err := q.OldestPending(ctx, target)
	if err != nil {
		return nil, err
	}
	var ms []prometheus.Metric
	for _, state := range outbox.States {
		ms = append(ms, prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(counts[state]), target, string(state)))
	}
	age := 0.0
	if ok {
		age = max(0, now.Sub(oldest).Seconds())
	}
	ms = append(ms, prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, target))
	paused := 0.0
	if st.Paused {
		paused = 1
	}
	ms = append(ms, prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, target))
	return ms, nil
}
