package postgres_test

import (
	"testing"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

func TestBatchConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunBatch(t, func(t *testing.T, clk clock.Clock) outbox.Store {
		return open(t, testdb.Postgres(t), postgres.WithClock(clk), postgres.WithLeasesOnStoreClock())
	})
}
