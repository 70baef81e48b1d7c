package postgres_test

import (
	"testing"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

func TestInboundBatchConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunInboundBatch(t, func(t *testing.T, clk clock.Clock) outboxtest.BatchSaver {
		return open(t, testdb.Postgres(t), postgres.WithClock(clk))
	})
}
