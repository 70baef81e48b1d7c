package postgres_test

import (
	"testing"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

func TestInboundConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunInbound(t, func(t *testing.T, clk clock.Clock) inboundstore.Store {
		dsn := testdb.Postgres(t)
		db := raw(t, dsn)
		t.Cleanup(func() { outboxtest.AssertNoOrphanAttempts(t, db) })
		return open(t, dsn, postgres.WithClock(clk))
	})
}
