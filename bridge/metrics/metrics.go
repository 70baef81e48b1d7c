// Package metrics owns cvbridge's Prometheus metrics: the counters and
// histograms the delivery, intake and inbound code report to through small
// hooks (the targets' circuit breakers among them), and the gauges of the
// outbox (queue depth, oldest pending age, paused targets) read from the
// store at scrape time. Everything lives in a
// registry of its own, never the global one, served by Handler.
//
// It owns no storage and changes nothing: it only counts what it is told
// and reads what the store holds.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// namespace prefixes every metric name.
const namespace = "cvbridge"

// defaultScrapeTimeout bounds the store queries of one scrape.
const defaultScrapeTimeout = 5 * time.Second

// Enqueue outcomes, the outcome label of cvbridge_results_enqueued_total;
// they match the fields of source.Summary.
const (
	OutcomeQueued    = "queued"
	OutcomeReplaced  = "replaced"
	OutcomeWaiting   = "waiting"
	OutcomeUnchanged = "unchanged"
	OutcomeIgnored   = "ignored"
	OutcomeRejected  = "rejected"
)

// Failure outcomes, the outcome label of cvbridge_delivery_failures_total.
const (
	FailureRetry  = "retry"  // the row is pending again: a retry is scheduled (or the target paused on a 403)
	FailureParked = "parked" // the row is failed: no more automatic attempts
	// FailureProbablyDelivered: a 404 after an attempt whose outcome is
	// unknown; the row waits for the operator to confirm or retry it.
	FailureProbablyDelivered = "probably_delivered"
)

// Options configure New. Every field is optional.
type Options struct {
	// Queue is read at scrape time for the outbox gauges; nil leaves them
	// out until ReadQueue sets one.
	Queue Queue
	// Targets returns the configured target names at scrape time; nil
	// means none.
	Targets func() []string
	// Clock tells the time the oldest pending age is measured against
	// (default: the wall clock).
	Clock clock.Clock
	// ScrapeTimeout bounds the store queries of one scrape (default 5s).
	ScrapeTimeout time.Duration
	// Version is exported as the version label of cvbridge_build_info.
	Version string
	// Logger receives a warning when a scrape cannot read the store
	// (default: slog.Default()).
	Logger *slog.Logger
}

// Metrics holds cvbridge's collectors and the registry they are in. Its
// methods are the hooks the rest of the daemon reports through; they are
// safe for concurrent use. Create it with New.
type Metrics struct {
	reg   *prometheus.Registry
	queue *queueCollector
	clock clock.Clock

	enqueued     *prometheus.CounterVec
	attempts     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	failures     *prometheus.CounterVec
	retries      *prometheus.CounterVec
	requestTime  *prometheus.HistogramVec
	inbound      *prometheus.CounterVec
	pollDuration *prometheus.HistogramVec
	pollErrors   *prometheus.CounterVec
	pollSuccess  *prometheus.GaugeVec
	badRows      *prometheus.CounterVec
	failedFiles  *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	circuitOpen  *prometheus.GaugeVec
	circuitTrips *prometheus.CounterVec
}

// New returns the metrics in a fresh registry holding, besides cvbridge's own
// families, the Go runtime and process collectors.
func New(opts Options) *Metrics {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = defaultScrapeTimeout
	}
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		clock: opts.Clock,
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "results_enqueued_total",
			Help: "Completions an LMS connection committed to the outbox, by what the outbox did with them.",
		}, []string{"connection", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "delivery_attempts_total",
			Help: "Delivery attempts that sent a request, by target and outcome class.",
		}, []string{"target", "class"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "results_delivered_total",
			Help: "Results Coachview accepted (2xx), by target.",
		}, []string{"target"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "delivery_failures_total",
			Help: "Delivery attempts Coachview did not accept, by target, class and outcome (retry: scheduled again; parked: given up).",
		}, []string{"target", "class", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "delivery_retries_total",
			Help: "Delivery attempts that were retries of an earlier attempt at the same payload, by target.",
		}, []string{"target"}),
		requestTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "delivery_request_duration_seconds",
			Help:    "How long a delivery request to Coachview took, by target.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"target"}),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "inbound_requests_total",
			Help: "Requests Coachview sent to the public listener, by verdict.",
		}, []string{"verdict"}),
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "adapter_run_duration_seconds",
			Help:    "How long one poll of an LMS connection took, by connection.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600},
		}, []string{"connection"}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "adapter_run_errors_total",
			Help: "Polls of an LMS connection that ended in an error, by connection.",
		}, []string{"connection"}),
		pollSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "adapter_last_success_timestamp_seconds",
			Help: "When a poll of an LMS connection last ended without an error (Unix time), by connection; absent until one did. Daemons sharing a store take turns polling: take the highest over them.",
		}, []string{"connection"}),
		badRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "intake_bad_rows_total",
			Help: "Rows an LMS connection's source skipped because they could not be read (csvdrop: listed in the file's errors file), by connection.",
		}, []string{"connection"}),
		failedFiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "intake_failed_files_total",
			Help: "Files an LMS connection's source set aside whole, no row enqueued (csvdrop: moved to failed/), by connection.",
		}, []string{"connection"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "intake_skipped_total",
			Help: "What an LMS connection's source could not read in full because the LMS hid it (moodle: members_hidden, total_hidden, completion_denied, no_date), by connection and reason; the log says which course and the fix.",
		}, []string{"connection", "reason"}),
		circuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "target_circuit_open",
			Help: "1 while a target's circuit is open (Coachview unreachable: one probe at a time), else 0.",
		}, []string{"target"}),
		circuitTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "target_circuit_openings_total",
			Help: "How often a target's circuit opened after transient failures in a row, by target.",
		}, []string{"target"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; the version label is the running cvbridge's version.",
	}, []string{"version"})
	buildInfo.WithLabelValues(orDefault(opts.Version, "dev")).Set(1)
	m.queue = newQueueCollector(opts)
	if opts.Queue != nil {
		m.ReadQueue(opts.Queue, opts.Targets, nil)
	}
	m.reg.MustRegister(
		m.enqueued, m.attempts, m.delivered, m.failures, m.retries, m.requestTime,
		m.inbound, m.pollDuration, m.pollErrors, m.pollSuccess, m.badRows, m.failedFiles, m.skipped, m.circuitOpen, m.circuitTrips, buildInfo, m.queue,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Forget drops the counter and histogram series of LMS connections and
// targets a reload removed, so /metrics stops showing them; a name that
// comes back later starts from zero.
func (m *Metrics) Forget(connections, targets []string) {
	for _, c := range connections {
		l := prometheus.Labels{"connection": c}
		m.enqueued.DeletePartialMatch(l)
		m.pollDuration.DeletePartialMatch(l)
		m.pollErrors.DeletePartialMatch(l)
		m.pollSuccess.DeletePartialMatch(l)
		m.badRows.DeletePartialMatch(l)
		m.failedFiles.DeletePartialMatch(l)
		m.skipped.DeletePartialMatch(l)
	}
	for _, t := range targets {
		l := prometheus.Labels{"target": t}
		m.attempts.DeletePartialMatch(l)
		m.delivered.DeletePartialMatch(l)
		m.failures.DeletePartialMatch(l)
		m.retries.DeletePartialMatch(l)
		m.requestTime.DeletePartialMatch(l)
		m.circuitOpen.DeletePartialMatch(l)
		m.circuitTrips.DeletePartialMatch(l)
	}
}

// ReadQueue makes later scrapes read the outbox gauges from q, for the
// targets targets returns (nil: none), and warn log (nil: Options.Logger)
// when q cannot be read. A reloaded daemon calls it as it takes over, so
// the gauges and their warnings follow its store, targets and logging
// settings while the counters, which live as long as m, carry on from
// where they were.
func (m *Metrics) ReadQueue(q Queue, targets func() []string, log *slog.Logger) {
	m.queue.read(q, targets, log)
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// Registry returns the registry holding every cvbridge collector, for
// tests and for registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats. A
// collector's error is served as a 500, not hidden.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.HTTPErrorOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Committed counts what one commit of an LMS connection did; pass it as
// intake.SinkConfig.Committed.
func (m *Metrics) Committed(connection string, sum source.Summary) {
	for outcome, n := range map[string]int{
		OutcomeQueued: sum.Queued, OutcomeReplaced: sum.Replaced, OutcomeWaiting: sum.Waiting, OutcomeUnchanged: sum.Unchanged,
		OutcomeIgnored: sum.Ignored, OutcomeRejected: sum.Rejected,
	} {
		if n > 0 {
			m.enqueued.WithLabelValues(connection, outcome).Add(float64(n))
		}
	}
}

// Delivered counts one delivery attempt; pass it as delivery.Options.Observe.
func (m *Metrics) Delivered(o delivery.Outcome) {
	m.attempts.WithLabelValues(o.Target, string(o.Class)).Inc()
	m.requestTime.WithLabelValues(o.Target).Observe(o.Duration.Seconds())
	if o.Attempt > 1 {
		m.retries.WithLabelValues(o.Target).Inc()
	}
	if o.Class == delivery.Delivered {
		m.delivered.WithLabelValues(o.Target).Inc()
		return
	}
	outcome := FailureRetry
	switch o.State {
	case outbox.StateFailed:
		outcome = FailureParked
	case outbox.StateProbablyDelivered:
		outcome = FailureProbablyDelivered
	}
	m.failures.WithLabelValues(o.Target, string(o.Class), outcome).Inc()
}

// Circuit records that target's circuit opened (open true) or closed;
// pass it as delivery.Options.Circuit. An opening is counted. The daemon
// also calls it with false for each target as it starts, since a new
// dispatcher's circuit starts closed.
func (m *Metrics) Circuit(target string, open bool) {
	v := 0.0
	if open {
		v = 1
		m.circuitTrips.WithLabelValues(target).Inc()
	}
	m.circuitOpen.WithLabelValues(target).Set(v)
}

// Polled records one poll of an LMS connection; pass it as intake.Job.Polled.
func (m *Metrics) Polled(connection string, took time.Duration, err error) {
	m.pollDuration.WithLabelValues(connection).Observe(took.Seconds())
	if err != nil {
		m.pollErrors.WithLabelValues(connection).Inc()
		return
	}
	m.pollSuccess.WithLabelValues(connection).Set(float64(m.clock.Now().UnixMilli()) / 1000)
}

// Problems counts the input an LMS connection's source could not use;
// pass it as intake.Job.Problems.
func (m *Metrics) Problems(connection string, p source.Problems) {
	if p.BadRows > 0 {
		m.badRows.WithLabelValues(connection).Add(float64(p.BadRows))
	}
	if p.FailedFiles > 0 {
		m.failedFiles.WithLabelValues(connection).Add(float64(p.FailedFiles))
	}
	for reason, n := range p.Skipped {
		m.skipped.WithLabelValues(connection, reason).Add(float64(n))
	}
}

// Inbound counts one request to the public listener by its verdict (for
// example "accepted", "bad_signature", "invalid"); the inbound handler
// chooses a small, fixed set of verdicts.
func (m *Metrics) Inbound(verdict string) {
	m.inbound.WithLabelValues(verdict).Inc()
}

// scrapeContext bounds the store queries of one scrape.
func scrapeContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}
