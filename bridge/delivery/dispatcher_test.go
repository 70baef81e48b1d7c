package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

func TestStatusTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		reply    reply
		url      func(e *env) string // where to send; default the fake Coachview
		settings func(*delivery.Settings)
		handler  http.HandlerFunc // replaces the fake Coachview when set

		wantState  outbox.State
		wantNext   time.Duration // after t0; only for pending
		wantTries  int
		wantClass  delivery.Class
		wantStatus int
		wantError  []string // substrings of LastError
		wantPaused bool
	}{
		{
			name: "200 delivered", reply: reply{status: 200, body: "OK"},
			wantState: outbox.StateDelivered, wantTries: 1, wantClass: delivery.Delivered, wantStatus: 200,
		},
		{
			name: "400 parked with Coachview's text", reply: reply{status: 400, body: "Het bericht voldoet niet aan het XSD:\n  Datum is ongeldig"},
			wantState: outbox.StateFailed, wantTries: 1, wantClass: delivery.Rejected, wantStatus: 400,
			wantError: []string{"rejected the message as invalid (400 Bad Request)", `"Het bericht voldoet niet aan het XSD: Datum is ongeldig"`},
		},
		{
			name: "403 pauses the target and keeps the row", reply: reply{status: 403, body: "Ongeldige handtekening"},
			wantState: outbox.StatePending, wantNext: 0, wantTries: 0, wantClass: delivery.Forbidden, wantStatus: 403,
			wantError: []string{delivery.ForbiddenReason, "Ongeldige handtekening"}, wantPaused: true,
		},
		{
			name: "404 retried in an hour", reply: reply{status: 404, body: "Inschrijving niet gevonden"},
			wantState: outbox.StatePending, wantNext: time.Hour, wantTries: 1, wantClass: delivery.NotFound, wantStatus: 404,
			wantError: []string{"no person \"p1\" or no enrolment in e-learning \"e1\"", "ingepland", "Inschrijving niet gevonden"},
		},
		{
			name: "405 parked as misconfigured", reply: reply{status: 405, body: "Method Not Allowed"},
			wantState: outbox.StateFailed, wantTries: 1, wantClass: delivery.Misconfigured, wantStatus: 405,
			wantError: []string{"refused the POST (405 Method Not Allowed)", "URL Resultaten"},
		},
		{
			name:      "302 is not followed and parks",
			reply:     reply{status: 302, header: map[string]string{"Location": "https://example.invalid/login"}},
			wantState: outbox.StateFailed, wantTries: 1, wantClass: delivery.Misconfigured, wantStatus: 302,
			wantError: []string{"redirect (302 Found)", "https://example.invalid/login", "not followed"},
		},
		{
			name: "500 retried in 30 minutes", reply: reply{status: 500, body: "Object reference not set to an instance of an object."},
			wantState: outbox.StatePending, wantNext: 30 * time.Minute, wantTries: 1, wantClass: delivery.ServerError, wantStatus: 500,
			wantError: []string{"failed while processing the message (500 Internal Server Error)", "Object reference"},
		},
		{
			name: "503 retried after the base backoff", reply: reply{status: 503, body: "Onderhoud"},
			wantState: outbox.StatePending, wantNext: 30 * time.Second, wantTries: 1, wantClass: delivery.Transient, wantStatus: 503,
			wantError: []string{"temporarily unavailable (503 Service Unavailable)", "Onderhoud"},
		},
		{
			name:      "503 Retry-After in seconds is honoured",
			reply:     reply{status: 503, header: map[string]string{"Retry-After": "120"}},
			wantState: outbox.StatePending, wantNext: 2 * time.Minute, wantTries: 1, wantClass: delivery.Transient, wantStatus: 503,
		},
		{
			name:      "503 Retry-After never shortens the backoff",
			reply:     reply{status: 503, header: map[string]string{"Retry-After": "5"}},
			wantState: outbox.StatePending, wantNext: 30 * time.Second, wantTries: 1, wantClass: delivery.Transient, wantStatus: 503,
		},
		{
			name:      "503 Retry-After as an HTTP date",
			reply:     reply{status: 503, header: map[string]string{"Retry-After": t0.Add(2 * time.Hour).Format(http.TimeFormat)}},
			wantState: outbox.StatePending, wantNext: 2 * time.Hour, wantTries: 1, wantClass: delivery.Transient, wantStatus: 503,
		},
		{
			name:      "503 Retry-After is capped",
			reply:     reply{status: 503, header: map[string]string{"Retry-After": "86400"}},
			wantState: outbox.StatePending, wantNext: 6 * time.Hour, wantTries: 1, wantClass: delivery.Transient, wantStatus: 503,
		},
		{
			name:      "429 is transient and honours Retry-After",
			reply:     reply{status: 429, header: map[string]string{"Retry-After": "600"}},
			wantState: outbox.StatePending, wantNext: 10 * time.Minute, wantTries: 1, wantClass: delivery.Transient, wantStatus: 429,
		},
		{
			name: "502 is transient", reply: reply{status: 502},
			wantState: outbox.StatePending, wantNext: 30 * time.Second, wantTries: 1, wantClass: delivery.Transient, wantStatus: 502,
		},
		{
			name: "connection refused is transient",
			url: func(*env) string {
				closed := httptest.NewServer(http.NotFoundHandler())
				closed.Close()
				return closed.URL
			},
			wantState: outbox.StatePending, wantNext: 30 * time.Second, wantTries: 1, wantClass: delivery.Transient, wantStatus: 0,
			wantError: []string{"could not reach Coachview", "connection refused"},
		},
		{
			name:     "timeout is transient",
			settings: func(s *delivery.Settings) { s.Timeout, s.ConnectTimeout = 100*time.Millisecond, 100*time.Millisecond },
			handler: func(w http.ResponseWriter, r *http.Request) {
				// Reading the body lets the server notice the client hanging up.
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done() // answers only after the client gave up
			},
			wantState: outbox.StatePending, wantNext: 30 * time.Second, wantTries: 1, wantClass: delivery.Transient, wantStatus: 0,
			wantError: []string{"Coachview did not answer within 100ms"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(int, *http.Request) reply { return tc.reply })
			url := e.cv.srv.URL
			switch {
			case tc.url != nil:
				url = tc.url(e)
			case tc.handler != nil:
				srv := httptest.NewServer(tc.handler)
				t.Cleanup(srv.Close)
				url = srv.URL
			}
			s := testSettings()
			if tc.settings != nil {
				tc.settings(&s)
			}
			id := e.enqueue("e1", "p1")
			d := e.dispatcherFor(url, s, "w1")

			assert.Equal(t, 1, e.runDue(d))

			it, attempts := e.get(id)
			assert.Equal(t, tc.wantState, it.State)
			assert.Equal(t, tc.wantTries, it.Tries)
			if tc.wantState == outbox.StatePending {
				assert.Equal(t, t0.Add(tc.wantNext), it.NextAttemptAt)
			}
			for _, s := range tc.wantError {
				assert.Contains(t, it.LastError, s)
			}
			if tc.wantState == outbox.StateDelivered {
				assert.Empty(t, it.LastError)
			}
			assert.Empty(t, it.LeaseOwner, "the lease is given up")
			require.Len(t, attempts, 1, "every attempt is recorded")
			assert.Equal(t, tc.wantStatus, attempts[0].Status)
			assert.Equal(t, string(tc.wantClass), attempts[0].Class)
			assert.Equal(t, t0, attempts[0].At)
			if tc.wantStatus == 0 {
				assert.NotEmpty(t, attempts[0].Error)
			} else {
				assert.Equal(t, tc.reply.body, attempts[0].Response)
			}
			assert.Equal(t, tc.wantPaused, e.targetState().Paused)
			if tc.url == nil && tc.handler == nil {
				assert.Equal(t, 1, e.cv.count(), "exactly one request, redirects not followed")
			}
		})
	}
}

func TestRequestWireFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	id := e.enqueue("e1", "p1")
	s := testSettings()
	s.ContentType = "application/xml; charset=utf-8"
	e.runDue(e.dispatcher(s, "w1"))

	it, _ := e.get(id)
	require.Equal(t, outbox.StateDelivered, it.State)
	e.cv.mu.Lock()
	defer e.cv.mu.Unlock()
	require.Len(t, e.cv.bodies, 1)
	assert.Equal(t, resultXML("e1", "p1"), e.cv.bodies[0], "the exact stored body")
	h := e.cv.headers[0]
	assert.Equal(t, "application/xml; charset=utf-8", h.Get("Content-Type"))
	assert.Equal(t, "cvbridge/"+version, h.Get("User-Agent"))
	assert.Equal(t, sign.Sign(sign.SHA512, []byte(secret), e.cv.bodies[0]), h.Get(sign.Header))
}

func TestLargeResponseIsCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusBadRequest, strings.Repeat("ongeldig ", 20000)))
	id := e.enqueue("e1", "p1")
	e.runDue(e.dispatcher(testSettings(), "w1"))

	it, attempts := e.get(id)
	assert.Equal(t, outbox.StateFailed, it.State)
	require.Len(t, attempts, 1)
	assert.LessOrEqual(t, len(attempts[0].Response), outbox.MaxResponseExcerpt)
	assert.True(t, strings.HasPrefix(attempts[0].Response, "ongeldig ongeldig"))
	assert.Less(t, len(it.LastError), outbox.MaxResponseExcerpt+200)
}

func TestNotFoundRetriedHourlyThenParked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusNotFound, "Persoon niet gevonden"))
	id := e.enqueue("e1", "p1")
	d := e.dispatcher(testSettings(), "w1")

	attempts := e.untilSettled(d, id, 500)

	it, recorded := e.get(id)
	assert.Equal(t, outbox.StateFailed, it.State)
	// Tries at t0, t0+1h, … t0+168h: the one at 7 days parks.
	assert.Equal(t, 169, attempts)
	assert.Equal(t, 169, e.cv.count())
	assert.Len(t, recorded, 169)
	assert.Equal(t, t0.Add(7*24*time.Hour), recorded[len(recorded)-1].At)
	assert.Equal(t, 169, it.Streak)
	assert.Equal(t, t0, it.StreakSince)
	assert.Contains(t, it.LastError, "no longer 'ingepland'")
	assert.Contains(t, it.LastError, "still so after 7 days")

	e.clk.Advance(30 * 24 * time.Hour)
	assert.Zero(t, e.runDue(d), "a parked row is not sent again")
}

func TestServerErrorParkedAfterThreeTries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusInternalServerError, "Interne fout 0x1f"))
	id := e.enqueue("e1", "p1")
	d := e.dispatcher(testSettings(), "w1")

	assert.Equal(t, 3, e.untilSettled(d, id, 10))

	it, recorded := e.get(id)
	assert.Equal(t, outbox.StateFailed, it.State)
	require.Len(t, recorded, 3)
	assert.Equal(t, []time.Time{t0, t0.Add(30 * time.Minute), t0.Add(time.Hour)},
		[]time.Time{recorded[0].At, recorded[1].At, recorded[2].At})
	assert.Contains(t, it.LastError, `"Interne fout 0x1f"`)
	assert.Contains(t, it.LastError, "3 times in a row: contact Coachview")
}

func TestClassChangeResetsStreak(t *testing.T) {
	t.Parallel()
	// 500, 500, 503, 500, 500: never three 500s in a row, so still pending.
	statuses := []int{500, 500, 503, 500, 500}
	e := newEnv(t, func(n int, _ *http.Request) reply { return reply{status: statuses[n-1]} })
	id := e.enqueue("e1", "p1")
	d := e.dispatcher(testSettings(), "w1")
	for range statuses {
		require.Equal(t, 1, e.runDue(d))
		it, _ := e.get(id)
		e.clk.Set(it.NextAttemptAt)
	}
	it, _ := e.get(id)
	assert.Equal(t, outbox.StatePending, it.State)
	assert.Equal(t, 5, it.Tries)
	assert.Equal(t, 2, it.Streak)
	assert.Equal(t, string(delivery.ServerError), it.LastClass)
}

func TestTransientForDaysThenDelivered(t *testing.T) {
	t.Parallel()
	const outage = 3 * 24 * time.Hour
	e := newEnv(t, nil)
	e.cv.setRespond(func(int, *http.Request) reply {
		if e.clk.Now().Before(t0.Add(outage)) {
			return reply{status: http.StatusServiceUnavailable, body: "Onderhoud"}
		}
		return reply{status: http.StatusOK}
	})
	id := e.enqueue("e1", "p1")
	d := e.dispatcher(testSettings(), "w1")

	attempts := e.untilSettled(d, id, 1000)

	// The schedule: 30s doubling to a 1h cap, from t0 until the outage ends.
	want, at, delay := 1, time.Duration(0), 30*time.Second
	for at < outage {
		at += delay
		delay = min(2*delay, time.Hour)
		want++
	}
	it, _ := e.get(id)
	assert.Equal(t, outbox.StateDelivered, it.State)
	assert.Equal(t, want, attempts)
	assert.Equal(t, want, e.cv.count())
	assert.LessOrEqual(t, want, 7+72+1, "at most the doubling steps plus one try an hour")
	assert.Equal(t, t0.Add(at), it.DeliveredAt)
}

// TestTransientParkedAfterMaxAge: a run of 503s parks its row at
// transient's max_age. So does a run of 500s and 503s taking turns, which
// never makes three 500s in a row: the run keeps its start.
func TestTransientParkedAfterMaxAge(t *testing.T) {
	t.Parallel()
	alternating := func(n int, _ *http.Request) reply {
		if n%2 == 1 {
			return reply{status: http.StatusInternalServerError}
		}
		return reply{status: http.StatusServiceUnavailable}
	}
	tests := []struct {
		name    string
		respond func(int, *http.Request) reply
		within  time.Duration // the park comes within this of max_age
	}{
		{"503s", always(http.StatusServiceUnavailable, ""), time.Hour},            // one capped step
		{"500s and 503s taking turns", alternating, 30*time.Minute + time.Minute}, // server_error's interval and a 503's delay
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.respond)
			id := e.enqueue("e1", "p1")
			s := testSettings()
			s.Retry.Transient.MaxAge = 24 * time.Hour
			d := e.dispatcher(s, "w1")

			e.untilSettled(d, id, 1000)

			it, recorded := e.get(id)
			assert.Equal(t, outbox.StateFailed, it.State)
			assert.Contains(t, it.LastError, "Coachview unreachable for 1 day")
			assert.Equal(t, t0, it.StreakSince, "the run started with the first failure")
			last := recorded[len(recorded)-1]
			assert.Equal(t, http.StatusServiceUnavailable, last.Status)
			assert.False(t, last.At.Before(t0.Add(24*time.Hour)), "parked no earlier than max_age")
			assert.True(t, last.At.Before(t0.Add(24*time.Hour+tc.within)), "parked at the first 503 after max_age")
		})
	}
}

func TestForbiddenPausesProbesAndResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	e.cv.setSecret("the secret Coachview has")
	ids := e.enqueueN(3)
	s := testSettings()
	s.Concurrency, s.Batch = 1, 10
	d := e.dispatcher(s, "w1")

	require.Equal(t, 1, e.runDue(d), "the 403 stops the batch")
	st := e.targetState()
	assert.True(t, st.Paused)
	assert.False(t, delivery.PausedManually(st))
	assert.Equal(t, delivery.ForbiddenReason, st.Reason)
	assert.Equal(t, t0, st.PausedAt)
	assert.Equal(t, t0.Add(15*time.Minute), st.NextProbeAt)
	for i, id := range ids {
		it, attempts := e.get(id)
		assert.Equal(t, outbox.StatePending, it.State, "row %d", i)
		assert.Zero(t, it.Tries, "a 403 does not count as a try")
		assert.Zero(t, it.Streak)
		assert.Empty(t, it.LeaseOwner, "released")
		assert.Equal(t, t0, it.NextAttemptAt)
		if i == 0 {
			require.Len(t, attempts, 1)
			assert.Equal(t, string(delivery.Forbidden), attempts[0].Class)
		} else {
			assert.Empty(t, attempts, "never sent")
		}
	}

	// One probe per 15 minutes, whatever the polling.
	for range 60 {
		e.clk.Advance(time.Minute)
		e.runDue(d)
	}
	assert.Equal(t, 1+4, e.cv.count(), "probes at 15, 30, 45 and 60 minutes")
	st = e.targetState()
	assert.True(t, st.Paused)
	assert.Equal(t, t0, st.PausedAt, "a failed probe keeps the pause's start")
	assert.Equal(t, t0.Add(75*time.Minute), st.NextProbeAt, "each 403 re-arms the probe")

	// A restarted daemon stays paused.
	e.clk.Advance(time.Minute)
	assert.Zero(t, e.runDue(e.dispatcher(s, "w2")))

	// The operator fixes the secret; the next probe resumes and drains.
	e.cv.setSecret(secret)
	e.clk.Set(t0.Add(75 * time.Minute))
	assert.Equal(t, 3, e.runDue(d), "the probe and then the rest")
	assert.False(t, e.targetState().Paused)
	for _, id := range ids {
		it, _ := e.get(id)
		assert.Equal(t, outbox.StateDelivered, it.State)
		assert.Equal(t, 1, it.Tries, "only the 200 counted")
	}
	assert.Contains(t, e.logs.String(), "target resumed")
}

func TestTransientProbeKeepsPause(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusServiceUnavailable, "Onderhoud"))
	e.enqueueN(2)
	require.NoError(t, e.store.SetTargetState(e.ctx, outbox.TargetState{
		Target: targetName, Paused: true, Reason: delivery.ForbiddenReason, PausedAt: t0, NextProbeAt: t0,
	}))
	d := e.dispatcher(testSettings(), "w1")

	assert.Equal(t, 1, e.runDue(d), "one probe")
	st := e.targetState()
	assert.True(t, st.Paused, "a 503 says nothing about the signature")
	assert.Equal(t, t0.Add(15*time.Minute), st.NextProbeAt)
}

// TestProbeKeepsTheOperatorsResume: the operator resumes a target paused by
// a 403 while its probe is in flight, and the probe meets a 503. The probe
// must not write the 403 pause back over the operator's resume.
func TestProbeKeepsTheOperatorsResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.cv.setRespond(func(int, *http.Request) reply {
		require.NoError(t, delivery.Resume(e.ctx, e.store, targetName))
		return reply{status: http.StatusServiceUnavailable, body: "Onderhoud"}
	})
	e.enqueueN(2)
	require.NoError(t, e.store.SetTargetState(e.ctx, outbox.TargetState{
		Target: targetName, Paused: true, Reason: delivery.ForbiddenReason, PausedAt: t0, NextProbeAt: t0,
	}))
	d := e.dispatcher(testSettings(), "w1")

	assert.Equal(t, 1, e.runDue(d), "one probe")
	assert.False(t, e.targetState().Paused, "the operator's resume stands")
}

// TestProbeKeepsTheOperatorsPause: the operator pauses a target by hand
// while its 403 probe is in flight, and the probe is accepted. The manual
// pause stands, and nothing more is sent.
func TestProbeKeepsTheOperatorsPause(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.cv.setRespond(func(int, *http.Request) reply {
		require.NoError(t, delivery.Pause(e.ctx, e.store, targetName, "Coachview migration", e.clk.Now()))
		return reply{status: http.StatusOK}
	})
	e.enqueueN(3)
	require.NoError(t, e.store.SetTargetState(e.ctx, outbox.TargetState{
		Target: targetName, Paused: true, Reason: delivery.ForbiddenReason, PausedAt: t0, NextProbeAt: t0,
	}))
	d := e.dispatcher(testSettings(), "w1")

	assert.Equal(t, 1, e.runDue(d), "the probe only")
	assert.True(t, delivery.PausedManually(e.targetState()), "the operator's pause stands")
	assert.Equal(t, 1, e.cv.count())
}

func TestManualPause(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	ids := e.enqueueN(2)
	require.NoError(t, delivery.Pause(e.ctx, e.store, targetName, "Coachview migration tonight", t0))
	st := e.targetState()
	assert.True(t, delivery.PausedManually(st))
	assert.Equal(t, "paused by the operator: Coachview migration tonight", st.Reason)

	d := e.dispatcher(testSettings(), "w1")
	for range 24 {
		e.clk.Advance(time.Hour)
		assert.Zero(t, e.runDue(d))
	}
	assert.Zero(t, e.cv.count(), "a manual pause sends nothing, not even probes")

	require.NoError(t, delivery.Resume(e.ctx, e.store, targetName))
	assert.Equal(t, 2, e.runDue(d))
	for _, id := range ids {
		it, _ := e.get(id)
		assert.Equal(t, outbox.StateDelivered, it.State)
	}
}

func TestForbiddenKeepsManualPause(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	// The operator pauses while a request is in flight, and that request
	// then gets a 403: the pause must stay manual (no probes).
	e.cv.setRespond(func(int, *http.Request) reply {
		require.NoError(t, delivery.Pause(e.ctx, e.store, targetName, "", t0))
		return reply{status: http.StatusForbidden}
	})
	e.enqueueN(2)
	s := testSettings()
	s.Concurrency = 1
	d := e.dispatcher(s, "w1")
	require.Equal(t, 1, e.runDue(d))

	st := e.targetState()
	assert.True(t, delivery.PausedManually(st))
	assert.Equal(t, "paused by the operator", st.Reason)
	e.clk.Advance(24 * time.Hour)
	assert.Zero(t, e.runDue(d))
	assert.Equal(t, 1, e.cv.count())
}

func TestNeverDeliveredTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	id := e.enqueue("e1", "p1")
	d := e.dispatcher(testSettings(), "w1")
	require.Equal(t, 1, e.runDue(d))

	for range 48 {
		e.clk.Advance(time.Hour)
		assert.Zero(t, e.runDue(d))
	}
	// A retake's better result for the same pair is recorded, not sent.
	require.NoError(t, e.store.InTx(e.ctx, func(tx outbox.Tx) error {
		outcome, err := tx.Enqueue(e.ctx, outbox.NewResult{
			Target: targetName, Connection: "lms", ElearningCode: "e1", PersonID: "P1",
			Body: resultXML("e1", "P1"),
		}, outbox.EnqueuePolicy{ReplacePending: true})
		assert.Equal(t, outbox.Ignored, outcome)
		return err
	}))
	e.clk.Advance(time.Hour)
	assert.Zero(t, e.runDue(d))
	assert.Equal(t, 1, e.cv.count())
	it, _ := e.get(id)
	assert.Equal(t, outbox.StateDelivered, it.State)
}

func TestExpiredLeaseIsDeliveredByAnother(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	id := e.enqueue("e1", "p1")
	s := testSettings()
	// A worker claims the row and dies before answering.
	claimed, err := e.store.Claim(e.ctx, targetName, "dead-worker", 10, t0, s.LeaseDuration())
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	d := e.dispatcher(s, "w2")
	assert.Zero(t, e.runDue(d), "leased to someone else")
	e.clk.Advance(s.LeaseDuration() - time.Millisecond)
	assert.Zero(t, e.runDue(d), "lease not yet run out")
	e.clk.Advance(time.Millisecond)
	assert.Equal(t, 1, e.runDue(d))

	it, attempts := e.get(id)
	assert.Equal(t, outbox.StateDelivered, it.State)
	assert.Len(t, attempts, 1)
	err = e.store.Finish(e.ctx, outbox.Finish{ID: id, Owner: "dead-worker", State: outbox.StateDelivered})
	assert.ErrorIs(t, err, outbox.ErrLeaseLost, "the dead worker cannot record over it")
}

func TestShortLeaseIsReleasedNotSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	s := testSettings() // lease 2×5s+30s = 40s
	// Each answer takes the whole lease, so a second row claimed with the
	// first would have to be sent under a lease that may already be gone.
	e.cv.setRespond(func(int, *http.Request) reply {
		e.clk.Advance(s.LeaseDuration())
		return reply{status: http.StatusOK}
	})
	ids := e.enqueueN(3)
	s.Concurrency, s.Batch = 1, 3
	d := e.dispatcher(s, "w1")

	assert.Equal(t, 1, e.runDue(d))
	first, _ := e.get(ids[0])
	assert.Equal(t, outbox.StateDelivered, first.State, "a finished attempt is recorded although its lease ran out")
	for _, id := range ids[1:] {
		it, attempts := e.get(id)
		assert.Equal(t, outbox.StatePending, it.State)
		assert.Empty(t, it.LeaseOwner)
		assert.Empty(t, attempts)
	}
}

// TestRowSentOnlyWithLeaseToRecordIt: a row is sent only while its lease
// leaves, beyond the request's timeout, half the rest as a margin to
// record the answer. Answers that take almost the whole timeout would
// otherwise see a row deep in the batch sent with its lease running out
// as the answer comes, so that a second daemon (whose clock may run
// ahead) claims and sends it again.
func TestRowSentOnlyWithLeaseToRecordIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	s := testSettings() // timeout 5s, lease 2×5s+30s = 40s: sent while 22.5s are left
	s.Concurrency, s.Batch, s.RecordAhead = 1, 8, 0
	var mu sync.Mutex
	var leftAtSend []time.Duration
	claimedAt := e.clk.Now()
	e.cv.setRespond(func(int, *http.Request) reply {
		mu.Lock()
		leftAtSend = append(leftAtSend, claimedAt.Add(s.LeaseDuration()).Sub(e.clk.Now()))
		mu.Unlock()
		e.clk.Advance(4900 * time.Millisecond)
		return reply{status: http.StatusOK}
	})
	ids := e.enqueueN(8)
	d := e.dispatcher(s, "w1")

	assert.Equal(t, 4, e.runDue(d), "rows sent at 40s, 35.1s, 30.2s and 25.3s of lease left; not at 20.4s")
	for _, left := range leftAtSend {
		assert.GreaterOrEqual(t, left, 22500*time.Millisecond)
	}
	for i, id := range ids {
		it, _ := e.get(id)
		if i < 4 {
			assert.Equal(t, outbox.StateDelivered, it.State)
		} else {
			assert.Equal(t, outbox.StatePending, it.State, "handed back")
			assert.Empty(t, it.LeaseOwner)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	const workers = 3
	e := newEnv(t, nil)
	// The first requests wait until all workers are busy, proving they run
	// together; more than workers in flight would show in maxInFlight.
	var gate sync.WaitGroup
	gate.Add(workers)
	e.cv.setRespond(func(n int, r *http.Request) reply {
		if n <= workers {
			gate.Done()
			gate.Wait()
		}
		return reply{status: http.StatusOK}
	})
	ids := e.enqueueN(10)
	s := testSettings()
	s.Concurrency, s.Batch = workers, 10
	assert.Equal(t, 10, e.runDue(e.dispatcher(s, "w1")))

	assert.Equal(t, int64(workers), e.cv.maxInFlight.Load())
	for _, id := range ids {
		it, _ := e.get(id)
		assert.Equal(t, outbox.StateDelivered, it.State)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	e.enqueueN(10)
	s := testSettings()
	s.RateLimit, s.Concurrency, s.Batch = 2, 4, 10
	d := e.dispatcher(s, "w1")

	steps := []struct {
		advance time.Duration
		want    int
	}{
		{0, 2},                      // a burst of one second's worth
		{0, 0},                      // no time passed: no tokens
		{500 * time.Millisecond, 1}, // one token per half second
		{time.Second, 2},
		{time.Minute, 2}, // tokens do not pile up beyond the burst
	}
	total := 0
	for i, st := range steps {
		e.clk.Advance(st.advance)
		n := e.runDue(d)
		assert.Equal(t, st.want, n, "step %d", i)
		total += n
	}
	assert.Equal(t, total, e.cv.count())
}

// signalStore reports each NextDue call, which Run makes right before it waits.
type signalStore struct {
	delivery.Store
	waiting chan struct{}
}

func (s *signalStore) NextDue(ctx context.Context, target string) (time.Time, bool, error) {
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	return s.Store.NextDue(ctx, target)
}

func TestRunWakesAndStopsPromptly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	started, proceed := make(chan struct{}, 10), make(chan struct{})
	e.cv.setRespond(func(int, *http.Request) reply {
		started <- struct{}{}
		<-proceed
		return reply{status: http.StatusOK}
	})
	s := testSettings()
	s.PollInterval = time.Hour // only Wake can make Run look again
	s.Concurrency, s.Batch = 1, 10
	store := &signalStore{Store: e.store, waiting: make(chan struct{}, 1)}
	signer, err := sign.NewSigner(sign.SHA512, []byte(secret))
	require.NoError(t, err)
	d, err := delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer, Settings: s}, store,
		delivery.Options{Clock: e.clk, Jitter: zeroJitter, Owner: "w1"})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	waitFor(t, store.waiting, "Run to go idle")
	ids := e.enqueueN(3)
	d.Wake()
	waitFor(t, started, "the first request after Wake")

	cancel()
	close(proceed)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	first, _ := e.get(ids[0])
	assert.Equal(t, outbox.StateDelivered, first.State, "the request in flight finished and was recorded")
	for _, id := range ids[1:] {
		it, attempts := e.get(id)
		assert.Equal(t, outbox.StatePending, it.State, "claimed but unsent rows are released")
		assert.Empty(t, it.LeaseOwner)
		assert.Empty(t, attempts)
	}
	assert.Equal(t, 1, e.cv.count())
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestOutcomeLogLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(n int, _ *http.Request) reply {
		if n == 1 {
			return reply{status: http.StatusServiceUnavailable, body: "Jan Jansen kon niet worden verwerkt"}
		}
		return reply{status: http.StatusOK}
	})
	id := e.enqueue("e1", "p-4711")
	d := e.dispatcher(testSettings(), "w1")
	e.untilSettled(d, id, 5)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		if m["msg"] == "delivery" {
			lines = append(lines, m)
		}
	}
	require.Len(t, lines, 2, "one line per outcome")
	retry, done := lines[0], lines[1]
	assert.Equal(t, targetName, retry["target"])
	assert.EqualValues(t, id, retry["result"])
	assert.Equal(t, "e1", retry["elearningcode"])
	assert.Equal(t, "p-4711", retry["person"])
	assert.EqualValues(t, 503, retry["status"])
	assert.Equal(t, "transient", retry["class"])
	assert.EqualValues(t, 1, retry["attempt"])
	assert.Contains(t, retry, "duration")
	assert.Equal(t, t0.Add(30*time.Second).Format(time.RFC3339Nano), retry["next"])
	assert.Equal(t, "WARN", retry["level"])

	assert.Equal(t, "delivered", done["class"])
	assert.EqualValues(t, 2, done["attempt"])
	assert.NotContains(t, done, "next")

	all := e.logs.String()
	assert.NotContains(t, all, "Jan Jansen", "Coachview's text may carry names")
	assert.NotContains(t, all, "CoachviewResultaat", "never the body")
	assert.NotContains(t, all, secret)
}

func TestNewRejectsBadTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	signer, err := sign.NewSigner(sign.SHA512, []byte(secret))
	require.NoError(t, err)
	bad := testSettings()
	bad.Concurrency = 0
	cases := []struct {
		name   string
		target delivery.Target
		want   string
	}{
		{"no name", delivery.Target{URL: "https://x.test/r", Signer: signer, Settings: testSettings()}, "no name"},
		{"relative url", delivery.Target{Name: "t", URL: "result.aspx", Signer: signer, Settings: testSettings()}, "url"},
		{"ftp url", delivery.Target{Name: "t", URL: "ftp://x.test/r", Signer: signer, Settings: testSettings()}, "not an http(s) URL"},
		{"no signer", delivery.Target{Name: "t", URL: "https://x.test/r", Settings: testSettings()}, "no signer"},
		{"bad settings", delivery.Target{Name: "t", URL: "https://x.test/r", Signer: signer, Settings: bad}, "target t: concurrency"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := delivery.New(tc.target, e.store, delivery.Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestManualPauseStopsADrainUnderWay: the operator pauses the target while
// a backlog is being sent (`cvbridge target pause`, or the dashboard's
// button, in another process). The step had read the state as it began;
// it kept claiming batch after batch until the backlog was gone, 14,000
// results in 3 seconds after "paused: nothing is sent". Now it claims no
// further batch, and hands back the rows it had not sent yet.
func TestManualPauseStopsADrainUnderWay(t *testing.T) {
	t.Parallel()
	const n = 600
	var e *env
	e = newEnv(t, func(i int, _ *http.Request) reply {
		if i == 20 {
			require.NoError(t, delivery.Pause(context.Background(), e.store, targetName, "Coachview migration", t0))
		}
		return reply{status: http.StatusOK, body: "OK"}
	})
	e.enqueueN(n)
	s := testSettings()
	d := e.dispatcher(s, "w1")
	sent := e.runDue(d)
	limit := 20 + 2*s.BatchSize() // the batch being sent, and the one claimed meanwhile
	assert.LessOrEqual(t, e.cv.count(), limit, "requests after the pause")
	assert.Equal(t, e.cv.count(), sent)
	counts, err := e.store.Counts(e.ctx, targetName)
	require.NoError(t, err)
	assert.Equal(t, n-sent, counts[outbox.StatePending], "the rest waits, unsent and untouched")
	assert.Zero(t, counts[outbox.StateSending], "no row is left leased")

	for range 3 {
		e.clk.Advance(time.Hour)
		assert.Zero(t, e.runDue(d), "paused")
	}
	require.NoError(t, delivery.Resume(e.ctx, e.store, targetName))
	assert.Equal(t, n-sent, e.runDue(d))
}

// outageStore is a store whose reads of the target state fail while down,
// as a store that cannot be reached does; every step then fails. A fake:
// the real cause seen from outside (a read-only outbox file) cannot be
// made here, where the tests run as root and write any file.
type outageStore struct {
	delivery.Store
	down atomic.Bool
}

func (s *outageStore) TargetState(ctx context.Context, target string) (outbox.TargetState, error) {
	if s.down.Load() {
		return outbox.TargetState{}, errors.New("attempt to write a readonly database")
	}
	return s.Store.TargetState(ctx, target)
}

// TestFailingStepsAreReported: while Run's steps fail the dispatcher says
// why and since when (for /readyz), keeping the time of the first failure,
// and stops saying so once a step succeeds.
func TestFailingStepsAreReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ok)
	e.enqueueN(2)
	store := &outageStore{Store: e.store}
	store.down.Store(true)
	s := testSettings()
	d, err := delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer(t), Settings: s}, store,
		delivery.Options{Clock: e.clk, Jitter: zeroJitter, Logger: e.logger(), Owner: "w1", Version: version})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	first := e.clk.Now()
	require.Eventually(t, func() bool { _, failing := d.Failing(); return failing }, 10*time.Second, time.Millisecond)
	e.clk.Advance(s.PollInterval)
	d.Wake()
	f, failing := d.Failing()
	require.True(t, failing)
	assert.Contains(t, f.Err, "readonly database")
	assert.True(t, f.Since.Equal(first), "the first failure's time is kept")

	store.down.Store(false)
	d.Wake()
	require.Eventually(t, func() bool { _, failing := d.Failing(); return !failing }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return e.cv.count() == 2 }, 10*time.Second, time.Millisecond)
}
