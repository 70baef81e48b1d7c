package outboxtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// testOldestPending: the oldest waiting (pending or sending) row per target,
// whatever the order of ids; delivered rows do not count.
func testOldestPending(t *testing.T, open Opener) {
	f := newFixture(t, open)
	oldest := func(target string) (time.Time, bool) {
		t.Helper()
		at, ok, err := f.s.OldestPending(f.ctx, target)
		require.NoError(t, err)
		return at, ok
	}
	_, ok := oldest("cv")
	assert.False(t, ok, "nothing waits yet")

	first := f.drive(result("cv", "e1", "P1", "v1"), outbox.StateSending) // claimed: still waiting
	f.clk.Advance(time.Hour)
	f.enqueue(result("cv", "e2", "P2", "v1"), outbox.EnqueuePolicy{})
	f.enqueue(result("other", "e1", "P1", "v1"), outbox.EnqueuePolicy{})

	at, ok := oldest("cv")
	require.True(t, ok)
	sameTime(t, first.CreatedAt, at, "the sending row is the oldest waiting")
	at, ok = oldest("other")
	require.True(t, ok)
	sameTime(t, f.clk.Now(), at, "targets are separate")

	f.finish(first.ID, "setup", outbox.StateDelivered, 200, time.Time{})
	at, ok = oldest("cv")
	require.True(t, ok)
	sameTime(t, Epoch.Add(time.Hour), at, "a delivered row no longer waits")
}
