package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
)

func TestInboundBatchConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunInboundBatch(t, func(t *testing.T, clk clock.Clock) outboxtest.BatchSaver {
		return open(t, filepath.Join(t.TempDir(), "outbox.db"), clk)
	})
}
