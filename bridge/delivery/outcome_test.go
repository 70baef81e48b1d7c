package delivery_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// registrar is a Coachview stand-in that keeps what it registered, as
// Coachview's documented status table says (shared/coachview-interfaces.md;
// the real Coachview cannot be reached from here): the first result of the
// pair is registered and the enrolment leaves 'ingepland', so every later
// result for the pair is answered 404. Its answer to the registering
// request is delayed by delay (longer than the dispatcher's timeout, it
// never arrives).
type registrar struct {
	mu         sync.Mutex
	registered bool
	delay      time.Duration
}

func (c *registrar) respond(int, *http.Request) reply {
	c.mu.Lock()
	already := c.registered
	c.registered = true
	c.mu.Unlock()
	if already {
		return reply{status: http.StatusNotFound, body: "Inschrijving niet gevonden of niet meer ingepland"}
	}
	time.Sleep(c.delay)
	return reply{status: http.StatusOK, body: "OK"}
}

// TestTimeoutThen404IsProbablyDelivered: Coachview registers the result but
// its answer never arrives (the request times out); the retry is answered
// 404, because the enrolment is no longer 'ingepland'. The row is then
// probably-delivered after two requests, not retried hourly for 7 days
// (169 requests) and parked as failed with "check the person's ExternId".
func TestTimeoutThen404IsProbablyDelivered(t *testing.T) {
	t.Parallel()
	cv := &registrar{delay: 2 * time.Second}
	e := newEnv(t, cv.respond)
	id := e.enqueue("e1", "p1")
	s := testSettings()
	s.Timeout, s.ConnectTimeout = 300*time.Millisecond, 300*time.Millisecond
	d := e.dispatcher(s, "w1")

	attempts := e.untilSettled(d, id, 500)

	it, recorded := e.get(id)
	assert.Equal(t, outbox.StateProbablyDelivered, it.State)
	assert.Equal(t, 2, attempts)
	assert.Equal(t, 2, e.cv.count())
	require.Len(t, recorded, 2)
	assert.Equal(t, "transient", recorded[0].Class)
	assert.Equal(t, http.StatusNotFound, recorded[1].Status)
	assert.True(t, it.OutcomeUnknown)
	assert.Contains(t, it.LastError, "probably")
	assert.Contains(t, it.LastError, "outbox confirm")

	e.clk.Advance(30 * 24 * time.Hour)
	assert.Zero(t, e.runDue(d), "a probably-delivered row is not sent again")
	require.NoError(t, e.store.Confirm(e.ctx, id, e.clk.Now()))
	it, _ = e.get(id)
	assert.Equal(t, outbox.StateDelivered, it.State)
}

// TestLeaseTakenOverThen404IsProbablyDelivered: a daemon was killed after
// sending (Coachview registered the result); another daemon takes the row
// when the lease runs out and gets 404: probably-delivered at once.
func TestLeaseTakenOverThen404IsProbablyDelivered(t *testing.T) {
	t.Parallel()
	cv := &registrar{registered: true} // by the killed daemon
	e := newEnv(t, cv.respond)
	id := e.enqueue("e1", "p1")
	_, err := e.store.Claim(e.ctx, targetName, "killed", 1, e.clk.Now(), time.Minute)
	require.NoError(t, err)
	e.clk.Advance(2 * time.Minute)

	attempts := e.untilSettled(e.dispatcher(testSettings(), "w2"), id, 500)
	it, _ := e.get(id)
	assert.Equal(t, outbox.StateProbablyDelivered, it.State)
	assert.Equal(t, 1, attempts)
}

// TestNotFoundWithoutUnknownOutcomeIsRetried: a 404 after a refused
// connection (nothing was sent) keeps the documented hourly schedule.
func TestNotFoundWithoutUnknownOutcomeIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, always(http.StatusNotFound, "Persoon niet gevonden"))
	id := e.enqueue("e1", "p1")
	refused := e.dispatcherFor("http://127.0.0.1:1/elearning/result.aspx", testSettings(), "w1")
	assert.Equal(t, 1, e.runDue(refused))
	it, _ := e.get(id)
	require.Equal(t, outbox.StatePending, it.State)
	assert.False(t, it.OutcomeUnknown, "a refused connection sent nothing")
	e.clk.Set(it.NextAttemptAt)
	assert.Equal(t, 1, e.runDue(e.dispatcher(testSettings(), "w1")))
	it, _ = e.get(id)
	assert.Equal(t, outbox.StatePending, it.State, "retried hourly as documented")
}

// TestCorrectionDuringSendIsDelivered: the LMS corrects a grade (6 → 8)
// while the 6 is being sent; Coachview answers that send 503. The next
// attempt sends the 8, and the 8 is what Coachview registers. Found at an
// independent Coachview stand-in, where the 6 was delivered instead.
func TestCorrectionDuringSendIsDelivered(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	proceed := make(chan struct{})
	var mu sync.Mutex
	var accepted [][]byte
	e := newEnv(t, nil)
	e.cv.setRespond(func(n int, r *http.Request) reply {
		if n == 1 {
			close(arrived)
			<-proceed
			return reply{status: http.StatusServiceUnavailable, body: "Tijdelijk niet beschikbaar"}
		}
		e.cv.mu.Lock()
		body := e.cv.bodies[len(e.cv.bodies)-1]
		e.cv.mu.Unlock()
		mu.Lock()
		accepted = append(accepted, body)
		mu.Unlock()
		return reply{status: http.StatusOK, body: "OK"}
	})
	enqueue := func(grade string) outbox.EnqueueOutcome {
		var out outbox.EnqueueOutcome
		require.NoError(t, e.store.InTx(e.ctx, func(tx outbox.Tx) error {
			var err error
			out, err = tx.Enqueue(e.ctx, outbox.NewResult{Target: targetName, Connection: "lms", ElearningCode: "e1", PersonID: "p1",
				Body: bytes.Replace(resultXML("e1", "p1"), []byte(`Resultaat="67%"`), []byte(`Resultaat="`+grade+`"`), 1)},
				outbox.EnqueuePolicy{ReplacePending: true})
			return err
		}))
		return out
	}
	require.Equal(t, outbox.Queued, enqueue("6"))
	d := e.dispatcher(testSettings(), "w1")
	done := make(chan int)
	go func() { n, _ := d.RunDue(e.ctx); done <- n }()
	<-arrived
	assert.Equal(t, outbox.Waiting, enqueue("8"))
	close(proceed)
	<-done
	for range 10 {
		e.clk.Advance(time.Hour)
		e.runDue(d)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, accepted, 1)
	assert.Contains(t, string(accepted[0]), `Resultaat="8"`)
	rows, err := e.store.List(e.ctx, outbox.Filter{Target: targetName})
	require.NoError(t, err)
	var got []outbox.State
	for _, r := range rows {
		got = append(got, r.State)
	}
	assert.ElementsMatch(t, []outbox.State{outbox.StateDelivered, outbox.StateSuperseded}, got)
}

// TestGatewayTimeoutThen404IsProbablyDelivered: a gateway in front of
// Coachview answers 504 while Coachview registers the result behind it; the
// retry gets 404. The 504 left the outcome unknown, so the row is
// probably-delivered.
func TestGatewayTimeoutThen404IsProbablyDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(n int, _ *http.Request) reply {
		if n == 1 {
			return reply{status: http.StatusGatewayTimeout, body: "upstream timed out"}
		}
		return reply{status: http.StatusNotFound, body: "Inschrijving niet meer ingepland"}
	})
	id := e.enqueue("e1", "p1")
	assert.Equal(t, 2, e.untilSettled(e.dispatcher(testSettings(), "w1"), id, 500))
	it, _ := e.get(id)
	assert.Equal(t, outbox.StateProbablyDelivered, it.State)
}
