package admin_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/admin"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/source"
)

var epoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// coachviewAnswer is the response body the parked row's attempt recorded.
const coachviewAnswer = "Persoon met ExterneId p-parked is niet ingeschreven"

// fixture is a real SQLite outbox holding one row in each interesting
// state, and an admin handler over it served by httptest.
type fixture struct {
	t        *testing.T
	clk      *clock.Fake
	store    *sqlite.Store
	srv      *httptest.Server
	parked   int64 // failed, with an attempt carrying coachviewAnswer
	retrying int64 // pending after a 404
	sent     int64 // delivered

	mu       sync.Mutex
	requeued []string
}

// newFixture builds the store and serves the handler; tweak changes its
// options before New.
func newFixture(t *testing.T, tweak func(*admin.Options)) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{t: t, clk: clock.NewFake(epoch)}
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"), sqlite.WithClock(f.clk))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	f.store = s

	f.parked = f.enqueue("acme", "p-parked")
	f.retrying = f.enqueue("acme", "p-retrying")
	f.sent = f.enqueue("acme", "p-sent")
	f.enqueue("beta", "p-waiting")
	f.clk.Advance(time.Minute)
	f.finish(f.parked, outbox.Finish{State: outbox.StateFailed, Tries: 1, LastClass: "rejected",
		LastError: `Coachview rejected the message as invalid (400 Bad Request): Coachview said "` + coachviewAnswer + `"`,
		Attempt:   outbox.Attempt{Status: 400, Class: "rejected", Response: coachviewAnswer}})
	f.finish(f.retrying, outbox.Finish{State: outbox.StatePending, Tries: 1, LastClass: "not_found", NextAttemptAt: f.clk.Now().Add(time.Hour),
		LastError: "Coachview found no person \"p-retrying\" (404 Not Found) without an explanation",
		Attempt:   outbox.Attempt{Status: 404, Class: "not_found"}})
	f.finish(f.sent, outbox.Finish{State: outbox.StateDelivered, Tries: 1, LastClass: "delivered",
		Attempt: outbox.Attempt{Status: 200, Class: "delivered"}})
	f.clk.Advance(time.Minute)

	opts := admin.Options{
		Store:   s,
		Targets: func() []string { return []string{"acme", "beta"} },
		Connections: func() []intake.Status {
			return []intake.Status{{
				Name: "moodle-main", LastStart: epoch, LastEnd: epoch.Add(2 * time.Second), NextRun: epoch.Add(5 * time.Minute),
				Polls: 7, LastSummary: source.Summary{Queued: 4, Unchanged: 2}, LastActive: epoch.Add(-time.Hour),
				LastError: "moodle: web service answered 503", Failures: 1, FailingSince: epoch,
			}, {
				Name: "csv-drop", LastStart: epoch, LastEnd: epoch.Add(time.Second), Polls: 3,
				LastSummary: source.Summary{Queued: 1, Rejected: 1}, LastActive: epoch.Add(time.Second),
				Problems: source.Problems{BadRows: 3, FailedFiles: 1,
					Last: "export.csv failed, no row enqueued: line 1: no header; moved to failed/export.csv"},
				ProblemAt: epoch.Add(time.Second),
			}}
		},
		Requeued: func(target string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.requeued = append(f.requeued, target)
		},
		Clock:   f.clk,
		Logger:  slog.New(slog.DiscardHandler),
		Version: "1.0.0-test",
	}
	if tweak != nil {
		tweak(&opts)
	}
	h, err := admin.New(opts)
	require.NoError(t, err)
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// enqueue queues one result and returns its id.
func (f *fixture) enqueue(target, person string) int64 {
	f.t.Helper()
	ctx := f.t.Context()
	r := outbox.NewResult{Target: target, Connection: "moodle-main", ElearningCode: "EL-7", PersonID: person,
		Body: []byte("<CoachviewResultaat>" + person + "</CoachviewResultaat>")}
	require.NoError(f.t, f.store.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, r, outbox.EnqueuePolicy{})
		return err
	}))
	rows, err := f.store.List(ctx, outbox.Filter{Target: target, PersonID: person, Limit: 1})
	require.NoError(f.t, err)
	require.Len(f.t, rows, 1)
	return rows[0].ID
}

// finish claims row id and records fin as its attempt's outcome.
func (f *fixture) finish(id int64, fin outbox.Finish) {
	f.t.Helper()
	ctx := f.t.Context()
	it, _, err := f.store.Get(ctx, id)
	require.NoError(f.t, err)
	claimed, err := f.store.Claim(ctx, it.Target, "test", 10, f.clk.Now(), time.Minute)
	require.NoError(f.t, err)
	for _, c := range claimed {
		if c.ID != id {
			require.NoError(f.t, f.store.Release(ctx, c.ID, "test", f.clk.Now()))
		}
	}
	fin.ID, fin.Owner = id, "test"
	fin.Attempt.ResultID, fin.Attempt.At = id, f.clk.Now()
	require.NoError(f.t, f.store.Finish(ctx, fin))
}

// state returns row id's state.
func (f *fixture) state(id int64) outbox.State {
	f.t.Helper()
	it, _, err := f.store.Get(f.t.Context(), id)
	require.NoError(f.t, err)
	return it.State
}

// requeuedTargets returns the targets Requeued was called with.
func (f *fixture) requeuedTargets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requeued...)
}

// client returns an HTTP client with its own cookie jar.
func (f *fixture) client() *http.Client {
	f.t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(f.t, err)
	return &http.Client{Jar: jar}
}

// response is a read HTTP answer.
type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// get fetches path.
func (f *fixture) get(c *http.Client, path string) response {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), http.MethodGet, f.srv.URL+path, nil)
	require.NoError(f.t, err)
	return do(f.t, c, req)
}

// post submits a form to path; header adds request headers.
func (f *fixture) post(c *http.Client, path string, form url.Values, header map[string]string) response {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(f.t, c, req)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token loads the dashboard with c (setting its cookie) and returns the form token.
func (f *fixture) token(c *http.Client) string {
	f.t.Helper()
	page := f.get(c, "/")
	require.Equal(f.t, http.StatusOK, page.status, page.body)
	m := csrfInput.FindStringSubmatch(page.body)
	require.NotNil(f.t, m, "the dashboard has no form token")
	return m[1]
}

// path is the action path of a result's button.
func path(id int64, action string) string { return fmt.Sprintf("/results/%d/%s", id, action) }

// assertUnchanged checks that the parked row is still parked and nothing was requeued.
func (f *fixture) assertUnchanged() {
	f.t.Helper()
	assert.Equal(f.t, outbox.StateFailed, f.state(f.parked))
	assert.Empty(f.t, f.requeuedTargets())
}
