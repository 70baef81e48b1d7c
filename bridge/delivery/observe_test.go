package delivery_test

import (
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// TestObserveSeesEveryAttempt: Options.Observe hears each attempt's class,
// the row's new state, which attempt it was and Coachview's status.
func TestObserveSeesEveryAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(n int, _ *http.Request) reply {
		if n == 1 {
			return reply{status: http.StatusNotFound, body: "Persoon onbekend"}
		}
		return reply{status: http.StatusOK, body: "OK"}
	})
	var (
		mu       sync.Mutex
		outcomes []delivery.Outcome
	)
	signer, err := sign.NewSigner(sign.SHA512, []byte(secret))
	require.NoError(t, err)
	d, err := delivery.New(delivery.Target{Name: targetName, URL: e.cv.srv.URL, Signer: signer, Settings: testSettings()}, e.store,
		delivery.Options{Clock: e.clk, Jitter: zeroJitter, Logger: slog.New(slog.DiscardHandler), Observe: func(o delivery.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			outcomes = append(outcomes, o)
		}})
	require.NoError(t, err)
	id := e.enqueue("e100", "p001")
	require.Equal(t, 2, e.untilSettled(d, id, 5))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, outcomes, 2)
	for i := range outcomes {
		assert.Positive(t, outcomes[i].Duration)
		outcomes[i].Duration = 0
	}
	assert.Equal(t, []delivery.Outcome{
		{Target: targetName, Class: delivery.NotFound, State: outbox.StatePending, Attempt: 1, Status: http.StatusNotFound},
		{Target: targetName, Class: delivery.Delivered, State: outbox.StateDelivered, Attempt: 2, Status: http.StatusOK},
	}, outcomes)
}
