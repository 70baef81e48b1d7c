package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/admin"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/loginlimit"
	"github.com/cvbridge/cvbridge/bridge/metrics"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	require.NoError(t, f.store.Close()) // alive means alive, whatever the store says
	r := f.get(http.DefaultClient, "/healthz")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "ok\n", r.body)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	failing := func(failures int) func(*admin.Options) {
		return func(o *admin.Options) {
			o.Connections = func() []intake.Status {
				return []intake.Status{{Name: "moodle-main", Polls: 9, Failures: failures, FailingSince: epoch,
					LastError: "moodle: web service answered 503"}}
			}
		}
	}
	tests := []struct {
		name    string
		tweak   func(*admin.Options)
		prepare func(t *testing.T, f *fixture)
		status  int
		lines   []string
	}{
		{name: "ready", status: http.StatusOK, lines: []string{"ready"}},
		{name: "one failed poll", tweak: failing(1), status: http.StatusOK, lines: []string{"ready"}},
		{
			name: "two failed polls in a row", tweak: failing(2), status: http.StatusServiceUnavailable,
			lines: []string{"not ready", "connection moodle-main: its last 2 polls failed (since " + epoch.Format(time.RFC3339) +
				"): moodle: web service answered 503"},
		},
		{
			name: "a paused target",
			prepare: func(t *testing.T, f *fixture) {
				require.NoError(t, delivery.Pause(t.Context(), f.store, "beta", "maintenance", f.clk.Now()))
			},
			status: http.StatusServiceUnavailable,
			lines:  []string{"not ready", "target beta is paused: paused by the operator: maintenance"},
		},
		{
			name: "paused by a 403",
			prepare: func(t *testing.T, f *fixture) {
				require.NoError(t, f.store.SetTargetState(t.Context(), outbox.TargetState{
					Target: "acme", Paused: true, Reason: delivery.ForbiddenReason, PausedAt: f.clk.Now(), NextProbeAt: f.clk.Now().Add(time.Hour),
				}))
			},
			status: http.StatusServiceUnavailable,
			lines:  []string{"not ready", "target acme is paused: " + delivery.ForbiddenReason},
		},
		{
			name:    "store closed",
			prepare: func(t *testing.T, f *fixture) { require.NoError(t, f.store.Close()) },
			status:  http.StatusServiceUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.tweak)
			if tt.prepare != nil {
				tt.prepare(t, f)
			}
			r := f.get(http.DefaultClient, "/readyz")
			assert.Equal(t, tt.status, r.status, r.body)
			if tt.lines != nil {
				assert.Equal(t, strings.Join(tt.lines, "\n")+"\n", r.body)
			} else {
				assert.Contains(t, r.body, "not ready\nthe outbox store does not answer: ")
			}
		})
	}
}

func TestMetricsRoute(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	f := newFixture(t, func(o *admin.Options) {
		m = metrics.New(metrics.Options{Queue: o.Store.(metrics.Queue), Targets: o.Targets, Clock: o.Clock})
		o.Metrics = m.Handler()
	})
	m.Delivered(delivery.Outcome{Target: "acme", Class: delivery.Delivered, State: outbox.StateDelivered, Attempt: 1})
	r := f.get(http.DefaultClient, "/metrics")
	require.Equal(t, http.StatusOK, r.status)
	for _, family := range []string{
		"cvbridge_results_delivered_total", "cvbridge_delivery_attempts_total", "cvbridge_outbox_results",
		"cvbridge_outbox_oldest_pending_age_seconds", "cvbridge_target_paused", "cvbridge_store_up",
		"cvbridge_build_info",
	} {
		assert.Contains(t, r.body, "# TYPE "+family+" ", family)
	}
	assert.Contains(t, r.body, `cvbridge_outbox_results{state="failed",target="acme"} 1`)

	without := newFixture(t, nil)
	assert.Equal(t, http.StatusNotFound, without.get(http.DefaultClient, "/metrics").status)
}

func TestDashboardShowsTheBridge(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *admin.Options) {
		conns := o.Connections
		o.Connections = func() []intake.Status {
			cs := conns()
			cs[0].Failures = 3 // moodle-main's last three polls failed
			return cs
		}
	})
	require.NoError(t, delivery.Pause(t.Context(), f.store, "beta", "maintenance", f.clk.Now()))
	r := f.get(f.client(), "/")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	for _, want := range []string{
		"1.0.0-test",
		// targets: state, counts, oldest waiting (queued 2 minutes ago)
		`<span class="ok">active</span>`, "paused by the operator: maintenance",
		"<td>2m</td>",
		// a Pause button on the active target, a Resume button on the paused one
		`action="/targets/acme/pause"`, `action="/targets/beta/resume"`,
		// connections: the last poll that did something and when, the last
		// poll's error, bad rows and failed files
		"moodle-main", "2026-03-02 08:00:00 UTC (1h 2m ago):<br>4 queued, 0 replaced, 0 waiting, 2 unchanged",
		"moodle: web service answered 503</span><br>3 polls in a row have failed, since 2026-03-02 09:00:00 UTC (2m ago)",
		"csv-drop", "3 bad rows skipped, 1 files failed",
		"last 2026-03-02 09:00:01 UTC (1m ago): export.csv failed, no row enqueued: line 1: no header; moved to failed/export.csv",
		// the charts of the last 24 hours, per target
		`id="charts-acme"`, `id="charts-beta"`, "Delivered: 1 in 24 h", "Parked: 1 in 24 h", "Waiting: 1 now",
		// retrying, with Coachview's message
		"p-retrying", "Coachview found no person &#34;p-retrying&#34;",
		// parked, with Coachview's answer and both buttons
		`id="result-` + itoa(f.parked) + `"`, "p-parked", coachviewAnswer,
		`action="` + path(f.parked, "retry") + `"`, `action="` + path(f.parked, "cancel") + `"`,
		// the enrolments section, empty
		"Inbound enrolments are not enabled.",
	} {
		assert.Contains(t, r.body, want)
	}
	assert.NotContains(t, r.body, "<script", "the dashboard needs no JavaScript")
	assert.NotContains(t, r.body, "p-sent", "delivered results are counted, not listed")

	// The inline style sheet is exactly the one the CSP allows by hash.
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(r.body)
	require.NotNil(t, style)
	sum := sha256.Sum256([]byte(style[1]))
	csp := r.header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	assert.Contains(t, csp, "default-src 'none'")
	assert.NotContains(t, csp, "script-src")
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", r.header.Get("X-Frame-Options"))
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// TestPauseAndResumeButtons: the buttons on a target pause it by the
// operator's hand (no probes) and resume it, waking its dispatcher, with
// the same form protection as the buttons on results.
func TestPauseAndResumeButtons(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	tok := f.token(c)

	r := f.post(c, "/targets/acme/pause", url.Values{"csrf": {tok}}, nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, "Target acme is paused: nothing is sent to it until you resume it.")
	assert.Contains(t, r.body, `action="/targets/acme/resume"`, "now it has a Resume button")
	st, err := f.store.TargetState(t.Context(), "acme")
	require.NoError(t, err)
	assert.True(t, st.Paused)
	assert.True(t, delivery.PausedManually(st), "no probes until resumed")
	assert.Equal(t, "paused by the operator: from the dashboard", st.Reason)
	assert.True(t, st.PausedAt.Equal(f.clk.Now()))
	assert.Empty(t, f.requeuedTargets(), "a pause wakes nothing")

	// A 403 pause (with probes) is resumed the same way.
	require.NoError(t, f.store.SetTargetState(t.Context(), outbox.TargetState{Target: "beta", Paused: true,
		Reason: delivery.ForbiddenReason, PausedAt: f.clk.Now(), NextProbeAt: f.clk.Now().Add(time.Hour)}))
	for _, name := range []string{"acme", "beta"} {
		r = f.post(c, "/targets/"+name+"/resume", url.Values{"csrf": {tok}}, nil)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Contains(t, r.body, "Target "+name+" is resumed")
		st, err = f.store.TargetState(t.Context(), name)
		require.NoError(t, err)
		assert.Equal(t, outbox.TargetState{Target: name}, st)
	}
	assert.Equal(t, []string{"acme", "beta"}, f.requeuedTargets(), "each resumed target's dispatcher is woken")

	for _, tt := range []struct {
		name, path string
		form       url.Values
		status     int
	}{
		{"unknown target", "/targets/nope/pause", url.Values{"csrf": {tok}}, http.StatusNotFound},
		{"unknown action", "/targets/acme/delete", url.Values{"csrf": {tok}}, http.StatusNotFound},
		{"no token", "/targets/acme/pause", url.Values{}, http.StatusForbidden},
		{"forged token", "/targets/acme/pause", url.Values{"csrf": {"AAAA"}}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := f.post(c, tt.path, tt.form, nil)
			assert.Equal(t, tt.status, r.status, r.body)
			st, err := f.store.TargetState(t.Context(), "acme")
			require.NoError(t, err)
			assert.False(t, st.Paused)
		})
	}
	t.Run("cross-site", func(t *testing.T) {
		r := f.post(c, "/targets/acme/pause", url.Values{"csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
		assert.Equal(t, http.StatusForbidden, r.status, r.body)
	})
	t.Run("GET is not a button", func(t *testing.T) {
		assert.Equal(t, http.StatusMethodNotAllowed, f.get(c, "/targets/acme/pause").status)
	})
}

// TestPauseButtonNeedsThePassword: with a password set, the buttons on a
// target ask for it like the dashboard.
func TestPauseButtonNeedsThePassword(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret horse"), bcrypt.MinCost)
	require.NoError(t, err)
	f := newFixture(t, func(o *admin.Options) { o.User, o.PasswordHash = "ops", hash })
	r := f.post(f.client(), "/targets/acme/pause", url.Values{}, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	st, err := f.store.TargetState(t.Context(), "acme")
	require.NoError(t, err)
	assert.False(t, st.Paused)
}

// TestDashboardCharts: each target's last 24 hours are drawn from the
// store's history: a bar per hour for deliveries and parkings, the backlog
// as a line, each mark with its numbers as a tooltip.
func TestDashboardCharts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	// Two hours later: two more delivered, one more queued for acme.
	f.clk.Advance(2 * time.Hour)
	a, b := f.enqueue("acme", "p-later-1"), f.enqueue("acme", "p-later-2")
	f.enqueue("acme", "p-later-3")
	for _, id := range []int64{a, b} {
		f.finish(id, outbox.Finish{State: outbox.StateDelivered, Tries: 1, LastClass: "delivered",
			Attempt: outbox.Attempt{Status: 200, Class: "delivered"}})
	}
	r := f.get(f.client(), "/")
	require.Equal(t, http.StatusOK, r.status, r.body)
	acme := regexp.MustCompile(`(?s)<div class="charts" id="charts-acme">.*?</div>`).FindString(r.body)
	require.NotEmpty(t, acme)
	for _, want := range []string{
		"Delivered: 3 in 24 h, at most 2 an hour", "Parked: 1 in 24 h, at most 1 an hour", "Waiting: 2 now, at most 2",
		// 09:00, the fixture's hour: one delivered (half height), one parked (full height)
		`<rect x="211" y="24" width="8" height="24"><title>09:00–10:00: 1 delivered</title></rect>`,
		`<rect x="211" y="0" width="8" height="48"><title>09:00–10:00: 1 parked</title></rect>`,
		`<title>10:00–11:00: 0 delivered</title>`,
		`<rect x="231" y="0" width="8" height="48"><title>11:00–12:00: 2 delivered</title></rect>`,
		`<title>08:00–09:00: 0 waiting at the end</title>`, `<title>09:00–10:00: 1 waiting at the end</title>`,
		`<title>11:00–12:00: 2 waiting at the end</title>`,
		`points="5,48 `,
	} {
		assert.Contains(t, acme, want)
	}
	assert.Equal(t, 2*24, strings.Count(acme, "<rect "), "a bar per hour in each bar chart")
	assert.Equal(t, 24, strings.Count(acme, "<circle "), "a point per hour on the backlog line")
	assert.NotContains(t, r.body, "style=", "no inline style attribute: the CSP allows the style sheet only")
}

// fakeEnrolments is an inbound enrolment feed.
type fakeEnrolments struct {
	items []admin.Enrolment
	err   error
}

func (e fakeEnrolments) RecentEnrolments(_ context.Context, limit int) ([]admin.Enrolment, error) {
	return e.items[:min(limit, len(e.items))], e.err
}

func TestDashboardEnrolments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		feed   admin.Enrolments
		status int
		want   []string
	}{
		{name: "none yet", feed: fakeEnrolments{}, status: http.StatusOK, want: []string{"No enrolments received yet."}},
		{
			name: "listed",
			feed: fakeEnrolments{items: []admin.Enrolment{{
				At: epoch, Source: "webhook:enrolments", Action: "enrol", PersonID: "p-new", ElearningCode: "EL-9", Verdict: "applied",
			}}},
			status: http.StatusOK,
			want:   []string{"<td>webhook:enrolments</td><td>enrol</td><td>p-new</td><td>EL-9</td><td>applied</td>"},
		},
		{
			name:   "feed fails",
			feed:   fakeEnrolments{err: errors.New("enrolment log unreadable")},
			status: http.StatusServiceUnavailable,
			want:   []string{"Could not read inbound enrolments: enrolment log unreadable", "No enrolments received yet."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *admin.Options) { o.Enrolments = tt.feed })
			r := f.get(f.client(), "/")
			assert.Equal(t, tt.status, r.status)
			for _, w := range tt.want {
				assert.Contains(t, r.body, w)
			}
		})
	}
}

func TestRetryAndCancelButtons(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.client()
	tok := f.token(c)

	r := f.post(c, path(f.parked, "retry"), url.Values{"csrf": {tok}}, nil)
	require.Equal(t, http.StatusOK, r.status, "the redirect leads back to the dashboard: %s", r.body)
	assert.Contains(t, r.body, "Result #"+itoa(f.parked)+" is queued again")
	it, _, err := f.store.Get(t.Context(), f.parked)
	require.NoError(t, err)
	assert.Equal(t, outbox.StatePending, it.State)
	assert.Equal(t, 0, it.Tries, "a fresh retry schedule")
	assert.True(t, it.NextAttemptAt.Equal(f.clk.Now()), "due at once")
	assert.Equal(t, []string{"acme"}, f.requeuedTargets(), "the target's dispatcher is woken")

	r = f.post(c, path(f.retrying, "cancel"), url.Values{"csrf": {tok}}, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.body, "is cancelled and will not be sent")
	assert.Equal(t, outbox.StateCancelled, f.state(f.retrying))

	tests := []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{name: "delivered row", path: path(f.sent, "retry"), status: http.StatusConflict, want: "only failed, probably-delivered, cancelled and pending results can be retried"},
		{name: "cancel delivered", path: path(f.sent, "cancel"), status: http.StatusConflict, want: "only pending, failed, probably-delivered and waiting results can be cancelled"},
		{name: "unknown row", path: path(9999, "retry"), status: http.StatusNotFound, want: "Result #9999 does not exist"},
		{name: "unknown action", path: path(f.sent, "delete"), status: http.StatusNotFound},
		{name: "bad id", path: "/results/abc/retry", status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.post(c, tt.path, url.Values{"csrf": {tok}}, nil)
			assert.Equal(t, tt.status, r.status, r.body)
			assert.Contains(t, r.body, tt.want)
		})
	}
	assert.Equal(t, outbox.StateDelivered, f.state(f.sent))
	assert.Equal(t, []string{"acme"}, f.requeuedTargets())
}

// TestConfirmProbablyDelivered: a probably-delivered result is listed with
// Confirm and Retry buttons; Confirm records it as delivered, and only such
// a result can be confirmed.
func TestConfirmProbablyDelivered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	id := f.enqueue("acme", "p-probable")
	f.finish(id, outbox.Finish{State: outbox.StateProbablyDelivered, Tries: 2, LastClass: "not_found",
		LastError: "an earlier attempt's outcome is unknown, so Coachview probably registered the result then",
		Attempt:   outbox.Attempt{Status: 404, Class: "not_found"}})
	c := f.client()
	page := f.get(c, "/")
	require.Equal(t, http.StatusOK, page.status)
	assert.Contains(t, page.body, `<form method="post" action="/results/`+itoa(id)+`/confirm">`)
	assert.Contains(t, page.body, "Coachview probably registered the result then")

	tok := f.token(c)
	r := f.post(c, path(id, "confirm"), url.Values{"csrf": {tok}}, nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, "Result #"+itoa(id)+" is recorded as delivered")
	assert.Equal(t, outbox.StateDelivered, f.state(id))

	r = f.post(c, path(f.parked, "confirm"), url.Values{"csrf": {tok}}, nil)
	assert.Equal(t, http.StatusConflict, r.status)
	assert.Contains(t, r.body, "only probably-delivered results can be confirmed")
	assert.Equal(t, outbox.StateFailed, f.state(f.parked))
}

func TestCSRFRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		form   func(tok string) url.Values
		cookie bool // send the browser's cookie
		header map[string]string
	}{
		{name: "no token, no cookie", form: func(string) url.Values { return url.Values{} }},
		{name: "no token", form: func(string) url.Values { return url.Values{} }, cookie: true},
		{name: "token without its cookie", form: func(tok string) url.Values { return url.Values{"csrf": {tok}} }},
		{name: "forged token", form: func(string) url.Values { return url.Values{"csrf": {"AAAA"}} }, cookie: true},
		{name: "token of another browser", form: nil, cookie: true},
		{
			name: "cross-site request with a valid token", form: func(tok string) url.Values { return url.Values{"csrf": {tok}} },
			cookie: true, header: map[string]string{"Sec-Fetch-Site": "cross-site"},
		},
		{
			name: "foreign origin with a valid token", form: func(tok string) url.Values { return url.Values{"csrf": {tok}} },
			cookie: true, header: map[string]string{"Origin": "https://evil.example"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			browser := f.client()
			tok := f.token(browser)
			form := url.Values{"csrf": {f.token(f.client())}} // another browser's token
			if tt.form != nil {
				form = tt.form(tok)
			}
			c := f.client()
			if tt.cookie {
				c = browser
			}
			r := f.post(c, path(f.parked, "retry"), form, tt.header)
			assert.Equal(t, http.StatusForbidden, r.status, r.body)
			f.assertUnchanged()
		})
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret horse"), bcrypt.MinCost)
	require.NoError(t, err)
	f := newFixture(t, func(o *admin.Options) { o.User, o.PasswordHash = "ops", hash })

	get := func(user, pass string) response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/", nil)
		require.NoError(t, err)
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		return do(t, http.DefaultClient, req)
	}
	tests := []struct {
		name, user, pass string
		status           int
	}{
		{name: "no credentials", status: http.StatusUnauthorized},
		{name: "wrong password", user: "ops", pass: "s3cret hors", status: http.StatusUnauthorized},
		{name: "wrong user", user: "admin", pass: "s3cret horse", status: http.StatusUnauthorized},
		{name: "right", user: "ops", pass: "s3cret horse", status: http.StatusOK},
		{name: "right again (remembered)", user: "ops", pass: "s3cret horse", status: http.StatusOK},
		{name: "wrong after right", user: "ops", pass: "guess", status: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := get(tt.user, tt.pass)
		assert.Equal(t, tt.status, r.status, tt.name)
		if tt.status == http.StatusUnauthorized {
			assert.Equal(t, `Basic realm="cvbridge admin", charset="UTF-8"`, r.header.Get("WWW-Authenticate"), tt.name)
			assert.NotContains(t, r.body, "p-parked", tt.name)
		}
	}

	// Health and readiness stay open to the service manager and monitoring.
	assert.Equal(t, http.StatusOK, f.get(http.DefaultClient, "/healthz").status)
	assert.Equal(t, http.StatusOK, f.get(http.DefaultClient, "/readyz").status)

	// A button pressed without the password changes nothing, even with a valid token.
	c := f.client()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "s3cret horse")
	page := do(t, c, req)
	tok := csrfInput.FindStringSubmatch(page.body)
	require.NotNil(t, tok)
	r := f.post(c, path(f.parked, "retry"), url.Values{"csrf": {tok[1]}}, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	f.assertUnchanged()
}

// TestLoginLimitedPerAddress: a guesser sending wrong passwords from one
// address gets 429s once its budget is used, without using up the bcrypt
// checks of all addresses together, so the operator signing in from
// another address gets in. Before, one bucket served every address: twenty
// guesses locked everyone out.
func TestLoginLimitedPerAddress(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret horse"), bcrypt.MinCost)
	require.NoError(t, err)
	logged := &messages{}
	f := newFixture(t, func(o *admin.Options) { o.User, o.PasswordHash, o.Logger = "ops", hash, slog.New(logged) })
	get := func(c *http.Client, user, pass string) response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/", nil)
		require.NoError(t, err)
		req.SetBasicAuth(user, pass)
		return do(t, c, req)
	}

	checked := 0
	var last response
	for range 20 {
		last = get(http.DefaultClient, "ops", "guess")
		if last.status == http.StatusUnauthorized {
			checked++
			continue
		}
		require.Equal(t, http.StatusTooManyRequests, last.status, last.body)
	}
	assert.Equal(t, loginlimit.Burst, checked, "passwords checked for the guessing address")
	assert.Equal(t, "10", last.header.Get("Retry-After"))
	assert.Contains(t, last.body, "too many login attempts from your address")
	assert.Equal(t, 1, logged.count("admin: login attempts limited"), "one line however many refusals follow")
	assert.Equal(t, loginlimit.Burst, logged.count("admin: refused a login"))

	// The operator, at another address, signs in at once.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	elsewhere := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer elsewhere.CloseIdleConnections()
	r := get(elsewhere, "ops", "s3cret horse")
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, "p-parked")

	// The guessing address stays limited, even with the right password,
	// which the operator's sign-in made one that needs no bcrypt check:
	// else 429 for wrong and 200 for right would let it test passwords at
	// full speed. Its budget refills one attempt every 10 seconds (the
	// fixture's clock stands still).
	assert.Equal(t, http.StatusTooManyRequests, get(http.DefaultClient, "ops", "guess").status)
	assert.Equal(t, http.StatusTooManyRequests, get(http.DefaultClient, "ops", "s3cret horse").status)
	r = get(elsewhere, "ops", "s3cret horse")
	assert.Equal(t, http.StatusOK, r.status, "the operator's address is not limited")
}

// messages is a slog.Handler keeping the messages logged.
type messages struct {
	mu   sync.Mutex
	list []string
}

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *messages) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m *messages) WithGroup(string) slog.Handler            { return m }

func (m *messages) Handle(_ context.Context, r slog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.list = append(m.list, r.Message)
	return nil
}

// count is the number of messages logged that start with prefix.
func (m *messages) count(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, msg := range m.list {
		if strings.HasPrefix(msg, prefix) {
			n++
		}
	}
	return n
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tests := []struct {
		name string
		opts admin.Options
		want string
	}{
		{name: "no store", opts: admin.Options{Targets: func() []string { return nil }}, want: "no store"},
		{name: "no targets", opts: admin.Options{Store: f.store}, want: "no target list"},
		{
			name: "plain password as hash",
			opts: admin.Options{Store: f.store, Targets: func() []string { return nil }, PasswordHash: []byte("hunter2")},
			want: "not a bcrypt hash",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := admin.New(tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestDashboardTimesInTheConfiguredZone: times are shown in the
// configuration's time zone, not the server's (issue 19, item 6).
func TestDashboardTimesInTheConfiguredZone(t *testing.T) {
	t.Parallel()
	amsterdam, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	f := newFixture(t, func(o *admin.Options) { o.Location = amsterdam })
	r := f.get(f.client(), "/")
	require.Equal(t, http.StatusOK, r.status, r.body)
	// The connection's next run is 09:05 UTC on 2 March: 10:05 in Amsterdam.
	assert.Contains(t, r.body, "2026-03-02 10:05:00 CET")
	assert.NotContains(t, r.body, "09:05:00 UTC")
}

// TestDashboardShowsWhatTheLMSHid: what a source could not read because
// the LMS hid it (issue 17: Moodle's hidden members and totals) is shown
// beside the bad rows, by reason.
func TestDashboardShowsWhatTheLMSHid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *admin.Options) {
		o.Connections = func() []intake.Status {
			return []intake.Status{{Name: "moodle-ws", Polls: 2, LastStart: epoch,
				Problems:  source.Problems{Skipped: map[string]int{"members_hidden": 2, "total_hidden": 1}, Last: "course VCA: separate groups"},
				ProblemAt: epoch}}
		}
	})
	r := f.get(f.client(), "/")
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, "2 not read (members_hidden), 1 not read (total_hidden)")
}
