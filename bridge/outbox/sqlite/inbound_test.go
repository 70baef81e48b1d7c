package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
)

func TestInboundConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunInbound(t, func(t *testing.T, clk clock.Clock) inboundstore.Store {
		path := filepath.Join(t.TempDir(), "outbox.db")
		t.Cleanup(func() { outboxtest.AssertNoOrphanAttempts(t, raw(t, path)) })
		return open(t, path, clk)
	})
}
