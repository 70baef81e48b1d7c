package delivery_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// circuitSettings send one request at a time, so the counts are exact.
func circuitSettings() delivery.Settings {
	s := testSettings()
	s.Concurrency = 1
	return s
}

// logLines returns the env's log lines whose msg starts with prefix.
func (e *env) logLines(prefix string) []map[string]any {
	e.t.Helper()
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		require.NoError(e.t, json.Unmarshal([]byte(l), &m))
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			lines = append(lines, m)
		}
	}
	return lines
}

// levels counts the lines by level.
func levels(lines []map[string]any) map[string]int {
	n := map[string]int{}
	for _, l := range lines {
		n[l["level"].(string)]++
	}
	return n
}

func TestCircuitOpensAfterFiveTransientFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusServiceUnavailable, "Onderhoud"))
	ids := e.enqueueN(10)
	d := e.dispatcher(circuitSettings(), "w1")

	assert.Equal(t, 5, e.runDue(d), "the fifth 503 in a row opens the circuit")
	c := d.Circuit()
	assert.True(t, c.Open)
	assert.Equal(t, t0, c.OpenedAt)
	assert.Equal(t, 5, c.Failures)
	assert.Equal(t, 1, c.Openings)
	assert.Equal(t, "Coachview answered 503 Service Unavailable", c.Reason, "without Coachview's text")
	assert.Equal(t, t0.Add(30*time.Second), c.NextProbe, "the transient schedule's first delay")
	for i, id := range ids {
		it, attempts := e.get(id)
		assert.Equal(t, outbox.StatePending, it.State, "row %d", i)
		assert.Empty(t, it.LeaseOwner, "row %d released", i)
		if i < 5 {
			assert.Equal(t, 1, it.Tries, "row %d was sent once", i)
			assert.Len(t, attempts, 1)
		} else {
			assert.Zero(t, it.Tries, "row %d was not sent, so not charged", i)
			assert.Empty(t, attempts)
			assert.Equal(t, t0, it.NextAttemptAt, "row %d is due as before", i)
		}
	}

	opened := e.logLines("target circuit opened")
	require.Len(t, opened, 1)
	assert.Equal(t, "WARN", opened[0]["level"])
	assert.EqualValues(t, 5, opened[0]["failures"])
	assert.Equal(t, c.Reason, opened[0]["reason"])
	assert.Equal(t, map[string]int{"WARN": 4, "DEBUG": 1}, levels(e.logLines("delivery")),
		"a WARN per result until the circuit opens, none after")

	// Nothing more until the probe is due, however often the dispatcher is woken.
	for range 29 {
		e.clk.Advance(time.Second)
		assert.Zero(t, e.runDue(d))
	}
	assert.Equal(t, 5, e.cv.count())
}

func TestCircuitProbePace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusServiceUnavailable, "Onderhoud"))
	e.enqueueN(20)
	s := circuitSettings()
	s.Retry.Transient.Cap = 2 * time.Minute
	d := e.dispatcher(s, "w1")
	require.Equal(t, 5, e.runDue(d))

	// Polled every second for 10 minutes: probes 30s, 1m and 2m apart, then
	// every 2m (the cap): at 0:30, 1:30, 3:30, 5:30, 7:30, 9:30.
	var probes []time.Duration
	for range 600 {
		e.clk.Advance(time.Second)
		if n := e.runDue(d); n > 0 {
			require.Equal(t, 1, n, "one probe at a time")
			probes = append(probes, e.clk.Now().Sub(t0))
		}
	}
	assert.Equal(t, []time.Duration{30 * time.Second, 90 * time.Second, 210 * time.Second,
		330 * time.Second, 450 * time.Second, 570 * time.Second}, probes)
	c := d.Circuit()
	assert.True(t, c.Open)
	assert.Equal(t, 6, c.Probes)
	assert.Equal(t, 11, c.Failures)
	assert.Equal(t, 1, c.Openings, "a failed probe does not open it again")
	assert.Equal(t, t0.Add(690*time.Second), c.NextProbe)

	failed := e.logLines("target circuit stays open")
	require.Len(t, failed, 6, "one line per probe")
	assert.Equal(t, map[string]int{"INFO": 6}, levels(failed))
	assert.Equal(t, map[string]int{"WARN": 4, "DEBUG": 7}, levels(e.logLines("delivery")))

	// Each probe takes the row due longest: no row is charged twice.
	rows, err := e.store.List(e.ctx, outbox.Filter{Target: targetName})
	require.NoError(t, err)
	for _, it := range rows {
		assert.LessOrEqual(t, it.Tries, 1, "row %d", it.ID)
	}
}

func TestCircuitProbeHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(int, *http.Request) reply {
		return reply{status: http.StatusServiceUnavailable, header: map[string]string{"Retry-After": "600"}}
	})
	e.enqueueN(6)
	d := e.dispatcher(circuitSettings(), "w1")
	require.Equal(t, 5, e.runDue(d))
	assert.Equal(t, t0.Add(10*time.Minute), d.Circuit().NextProbe)
}

// TestCircuitClosesOnAnyAnswer: a probe that Coachview answers, whatever
// it says about the one result, closes the circuit, and the rest of the
// backlog is sent in the same step.
func TestCircuitClosesOnAnyAnswer(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, always(http.StatusServiceUnavailable, "Onderhoud"))
			ids := e.enqueueN(10)
			var events []bool
			var mu sync.Mutex
			d, err := delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer(t), Settings: circuitSettings()},
				e.store, delivery.Options{Clock: e.clk, Jitter: zeroJitter, Logger: e.logger(), Owner: "w1",
					Circuit: func(target string, open bool) {
						assert.Equal(t, targetName, target)
						mu.Lock()
						events = append(events, open)
						mu.Unlock()
					}})
			require.NoError(t, err)
			require.Equal(t, 5, e.runDue(d))

			probed := false
			e.cv.setRespond(func(int, *http.Request) reply {
				if !probed {
					probed = true
					return reply{status: status, body: "antwoord"}
				}
				return reply{status: http.StatusOK}
			})
			e.clk.Set(t0.Add(time.Minute))
			assert.Equal(t, 10, e.runDue(d), "the probe, then every row at full speed")
			assert.False(t, d.Circuit().Open)
			assert.Zero(t, d.Circuit().Failures)
			mu.Lock()
			assert.Equal(t, []bool{true, false}, events, "told of the opening and the closing")
			mu.Unlock()
			closed := e.logLines("target circuit closed")
			require.Len(t, closed, 1)
			assert.Equal(t, "INFO", closed[0]["level"])
			assert.EqualValues(t, status, closed[0]["status"])
			assert.EqualValues(t, time.Minute, closed[0]["open_for"])
			for _, id := range ids[5:] {
				it, _ := e.get(id)
				assert.Equal(t, 1, it.Tries, "sent once, after the circuit closed")
			}
		})
	}
}

// TestServerErrorsDoNotOpenTheCircuit: a 500 is about one message, and
// shows that Coachview is up: it neither counts towards the circuit nor
// lets the 503s before it count on.
func TestServerErrorsDoNotOpenTheCircuit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusInternalServerError, "Fout bij verwerken"))
	e.enqueueN(10)
	d := e.dispatcher(circuitSettings(), "w1")
	assert.Equal(t, 10, e.runDue(d))
	assert.False(t, d.Circuit().Open)

	e2 := newEnv(t, func(n int, _ *http.Request) reply {
		if n == 5 {
			return reply{status: http.StatusInternalServerError}
		}
		return reply{status: http.StatusServiceUnavailable}
	})
	e2.enqueueN(9)
	d2 := e2.dispatcher(circuitSettings(), "w1")
	assert.Equal(t, 9, e2.runDue(d2), "four 503s, a 500, four 503s")
	assert.False(t, d2.Circuit().Open)
	assert.Equal(t, 4, d2.Circuit().Failures)
}

// TestTransientClassesOpenTheCircuit: 429, 502 and 504 say Coachview (or
// the gateway in front of it) cannot take requests now, as a 503 does.
func TestTransientClassesOpenTheCircuit(t *testing.T) {
	t.Parallel()
	statuses := []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusServiceUnavailable, http.StatusTooManyRequests}
	e := newEnv(t, func(n int, _ *http.Request) reply { return reply{status: statuses[(n-1)%len(statuses)]} })
	e.enqueueN(8)
	d := e.dispatcher(circuitSettings(), "w1")
	assert.Equal(t, 5, e.runDue(d))
	assert.True(t, d.Circuit().Open)
}

// TestConnectionRefusedOpensTheCircuit: no Coachview listening at all.
func TestConnectionRefusedOpensTheCircuit(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + l.Addr().String() + "/elearning/result.aspx"
	require.NoError(t, l.Close())

	e := newEnv(t, ok)
	ids := e.enqueueN(40)
	s := testSettings() // two workers
	d := e.dispatcherFor(url, s, "w1")
	n := e.runDue(d)
	assert.GreaterOrEqual(t, n, 5)
	assert.LessOrEqual(t, n, 5+s.Concurrency, "at most the requests in flight as it opened")
	c := d.Circuit()
	assert.True(t, c.Open)
	assert.Contains(t, c.Reason, "connection refused")
	tries := 0
	for _, id := range ids {
		it, _ := e.get(id)
		assert.Equal(t, outbox.StatePending, it.State)
		tries += it.Tries
	}
	assert.Equal(t, n, tries, "only the rows sent were charged an attempt")

	e.clk.Advance(29 * time.Second)
	assert.Zero(t, e.runDue(d))
	e.clk.Advance(time.Second)
	assert.Equal(t, 1, e.runDue(d), "one probe")
	assert.Equal(t, t0.Add(90*time.Second), d.Circuit().NextProbe)
}

// TestForbiddenProbeWhileCircuitOpen: the probe of an open circuit meets a
// 403. Coachview answered, so the circuit closes; the 403 pauses the
// target as ever, and the pause's probes take over until the secret is fixed.
func TestForbiddenProbeWhileCircuitOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusServiceUnavailable, ""))
	ids := e.enqueueN(8)
	d := e.dispatcher(circuitSettings(), "w1")
	require.Equal(t, 5, e.runDue(d))
	require.True(t, d.Circuit().Open)

	e.cv.setRespond(ok)
	e.cv.setSecret("the secret Coachview has now")
	e.clk.Set(t0.Add(30 * time.Second))
	assert.Equal(t, 1, e.runDue(d), "the probe")
	assert.False(t, d.Circuit().Open)
	st := e.targetState()
	assert.True(t, st.Paused)
	assert.Equal(t, delivery.ForbiddenReason, st.Reason)
	assert.Equal(t, t0.Add(30*time.Second+15*time.Minute), st.NextProbeAt)

	e.clk.Advance(14 * time.Minute)
	assert.Zero(t, e.runDue(d), "paused: nothing before the pause's probe")
	e.cv.setSecret(secret)
	e.clk.Advance(time.Minute)
	assert.Equal(t, 8, e.runDue(d), "the pause's probe resumes the target, and the rest follows")
	for _, id := range ids {
		it, _ := e.get(id)
		assert.Equal(t, outbox.StateDelivered, it.State)
	}
}

// TestManualPauseWhileCircuitOpen: the operator's pause sends nothing,
// not even the circuit's probes.
func TestManualPauseWhileCircuitOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusServiceUnavailable, ""))
	e.enqueueN(8)
	d := e.dispatcher(circuitSettings(), "w1")
	require.Equal(t, 5, e.runDue(d))
	require.NoError(t, delivery.Pause(e.ctx, e.store, targetName, "", e.clk.Now()))
	e.clk.Advance(time.Hour)
	assert.Zero(t, e.runDue(d))
	assert.Equal(t, 5, e.cv.count())
}

// TestCircuitAfterMustBePositive: retry.circuit_after is checked.
func TestCircuitAfterMustBePositive(t *testing.T) {
	t.Parallel()
	s := delivery.DefaultSettings()
	assert.Equal(t, 5, s.Retry.CircuitAfter)
	s.Retry.CircuitAfter = 0
	assert.ErrorContains(t, s.Validate(), "retry.circuit_after: must be at least 1")
}
