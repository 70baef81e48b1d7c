package outboxtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// BatchSaver is what RunInboundBatch tests: saving several inbound messages
// in one transaction (the webhook receiver's group commit,
// webhook.BatchSaver).
type BatchSaver interface {
	inboundstore.Store
	SaveMessages(ctx context.Context, ms []inboundstore.Message, dup inboundstore.Duplicate) ([]inboundstore.Message, []inboundstore.SaveOutcome, error)
}

// BatchOpener returns a new, empty store whose notion of now is clk,
// closed (via t.Cleanup) when t ends.
type BatchOpener func(t *testing.T, clk clock.Clock) BatchSaver

// RunInboundBatch runs the conformance suite of SaveMessages against the
// stores open returns: each message of a batch is saved as SaveMessage
// saves one, in order, and a batch is saved whole or not at all.
func RunInboundBatch(t *testing.T, open BatchOpener) {
	tests := []struct {
		name string
		fn   func(*testing.T, BatchSaver, *clock.Fake)
	}{
		{"SavesInOrderAsSaveMessage", testBatchOutcomes},
		{"RearmsFinishedMessages", testBatchRearm},
		{"InvalidMessageSavesNone", testBatchInvalid},
		{"LargeBatch", testBatchLarge},
		{"LastOfAPairDecides", testBatchOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(Epoch)
			tc.fn(t, open(t, clk), clk)
		})
	}
}

func testBatchOutcomes(t *testing.T, s BatchSaver, clk *clock.Fake) {
	ctx := t.Context()
	stored, _, err := s.SaveMessage(ctx, msg("webhook:cv", "old"), inboundstore.KeepExisting)
	require.NoError(t, err)
	clk.Advance(time.Minute)
	unmapped := msg("webhook:cv", "u")
	unmapped.Action, unmapped.State = inboundstore.ActionUnmapped, inboundstore.StateUnmapped
	batch := []inboundstore.Message{
		msg("webhook:cv", "a"), msg("webhook:cv", "old"), msg("webhook:cv", "b"),
		msg("webhook:cv", "a"), unmapped, msg("webhook:other", "a"),
	}
	saved, outcomes, err := s.SaveMessages(ctx, batch, inboundstore.KeepExisting)
	require.NoError(t, err)
	require.Len(t, saved, len(batch))
	assert.Equal(t, []inboundstore.SaveOutcome{inboundstore.Inserted, inboundstore.Existed, inboundstore.Inserted,
		inboundstore.Existed, inboundstore.Inserted, inboundstore.Inserted}, outcomes)
	for i, m := range saved {
		assert.Equal(t, batch[i].Source, m.Source, "message %d", i)
		assert.Equal(t, batch[i].DedupeKey, m.DedupeKey, "message %d", i)
		assert.Positive(t, m.ID)
	}
	assert.Equal(t, stored.ID, saved[1].ID, "a stored message keeps its id")
	assert.Equal(t, 2, saved[1].Requests, "and counts the request")
	sameTime(t, Epoch, saved[1].ReceivedAt, "and keeps its first receipt time")
	assert.Equal(t, saved[0].ID, saved[3].ID, "a message repeated in the batch is stored once")
	assert.Equal(t, 2, saved[3].Requests)
	assert.NotEqual(t, saved[0].ID, saved[5].ID, "the dedupe key is per source")
	assert.Equal(t, "p-b", saved[2].PersonID)
	assert.Equal(t, 1, saved[2].Requests)
	sameTime(t, clk.Now(), saved[2].ReceivedAt, "received_at defaults to now")
	sameTime(t, clk.Now(), saved[2].NextAttemptAt, "a new pending message is due now")
	assert.True(t, saved[4].NextAttemptAt.IsZero(), "a message that is not pending is never due")
	all, err := s.ListMessages(ctx, inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Len(t, all, 5)
}

func testBatchRearm(t *testing.T, s BatchSaver, clk *clock.Fake) {
	ctx := t.Context()
	m, _, err := s.SaveMessage(ctx, msg("link", "r"), inboundstore.Rearm)
	require.NoError(t, err)
	claimed, err := s.ClaimMessages(ctx, "w", 1, clk.Now(), time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, s.FinishMessage(ctx, inboundstore.Finish{ID: m.ID, Owner: "w", State: inboundstore.StateDone, At: clk.Now()}))
	clk.Advance(time.Hour)
	saved, outcomes, err := s.SaveMessages(ctx, []inboundstore.Message{msg("link", "r"), msg("link", "r")}, inboundstore.Rearm)
	require.NoError(t, err)
	assert.Equal(t, []inboundstore.SaveOutcome{inboundstore.Rearmed, inboundstore.Existed}, outcomes,
		"the first request rearms the done message, the second finds it pending")
	assert.Equal(t, inboundstore.StatePending, saved[0].State)
	assert.Equal(t, 3, saved[1].Requests)
	sameTime(t, clk.Now(), saved[0].NextAttemptAt, "a rearmed message is due now")
}

func testBatchInvalid(t *testing.T, s BatchSaver, _ *clock.Fake) {
	bad := msg("webhook:cv", "bad")
	bad.State = "sending"
	_, _, err := s.SaveMessages(t.Context(), []inboundstore.Message{msg("webhook:cv", "good"), bad}, inboundstore.KeepExisting)
	require.Error(t, err)
	all, err := s.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Empty(t, all, "nothing of a refused batch is stored")
}

func testBatchLarge(t *testing.T, s BatchSaver, _ *clock.Fake) {
	const n = 1234 // more than one INSERT statement's worth
	batch := make([]inboundstore.Message, n)
	for i := range batch {
		batch[i] = msg("webhook:cv", fmt.Sprintf("k%d", i))
	}
	saved, outcomes, err := s.SaveMessages(t.Context(), batch, inboundstore.KeepExisting)
	require.NoError(t, err)
	ids := map[int64]bool{}
	for i, m := range saved {
		assert.Equal(t, inboundstore.Inserted, outcomes[i])
		assert.Equal(t, batch[i].DedupeKey, m.DedupeKey)
		ids[m.ID] = true
	}
	assert.Len(t, ids, n)
}

// testBatchOrder: of several requests for one pair in a batch, the last
// decides: the earlier ones in the batch and the pair's pending message
// stored before are superseded, another pair's are not.
func testBatchOrder(t *testing.T, s BatchSaver, clk *clock.Fake) {
	ctx := t.Context()
	before, _, err := s.SaveMessage(ctx, pairMsg("webhook:cv", "e0", false), inboundstore.KeepExisting)
	require.NoError(t, err)
	clk.Advance(time.Minute)
	other := pairMsg("webhook:cv", "x", false)
	other.PersonID = "P2"
	saved, _, err := s.SaveMessages(ctx, []inboundstore.Message{
		pairMsg("webhook:cv", "u1", true), other, pairMsg("webhook:cv", "e1", false),
	}, inboundstore.KeepExisting)
	require.NoError(t, err)
	state := func(id int64) inboundstore.State {
		m, err := s.GetMessage(ctx, id)
		require.NoError(t, err)
		return m.State
	}
	assert.Equal(t, inboundstore.StateSuperseded, state(before.ID), "stored before")
	assert.Equal(t, inboundstore.StateSuperseded, state(saved[0].ID), "earlier in the batch")
	assert.Equal(t, inboundstore.StatePending, state(saved[1].ID), "another person")
	assert.Equal(t, inboundstore.StatePending, state(saved[2].ID), "the last request decides")
	m, err := s.GetMessage(ctx, saved[0].ID)
	require.NoError(t, err)
	assert.Contains(t, m.LastError, fmt.Sprintf("superseded by message %d", saved[2].ID))
}
