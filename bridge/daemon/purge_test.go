package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// TestInboundMessagesPurged: processed inbound messages older than
// inbound.keep_messages are deleted by the daemon's periodic purge, even
// when storage.retention keeps results forever; newer and pending messages
// and the enrolment list stay.
func TestInboundMessagesPurged(t *testing.T) {
	cfg := loadConfig(t, `storage:
  retention: 0s
inbound:
  keep_messages: 720h
targets:
  cv:
    url: http://127.0.0.1:1/r
    secret_file: secret
`)

	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	ctx := context.Background()
	opened, err := daemon.OpenStore(ctx, cfg, clk)
	require.NoError(t, err)
	store := opened.(interface {
		inboundstore.Store
		inboundstore.EnrolmentList
	})
	save := func(key string) int64 {
		m, _, err := store.SaveMessage(ctx, inboundstore.Message{Source: inboundstore.SourceLink, DedupeKey: key,
			Verified: inboundstore.VerifiedBearer, Action: inboundstore.ActionEnrol, PersonID: "P-" + key, ElearningCode: "E1",
			FirstName: "Jan", LastName: "Jansen", Email: "jan@example.org", State: inboundstore.StatePending}, inboundstore.KeepExisting)
		require.NoError(t, err)
		return m.ID
	}
	done := func(id int64) {
		_, ok, err := store.ClaimMessage(ctx, id, "w", clk.Now(), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, store.FinishMessage(ctx, inboundstore.Finish{ID: id, Owner: "w", State: inboundstore.StateDone, At: clk.Now(), Connection: "moodle"}))
	}
	old := save("old")
	done(old)
	waiting := save("waiting")
	clk.Advance(40 * 24 * time.Hour)
	recent := save("recent")
	done(recent)
	require.NoError(t, opened.Close())

	d, stop := runWithoutConnections(t, cfg, daemon.Options{Clock: clk})
	after := d.Store().(interface {
		inboundstore.Store
		inboundstore.EnrolmentList
	})
	require.Eventually(t, func() bool {
		_, err := after.GetMessage(ctx, old)
		return err != nil
	}, 10*time.Second, 10*time.Millisecond)
	stop()

	_, err = after.GetMessage(ctx, old)
	assert.ErrorIs(t, err, inboundstore.ErrNotFound)
	for _, id := range []int64{waiting, recent} {
		_, err := after.GetMessage(ctx, id)
		assert.NoError(t, err, "message %d is kept", id)
	}
	es, err := after.ListEnrolments(ctx, inboundstore.EnrolmentFilter{})
	require.NoError(t, err)
	assert.Len(t, es, 2, "the enrolment list keeps the entry of the deleted message")
}
