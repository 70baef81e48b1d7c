package postgres_test

import (
	"github.com/cvbridge/cvbridge/bridge/testdb"

	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
)

// TestServerRestart restarts a private server under an open store: calls
// while it is down fail with an error, nothing committed is lost, and the
// first call after it is back works, though every pooled connection died.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := testdb.PrivatePostgres(t)
	ctx := t.Context()
	clk := clock.NewFake(outboxtest.Epoch)
	s := open(t, srv.DSN(), postgres.WithClock(clk), postgres.WithLeasesOnStoreClock(), postgres.WithMaxConns(6))

	enqueue := func(person string) error {
		return s.InTx(ctx, func(tx outbox.Tx) error {
			_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "moodle", ElearningCode: "e1",
				PersonID: person, Body: []byte("<x>" + person + "</x>")}, outbox.EnqueuePolicy{})
			return err
		})
	}
	fillPool := func() {
		// Hold several connections at once, so the pool keeps several idle
		// ones afterwards: all of them die with the server.
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				_, err := s.List(ctx, outbox.Filter{})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
	}
	for i := range 3 {
		require.NoError(t, enqueue(fmt.Sprintf("p%d", i)))
	}
	claimed, err := s.Claim(ctx, "cv", "daemon-1", 1, clk.Now(), time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	t.Run("calls while down fail and the store recovers", func(t *testing.T) {
		fillPool()
		srv.Stop()
		_, err := s.Counts(ctx, "")
		require.Error(t, err, "the server is down")
		require.Error(t, enqueue("lost"), "an enqueue while down fails, so its batch is retried")
		srv.Start()

		counts, err := s.Counts(ctx, "")
		require.NoError(t, err, "the first call after the restart works")
		assert.Equal(t, 2, counts[outbox.StatePending], "nothing committed was lost, nothing failed was kept")
		assert.Equal(t, 1, counts[outbox.StateSending])
	})

	t.Run("restart between calls", func(t *testing.T) {
		for round := range 3 {
			fillPool()
			srv.Stop()
			srv.Start()
			// Every idle connection is dead. The first call may fail on one
			// (the server said goodbye on it); it must not take more.
			err := enqueue(fmt.Sprintf("after-restart-%d", round))
			if err != nil {
				t.Logf("round %d: the first call after the restart failed: %v", round, err)
				require.NoError(t, enqueue(fmt.Sprintf("after-restart-%d", round)), "round %d: the next call works", round)
			}
			// Claim and FinishBatch run statements prepared before the
			// restart on connections that died with it.
			errs, err := s.FinishBatch(ctx, []outbox.Finish{{ID: claimed[0].ID, Owner: "daemon-1", State: outbox.StatePending,
				NextAttemptAt: clk.Now(), Attempt: outbox.Attempt{Status: 503}}})
			require.NoError(t, err, "round %d", round)
			require.NoError(t, errs[0], "round %d", round)
			claimed, err = s.Claim(ctx, "cv", "daemon-1", 1, clk.Now(), time.Minute)
			require.NoError(t, err, "round %d", round)
			require.Len(t, claimed, 1)
		}
		counts, err := s.Counts(ctx, "cv")
		require.NoError(t, err)
		assert.Equal(t, 6, counts[outbox.StatePending]+counts[outbox.StateSending], "every committed result is there")
	})
}
