package postgres_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// open opens a store on dsn, closed when t ends.
func open(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, func(t *testing.T, clk clock.Clock) outbox.Store {
		dsn := testdb.Postgres(t)
		s := open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock())
		db := raw(t, dsn)
		// Every change the suite makes must leave the counters right.
		t.Cleanup(func() { outboxtest.AssertCounts(t, s, db) })
		t.Cleanup(func() { outboxtest.AssertNoOrphanAttempts(t, db) })
		return s
	})
}

func TestCounts(t *testing.T) {
	t.Parallel()
	outboxtest.RunCounts(t, func(t *testing.T, clk clock.Clock) (outbox.Store, *sqlx.DB) {
		dsn := testdb.Postgres(t)
		return open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock()), raw(t, dsn)
	})
}
