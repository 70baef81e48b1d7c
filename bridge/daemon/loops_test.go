package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// TestPurgeRepeatsOnTheDaemonsClock: the retention purge runs at start and
// then every purge interval of the daemon's clock, so on a fake clock the
// history that expires after the start is purged once the fake time
// reaches the next purge, not by the wall clock.
func TestPurgeRepeatsOnTheDaemonsClock(t *testing.T) {
	cfg := loadConfig(t, `storage:
  retention: 720h
targets:
  cv:
    url: http://127.0.0.1:1/r
    secret_file: secret
`)
	clk := clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	store, err := daemon.OpenStore(ctx, cfg, clk)
	require.NoError(t, err)
	deliver := func(person string) {
		require.NoError(t, store.InTx(ctx, func(tx outbox.Tx) error {
			_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "c", ElearningCode: "E", PersonID: person, Body: []byte("<x/>" + person)}, outbox.EnqueuePolicy{})
			return err
		}))
		items, err := store.Claim(ctx, "cv", "test", 10, clk.Now(), time.Minute)
		require.NoError(t, err)
		require.Len(t, items, 1)
		require.NoError(t, store.Finish(ctx, outbox.Finish{ID: items[0].ID, Owner: "test", State: outbox.StateDelivered,
			Attempt: outbox.Attempt{At: clk.Now(), Status: 200, Class: "delivered"}}))
	}
	deliver("older")
	clk.Advance(48 * time.Hour)
	deliver("old")
	clk.Advance(29 * 24 * time.Hour) // "older" is past the retention, "old" a day short of it
	require.NoError(t, store.Close())

	d, stop := runWithoutConnections(t, cfg, daemon.Options{Clock: clk, PurgeEvery: time.Hour})
	defer stop()
	// The purge keeps delivered rows and erases their bodies.
	stillHeld := func() int {
		rows, err := d.Store().List(ctx, outbox.Filter{Target: "cv", State: outbox.StateDelivered})
		require.NoError(t, err)
		n := 0
		for _, it := range rows {
			if full, _, err := d.Store().Get(ctx, it.ID); err == nil && full.Body != nil {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return stillHeld() == 1 }, 10*time.Second, 10*time.Millisecond, "the purge at start")

	clk.Advance(25 * time.Hour) // "old" expires; the next purges fall due
	require.Eventually(t, func() bool { return stillHeld() == 0 }, 10*time.Second, 10*time.Millisecond, "a purge on the fake clock")
}
