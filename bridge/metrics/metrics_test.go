package metrics_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/metrics"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/source"
)

var epoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// openStore opens a fresh SQLite outbox, closed when t ends.
func openStore(t *testing.T, clk clock.Clock) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "outbox.db"), sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// enqueue queues n results for target in one transaction, persons p<from>…
func enqueue(t *testing.T, s outbox.Store, target string, from, n int) {
	t.Helper()
	require.NoError(t, s.InTx(t.Context(), func(tx outbox.Tx) error {
		for i := from; i < from+n; i++ {
			o, err := tx.Enqueue(t.Context(), outbox.NewResult{
				Target: target, Connection: "moodle", ElearningCode: "EL-1",
				PersonID: fmt.Sprintf("p%d", i), Body: []byte(fmt.Sprintf("<r>%d</r>", i)),
			}, outbox.EnqueuePolicy{})
			if err != nil {
				return err
			}
			if o != outbox.Queued {
				return fmt.Errorf("person p%d: %s", i, o)
			}
		}
		return nil
	}))
}

func TestHooks(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(epoch)
	m := metrics.New(metrics.Options{Version: "1.2.3", Clock: clk})
	m.Committed("moodle", source.Summary{Queued: 3, Replaced: 1, Rejected: 2})
	m.Committed("moodle", source.Summary{Queued: 1})
	m.Committed("csv", source.Summary{Unchanged: 4, Ignored: 1})
	m.Committed("csv", source.Summary{}) // an empty commit adds no series
	for _, o := range []delivery.Outcome{
		{Target: "acme", Class: delivery.Delivered, State: outbox.StateDelivered, Attempt: 1, Status: 200, Duration: 40 * time.Millisecond},
		{Target: "acme", Class: delivery.Delivered, State: outbox.StateDelivered, Attempt: 3, Status: 200, Duration: 2 * time.Second},
		{Target: "acme", Class: delivery.NotFound, State: outbox.StatePending, Attempt: 1, Status: 404, Duration: time.Second},
		{Target: "acme", Class: delivery.Rejected, State: outbox.StateFailed, Attempt: 1, Status: 400, Duration: time.Second},
		{Target: "beta", Class: delivery.Transient, State: outbox.StatePending, Attempt: 2, Duration: 20 * time.Second},
		{Target: "beta", Class: delivery.Transient, State: outbox.StateFailed, Attempt: 9, Status: 503, Duration: time.Second},
	} {
		m.Delivered(o)
	}
	m.Polled("moodle", 3*time.Second, nil)
	clk.Advance(time.Minute)
	m.Polled("moodle", 20*time.Second, errors.New("moodle: 503")) // the last success stays
	m.Polled("csv", time.Second, errors.New("drop folder unreadable"))
	m.Problems("csv", source.Problems{BadRows: 3, Last: "a.csv: 3 bad rows skipped"})
	m.Problems("csv", source.Problems{FailedFiles: 1, Last: "b.csv failed"})
	m.Problems("csv", source.Problems{BadRows: 2})
	m.Inbound("accepted")
	m.Inbound("accepted")
	m.Inbound("bad_signature")

	want := `
# HELP cvbridge_results_enqueued_total Completions an LMS connection committed to the outbox, by what the outbox did with them.
# TYPE cvbridge_results_enqueued_total counter
cvbridge_results_enqueued_total{connection="csv",outcome="ignored"} 1
cvbridge_results_enqueued_total{connection="csv",outcome="unchanged"} 4
cvbridge_results_enqueued_total{connection="moodle",outcome="queued"} 4
cvbridge_results_enqueued_total{connection="moodle",outcome="rejected"} 2
cvbridge_results_enqueued_total{connection="moodle",outcome="replaced"} 1
# HELP cvbridge_results_delivered_total Results Coachview accepted (2xx), by target.
# TYPE cvbridge_results_delivered_total counter
cvbridge_results_delivered_total{target="acme"} 2
# HELP cvbridge_delivery_attempts_total Delivery attempts that sent a request, by target and outcome class.
# TYPE cvbridge_delivery_attempts_total counter
cvbridge_delivery_attempts_total{class="delivered",target="acme"} 2
cvbridge_delivery_attempts_total{class="not_found",target="acme"} 1
cvbridge_delivery_attempts_total{class="rejected",target="acme"} 1
cvbridge_delivery_attempts_total{class="transient",target="beta"} 2
# HELP cvbridge_delivery_failures_total Delivery attempts Coachview did not accept, by target, class and outcome (retry: scheduled again; parked: given up).
# TYPE cvbridge_delivery_failures_total counter
cvbridge_delivery_failures_total{class="not_found",outcome="retry",target="acme"} 1
cvbridge_delivery_failures_total{class="rejected",outcome="parked",target="acme"} 1
cvbridge_delivery_failures_total{class="transient",outcome="parked",target="beta"} 1
cvbridge_delivery_failures_total{class="transient",outcome="retry",target="beta"} 1
# HELP cvbridge_delivery_retries_total Delivery attempts that were retries of an earlier attempt at the same payload, by target.
# TYPE cvbridge_delivery_retries_total counter
cvbridge_delivery_retries_total{target="acme"} 1
cvbridge_delivery_retries_total{target="beta"} 2
# HELP cvbridge_adapter_run_errors_total Polls of an LMS connection that ended in an error, by connection.
# TYPE cvbridge_adapter_run_errors_total counter
cvbridge_adapter_run_errors_total{connection="csv"} 1
cvbridge_adapter_run_errors_total{connection="moodle"} 1
# HELP cvbridge_adapter_last_success_timestamp_seconds When a poll of an LMS connection last ended without an error (Unix time), by connection; absent until one did. Daemons sharing a store take turns polling: take the highest over them.
# TYPE cvbridge_adapter_last_success_timestamp_seconds gauge
cvbridge_adapter_last_success_timestamp_seconds{connection="moodle"} 1772442000
# HELP cvbridge_intake_bad_rows_total Rows an LMS connection's source skipped because they could not be read (csvdrop: listed in the file's errors file), by connection.
# TYPE cvbridge_intake_bad_rows_total counter
cvbridge_intake_bad_rows_total{connection="csv"} 5
# HELP cvbridge_intake_failed_files_total Files an LMS connection's source set aside whole, no row enqueued (csvdrop: moved to failed/), by connection.
# TYPE cvbridge_intake_failed_files_total counter
cvbridge_intake_failed_files_total{connection="csv"} 1
# HELP cvbridge_inbound_requests_total Requests Coachview sent to the public listener, by verdict.
# TYPE cvbridge_inbound_requests_total counter
cvbridge_inbound_requests_total{verdict="accepted"} 2
cvbridge_inbound_requests_total{verdict="bad_signature"} 1
# HELP cvbridge_build_info Always 1; the version label is the running cvbridge's version.
# TYPE cvbridge_build_info gauge
cvbridge_build_info{version="1.2.3"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"cvbridge_results_enqueued_total", "cvbridge_results_delivered_total", "cvbridge_delivery_attempts_total",
		"cvbridge_delivery_failures_total", "cvbridge_delivery_retries_total", "cvbridge_adapter_run_errors_total",
		"cvbridge_adapter_last_success_timestamp_seconds", "cvbridge_intake_bad_rows_total", "cvbridge_intake_failed_files_total", "cvbridge_inbound_requests_total", "cvbridge_build_info"))

	// Histograms: the counts and sums tell the observations arrived in seconds.
	n, err := testutil.GatherAndCount(m.Registry(), "cvbridge_adapter_run_duration_seconds", "cvbridge_delivery_request_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, 4, n, "two poll histograms (moodle, csv) and two request histograms (acme, beta)")
	out := scrape(t, m)
	assert.Contains(t, out, `cvbridge_adapter_run_duration_seconds_sum{connection="moodle"} 23`+"\n")
	assert.Contains(t, out, `cvbridge_adapter_run_duration_seconds_count{connection="moodle"} 2`+"\n")
	assert.Contains(t, out, `cvbridge_adapter_run_duration_seconds_bucket{connection="moodle",le="5"} 1`+"\n")
	assert.Contains(t, out, `cvbridge_delivery_request_duration_seconds_bucket{target="acme",le="0.05"} 1`+"\n")
}

// scrape fetches m's exposition through its Handler, in the text format.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	return string(body)
}

// queueTargets is the target list the queue tests configure.
func queueTargets() []string { return []string{"acme", "beta"} }

func TestQueueGaugesReadTheStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(epoch)
	s := openStore(t, clk)
	enqueue(t, s, "acme", 0, 2) // queued at epoch: the oldest
	clk.Advance(90 * time.Second)
	enqueue(t, s, "acme", 2, 2)
	enqueue(t, s, "beta", 0, 1)
	// One acme row is sent and parked; one is claimed and in flight (sending).
	claimed, err := s.Claim(ctx, "acme", "w1", 2, clk.Now(), time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	require.NoError(t, s.Finish(ctx, outbox.Finish{
		ID: claimed[0].ID, Owner: "w1", State: outbox.StateFailed, Tries: 1, LastClass: "rejected", LastError: "400",
		Attempt: outbox.Attempt{ResultID: claimed[0].ID, At: clk.Now(), Status: 400, Class: "rejected"},
	}))
	require.NoError(t, delivery.Pause(ctx, s, "beta", "maintenance", clk.Now()))
	clk.Advance(30 * time.Second)

	m := metrics.New(metrics.Options{Queue: s, Targets: queueTargets, Clock: clk})
	want := `
# HELP cvbridge_store_up 1 when the outbox store answered the scrape's queries, 0 when it did not (the other outbox gauges are then missing).
# TYPE cvbridge_store_up gauge
cvbridge_store_up 1
# HELP cvbridge_outbox_results Results in the outbox, by target and state.
# TYPE cvbridge_outbox_results gauge
cvbridge_outbox_results{state="cancelled",target="acme"} 0
cvbridge_outbox_results{state="delivered",target="acme"} 0
cvbridge_outbox_results{state="failed",target="acme"} 1
cvbridge_outbox_results{state="ignored",target="acme"} 0
cvbridge_outbox_results{state="pending",target="acme"} 2
cvbridge_outbox_results{state="probably-delivered",target="acme"} 0
cvbridge_outbox_results{state="rejected",target="acme"} 0
cvbridge_outbox_results{state="sending",target="acme"} 1
cvbridge_outbox_results{state="superseded",target="acme"} 0
cvbridge_outbox_results{state="waiting",target="acme"} 0
cvbridge_outbox_results{state="cancelled",target="beta"} 0
cvbridge_outbox_results{state="delivered",target="beta"} 0
cvbridge_outbox_results{state="failed",target="beta"} 0
cvbridge_outbox_results{state="ignored",target="beta"} 0
cvbridge_outbox_results{state="pending",target="beta"} 1
cvbridge_outbox_results{state="probably-delivered",target="beta"} 0
cvbridge_outbox_results{state="rejected",target="beta"} 0
cvbridge_outbox_results{state="sending",target="beta"} 0
cvbridge_outbox_results{state="superseded",target="beta"} 0
cvbridge_outbox_results{state="waiting",target="beta"} 0
# HELP cvbridge_outbox_oldest_pending_age_seconds Age of the oldest result of a target still waiting for delivery (pending or sending), 0 when none waits.
# TYPE cvbridge_outbox_oldest_pending_age_seconds gauge
cvbridge_outbox_oldest_pending_age_seconds{target="acme"} 120
cvbridge_outbox_oldest_pending_age_seconds{target="beta"} 30
# HELP cvbridge_target_paused 1 while a target is paused (by a 403 or by the operator), else 0.
# TYPE cvbridge_target_paused gauge
cvbridge_target_paused{target="acme"} 0
cvbridge_target_paused{target="beta"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"cvbridge_store_up", "cvbridge_outbox_results", "cvbridge_outbox_oldest_pending_age_seconds", "cvbridge_target_paused"))

	// The gauges are read at scrape time: a later scrape sees the change.
	require.NoError(t, delivery.Resume(ctx, s, "beta"))
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP cvbridge_target_paused 1 while a target is paused (by a 403 or by the operator), else 0.
# TYPE cvbridge_target_paused gauge
cvbridge_target_paused{target="acme"} 0
cvbridge_target_paused{target="beta"} 0
`), "cvbridge_target_paused"))
}

func TestQueueGaugesWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(epoch)
	s := openStore(t, clk)
	enqueue(t, s, "acme", 0, 1)
	require.NoError(t, s.Close())
	m := metrics.New(metrics.Options{Queue: s, Targets: queueTargets, Clock: clk, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP cvbridge_store_up 1 when the outbox store answered the scrape's queries, 0 when it did not (the other outbox gauges are then missing).
# TYPE cvbridge_store_up gauge
cvbridge_store_up 0
`), "cvbridge_store_up", "cvbridge_outbox_results", "cvbridge_outbox_oldest_pending_age_seconds", "cvbridge_target_paused"))
}

// TestReadQueueWarnsTheReloadedLogger: after a reload, a scrape that cannot
// read the store warns through the reloaded daemon's logger (its level and
// format), not the one the metrics were created with.
func TestReadQueueWarnsTheReloadedLogger(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(epoch)
	var first, reloaded bytes.Buffer
	m := metrics.New(metrics.Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(&first, nil))})
	s := openStore(t, clk)
	require.NoError(t, s.Close())
	m.ReadQueue(s, queueTargets, slog.New(slog.NewJSONHandler(&reloaded, nil)))

	scrape(t, m)
	assert.Empty(t, first.String(), "the first logger is no longer used")
	assert.Contains(t, reloaded.String(), `"msg":"metrics: reading the outbox failed; cvbridge_store_up is 0"`)
	assert.Contains(t, reloaded.String(), `"target":"acme"`)
}

func TestHandlerServesTheExposition(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(epoch)
	s := openStore(t, clk)
	m := metrics.New(metrics.Options{Queue: s, Targets: queueTargets, Clock: clk})
	m.Inbound("accepted")
	body := scrape(t, m)
	for _, family := range []string{
		"cvbridge_inbound_requests_total", "cvbridge_outbox_results", "cvbridge_store_up",
		"go_goroutines", "process_open_fds",
	} {
		assert.Contains(t, body, "\n"+family, family)
	}
}

// TestReadQueueFollowsTheReloadedStore: a reload points the gauges at the
// new daemon's store and targets, while the counters carry on.
func TestReadQueueFollowsTheReloadedStore(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(epoch)
	m := metrics.New(metrics.Options{Clock: clk})
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(""), "cvbridge_store_up"),
		"no store yet: no outbox gauges")
	m.Inbound("accepted")

	old := openStore(t, clk)
	enqueue(t, old, "acme", 0, 1)
	m.ReadQueue(old, func() []string { return []string{"acme"} }, nil)
	next := openStore(t, clk)
	enqueue(t, next, "beta", 0, 2)
	m.ReadQueue(next, func() []string { return []string{"beta"} }, nil)
	m.Inbound("accepted")

	body := scrape(t, m)
	assert.Contains(t, body, `cvbridge_outbox_results{state="pending",target="beta"} 2`+"\n", "the new store's targets")
	assert.NotContains(t, body, `target="acme"`, "the old store's targets are gone")
	assert.Contains(t, body, `cvbridge_inbound_requests_total{verdict="accepted"} 2`+"\n", "the counter carried on")
}

// TestForgetDropsRemovedNames: the series of a removed connection and
// target leave the exposition; the others stay.
func TestCircuit(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{})
	m.Circuit("acme", false)
	m.Circuit("beta", false)
	m.Circuit("beta", true)
	m.Circuit("beta", false)
	m.Circuit("beta", true)
	require.NoError(t, testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP cvbridge_target_circuit_open 1 while a target's circuit is open (Coachview unreachable: one probe at a time), else 0.
# TYPE cvbridge_target_circuit_open gauge
cvbridge_target_circuit_open{target="acme"} 0
cvbridge_target_circuit_open{target="beta"} 1
# HELP cvbridge_target_circuit_openings_total How often a target's circuit opened after transient failures in a row, by target.
# TYPE cvbridge_target_circuit_openings_total counter
cvbridge_target_circuit_openings_total{target="beta"} 2
`), "cvbridge_target_circuit_open", "cvbridge_target_circuit_openings_total"))
	m.Forget(nil, []string{"beta"})
	assert.NotContains(t, scrape(t, m), `"beta"`)
}

func TestForgetDropsRemovedNames(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{})
	for _, name := range []string{"old", "kept"} {
		m.Committed(name, source.Summary{Queued: 1})
		m.Polled(name, time.Second, nil)
		m.Polled(name, time.Second, errors.New("down"))
		m.Problems(name, source.Problems{BadRows: 1, FailedFiles: 1})
		m.Delivered(delivery.Outcome{Target: name, Class: delivery.Delivered, State: outbox.StateDelivered, Duration: time.Second})
	}
	m.Forget([]string{"old"}, []string{"old"})
	body := scrape(t, m)
	assert.NotContains(t, body, `"old"`)
	for _, family := range []string{
		`cvbridge_results_enqueued_total{connection="kept",outcome="queued"} 1`,
		`cvbridge_adapter_run_errors_total{connection="kept"} 1`,
		`cvbridge_intake_bad_rows_total{connection="kept"} 1`,
		`cvbridge_intake_failed_files_total{connection="kept"} 1`,
		`cvbridge_results_delivered_total{target="kept"} 1`,
	} {
		assert.Contains(t, body, family+"\n")
	}
	assert.Contains(t, body, `cvbridge_adapter_last_success_timestamp_seconds{connection="kept"} `)
}
