package delivery_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// t0 is where every fake clock starts; whole milliseconds, as the store keeps them.
var t0 = time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)

const (
	targetName = "coachview"
	secret     = "correct horse battery staple"
	version    = "1.2.3"
)

// reply is what the fake Coachview answers to one accepted request.
type reply struct {
	status int
	header map[string]string
	body   string
}

// coachview is an httptest server speaking the results link's wire format:
// it answers 405 to anything but POST, 403 to a signature that does not
// verify with its secret, 400 to a body that is not a CoachviewResultaat
// document, and otherwise what respond says. It counts requests and the
// most that were in flight at once.
type coachview struct {
	srv     *httptest.Server
	secret  atomic.Pointer[string]
	respond atomic.Pointer[func(n int, r *http.Request) reply]

	requests    atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	mu      sync.Mutex
	headers []http.Header
	bodies  [][]byte
}

func newCoachview(t *testing.T, respond func(n int, r *http.Request) reply) *coachview {
	t.Helper()
	cv := &coachview{}
	s := secret
	cv.secret.Store(&s)
	cv.setRespond(respond)
	cv.srv = httptest.NewServer(http.HandlerFunc(cv.serve))
	t.Cleanup(cv.srv.Close)
	return cv
}

func (cv *coachview) setRespond(f func(n int, r *http.Request) reply) { cv.respond.Store(&f) }

func (cv *coachview) setSecret(s string) { cv.secret.Store(&s) }

func (cv *coachview) serve(w http.ResponseWriter, r *http.Request) {
	n := int(cv.requests.Add(1))
	cur := cv.inFlight.Add(1)
	defer cv.inFlight.Add(-1)
	for {
		m := cv.maxInFlight.Load()
		if cur <= m || cv.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "kon het bericht niet lezen", http.StatusBadRequest)
		return
	}
	cv.mu.Lock()
	cv.headers = append(cv.headers, r.Header.Clone())
	cv.bodies = append(cv.bodies, body)
	cv.mu.Unlock()

	if r.Method != http.MethodPost {
		http.Error(w, "Alleen POST is toegestaan", http.StatusMethodNotAllowed)
		return
	}
	if !sign.Verify(sign.SHA512, []byte(*cv.secret.Load()), body, r.Header.Get(sign.Header)) {
		http.Error(w, "Ongeldige handtekening", http.StatusForbidden)
		return
	}
	var doc struct {
		XMLName xml.Name `xml:"CoachviewResultaat"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		http.Error(w, "Het bericht is geen geldige XML: "+err.Error(), http.StatusBadRequest)
		return
	}
	rep := (*cv.respond.Load())(n, r)
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (cv *coachview) count() int { return int(cv.requests.Load()) }

func ok(int, *http.Request) reply { return reply{status: http.StatusOK, body: "OK"} }

func always(status int, body string) func(int, *http.Request) reply {
	return func(int, *http.Request) reply { return reply{status: status, body: body} }
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one test's world: a fake clock, a real SQLite outbox in a temp
// dir, a fake Coachview and a log buffer.
type env struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	store *sqlite.Store
	cv    *coachview
	logs  *syncBuffer
}

func newEnv(t *testing.T, respond func(n int, r *http.Request) reply) *env {
	t.Helper()
	clk := clock.NewFake(t0)
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "outbox.db"), sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return &env{t: t, ctx: t.Context(), clk: clk, store: store, cv: newCoachview(t, respond), logs: &syncBuffer{}}
}

// settings are the defaults with a short timeout, so a broken test fails fast.
func testSettings() delivery.Settings {
	s := delivery.DefaultSettings()
	s.Timeout = 5 * time.Second
	s.ConnectTimeout = 5 * time.Second
	return s
}

func zeroJitter() float64 { return 0 }

// dispatcher returns a dispatcher for the env's Coachview, signing with the
// shared secret, with zero jitter.
func (e *env) dispatcher(s delivery.Settings, owner string) *delivery.Dispatcher {
	return e.dispatcherFor(e.cv.srv.URL, s, owner)
}

func (e *env) dispatcherFor(url string, s delivery.Settings, owner string) *delivery.Dispatcher {
	e.t.Helper()
	d, err := delivery.New(delivery.Target{Name: targetName, URL: url, Signer: signer(e.t), Settings: s}, e.store, delivery.Options{
		Clock:   e.clk,
		Jitter:  zeroJitter,
		Logger:  e.logger(),
		Owner:   owner,
		Version: version,
	})
	require.NoError(e.t, err)
	return d
}

// signer signs with the shared secret.
func signer(t *testing.T) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(sign.SHA512, []byte(secret))
	require.NoError(t, err)
	return s
}

// logger writes JSON lines, debug included, into the env's log buffer.
func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func resultXML(code, person string) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<CoachviewResultaat xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Datum="2025-03-01" Elearningcode=%q PersoonExterneId=%q>
  <Geslaagd Resultaat="67%%">true</Geslaagd>
</CoachviewResultaat>
`, code, person)
}

// enqueue queues a result for (code, person) and returns its row id.
func (e *env) enqueue(code, person string) int64 {
	e.t.Helper()
	var outcome outbox.EnqueueOutcome
	require.NoError(e.t, e.store.InTx(e.ctx, func(tx outbox.Tx) error {
		var err error
		outcome, err = tx.Enqueue(e.ctx, outbox.NewResult{
			Target: targetName, Connection: "lms", ElearningCode: code, PersonID: person,
			SourceRef: "test", Body: resultXML(code, person),
		}, outbox.EnqueuePolicy{ReplacePending: true})
		return err
	}))
	require.Equal(e.t, outbox.Queued, outcome)
	rows, err := e.store.List(e.ctx, outbox.Filter{Target: targetName, ElearningCode: code, PersonID: person})
	require.NoError(e.t, err)
	require.Len(e.t, rows, 1)
	return rows[0].ID
}

// enqueueN queues n results for distinct people and returns their ids.
func (e *env) enqueueN(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = e.enqueue("e100", fmt.Sprintf("p%03d", i))
	}
	return ids
}

func (e *env) get(id int64) (outbox.Item, []outbox.Attempt) {
	e.t.Helper()
	it, attempts, err := e.store.Get(e.ctx, id)
	require.NoError(e.t, err)
	return it, attempts
}

func (e *env) targetState() outbox.TargetState {
	e.t.Helper()
	st, err := e.store.TargetState(e.ctx, targetName)
	require.NoError(e.t, err)
	return st
}

func (e *env) runDue(d *delivery.Dispatcher) int {
	e.t.Helper()
	n, err := d.RunDue(e.ctx)
	require.NoError(e.t, err)
	return n
}

// untilSettled drives d, jumping the clock to each next attempt of row id,
// until the row leaves pending; it returns the attempts made.
func (e *env) untilSettled(d *delivery.Dispatcher, id int64, maxSteps int) int {
	e.t.Helper()
	total := 0
	for range maxSteps {
		total += e.runDue(d)
		it, _ := e.get(id)
		if it.State != outbox.StatePending {
			return total
		}
		e.clk.Set(it.NextAttemptAt)
	}
	e.t.Fatalf("result %d still pending after %d steps", id, maxSteps)
	return total
}
