package delivery_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// TestRunWaitsForTheRetryOnItsClock: between steps Run waits on its own
// clock, so on a fake clock a 503's retry is sent once the fake time
// reaches its backoff, not before and not by the wall clock.
func TestRunWaitsForTheRetryOnItsClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(n int, _ *http.Request) reply {
		if n == 1 {
			return reply{status: http.StatusServiceUnavailable}
		}
		return reply{status: http.StatusOK}
	})
	s := testSettings()
	s.PollInterval = time.Hour
	store := &signalStore{Store: e.store, waiting: make(chan struct{}, 1)}
	d, err := delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer(t), Settings: s}, store,
		delivery.Options{Clock: e.clk, Jitter: zeroJitter, Logger: e.logger(), Owner: "w1"})
	require.NoError(t, err)
	id := e.enqueue("e100", "p001")

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	waitFor(t, store.waiting, "Run to wait after the 503")
	require.Eventually(t, func() bool { return e.clk.Timers() == 1 }, 10*time.Second, time.Millisecond, "Run's timer")
	it, _ := e.get(id)
	require.Equal(t, outbox.StatePending, it.State)
	require.Equal(t, t0.Add(30*time.Second), it.NextAttemptAt, "the base backoff")

	e.clk.Advance(29 * time.Second)
	require.Equal(t, 1, e.clk.Timers(), "still waiting a second before the retry")
	e.clk.Advance(time.Second)
	require.Eventually(t, func() bool { it, _ := e.get(id); return it.State == outbox.StateDelivered },
		10*time.Second, time.Millisecond, "the retry at its time")
	assert.Equal(t, 2, e.cv.count())
}
