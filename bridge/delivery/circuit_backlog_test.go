package delivery_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// enqueueBulk queues n results for distinct people in one transaction.
func (e *env) enqueueBulk(n int) {
	e.t.Helper()
	require.NoError(e.t, e.store.InTx(e.ctx, func(tx outbox.Tx) error {
		for i := range n {
			person := fmt.Sprintf("b%05d", i)
			if _, err := tx.Enqueue(e.ctx, outbox.NewResult{
				Target: targetName, Connection: "lms", ElearningCode: "e100", PersonID: person,
				SourceRef: "test", Body: resultXML("e100", person),
			}, outbox.EnqueuePolicy{ReplacePending: true}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// TestBacklogAgainst503 is issue 16's finding, at the dispatcher on a fake
// clock: 5,000 queued results and a Coachview that answers 503. Polled
// every second for 30 seconds, the dispatcher sends a handful of requests,
// not one per result per retry; once Coachview answers 200 the backlog
// drains, every result delivered exactly once.
func TestBacklogAgainst503(t *testing.T) {
	t.Parallel()
	const n, outage = 5000, 30 * time.Second
	var accepted atomic.Int64
	e := newEnv(t, always(http.StatusServiceUnavailable, "Onderhoud"))
	e.enqueueBulk(n)
	d := e.dispatcher(testSettings(), "w1")

	for e.clk.Now().Before(t0.Add(outage)) {
		e.runDue(d)
		e.clk.Advance(time.Second)
	}
	during := e.cv.count()
	t.Logf("%d requests in %s of 503s for %d queued results", during, outage, n)
	assert.LessOrEqual(t, during, 24, "a few requests, not a burst per retry round")

	e.cv.setRespond(func(int, *http.Request) reply {
		accepted.Add(1)
		return reply{status: http.StatusOK, body: "OK"}
	})
	for range 600 {
		e.runDue(d)
		counts, err := e.store.Counts(e.ctx, targetName)
		require.NoError(t, err)
		if counts[outbox.StateDelivered] == n {
			break
		}
		e.clk.Advance(10 * time.Second)
	}
	counts, err := e.store.Counts(e.ctx, targetName)
	require.NoError(t, err)
	assert.Equal(t, n, counts[outbox.StateDelivered], "the backlog drained")
	assert.EqualValues(t, n, accepted.Load(), "every result accepted exactly once")
	assert.Equal(t, during+n, e.cv.count(), "no request after the recovery but one 200 per result")
}
