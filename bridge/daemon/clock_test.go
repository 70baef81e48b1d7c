package daemon_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// TestSyncClock: a daemon whose machine's clock runs two minutes ahead of
// the PostgreSQL server moves its clock onto the server's, and reports its
// own skew; on SQLite (one machine) nothing is measured or moved.
func TestSyncClock(t *testing.T) {
	t.Parallel()
	clk := &clock.Adjusted{Base: clock.Skewed{Base: clock.System{}, By: 2 * time.Minute}}
	s, err := postgres.Open(t.Context(), testdb.Postgres(t), postgres.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	own, ok := daemon.SyncClock(t.Context(), s, clk, log)
	require.True(t, ok)
	assert.InDelta(t, (2 * time.Minute).Seconds(), own.Seconds(), 2, "the machine's own skew")
	assert.InDelta(t, 0, time.Until(clk.Now()).Seconds(), 2, "the clock now follows the server's")
	own, ok = daemon.SyncClock(t.Context(), s, clk, log)
	require.True(t, ok)
	assert.InDelta(t, (2 * time.Minute).Seconds(), own.Seconds(), 2, "measured again, the machine's skew is the same")
	assert.InDelta(t, 0, time.Until(clk.Now()).Seconds(), 2)

	local := &clock.Adjusted{Base: clock.Skewed{Base: clock.System{}, By: time.Hour}}
	lite, err := sqlite.Open(t.Context(), t.TempDir()+"/outbox.db", sqlite.WithClock(local))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, lite.Close()) })
	_, ok = daemon.SyncClock(t.Context(), lite, local, log)
	assert.False(t, ok)
	assert.Zero(t, local.Offset())
}
