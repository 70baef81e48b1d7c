package inbound_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/internal/fakes"
)

func TestErasePersonalDataAfterRetention(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	store := fakes.Store(t, clk)
	ctx := t.Context()
	save := func(key string, st inboundstore.State) int64 {
		m, _, err := store.SaveMessage(ctx, inboundstore.Message{
			Source: "webhook:cv", DedupeKey: key, Verified: inboundstore.VerifiedSignature, Event: "e",
			Body: []byte(`{"naam":"Jan Jansen"}`), Action: inboundstore.ActionIgnore, PersonID: "p1", FirstName: "Jan",
			LastName: "Jansen", Email: "jan@example.org", State: st,
		}, inboundstore.KeepExisting)
		require.NoError(t, err)
		return m.ID
	}
	old := save("old", inboundstore.StateIgnored)
	clk.Advance(24 * time.Hour)
	young := save("young", inboundstore.StateIgnored)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	tests := []struct {
		name      string
		at        time.Time
		retention time.Duration
		want      int
		erased    []int64
	}{
		{"nothing older than the retention", start.Add(30 * 24 * time.Hour), inbound.DefaultPersonalDataRetention, 0, nil},
		{"the first message is past it", start.Add(30*24*time.Hour + time.Millisecond), inbound.DefaultPersonalDataRetention, 1, []int64{old}},
		{"zero retention erases every finished message", start.Add(24*time.Hour + time.Millisecond), 0, 1, []int64{old, young}},
	}
	for _, tc := range tests {
		n, err := inbound.ErasePersonalData(ctx, store, tc.at, tc.retention, log)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, n, tc.name)
		for _, id := range tc.erased {
			m, err := store.GetMessage(ctx, id)
			require.NoError(t, err)
			assert.True(t, m.Erased(), "%s: message %d", tc.name, id)
			assert.Empty(t, m.LastName+m.Email+string(m.Body), tc.name)
		}
	}
	assert.Contains(t, logs.String(), "messages=1")
	assert.NotContains(t, logs.String(), "Jansen", "no personal data in the log")
	_, err := inbound.ErasePersonalData(ctx, store, start, -time.Hour, log)
	assert.Error(t, err)
}

func TestPurgeMessagesAfterKeep(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	store := fakes.Store(t, clk)
	ctx := t.Context()
	const many = 1001 // more than one purge batch
	for i := range many {
		_, _, err := store.SaveMessage(ctx, inboundstore.Message{Source: "webhook:cv", DedupeKey: fmt.Sprint("old-", i),
			Verified: inboundstore.VerifiedToken, Action: inboundstore.ActionIgnore, State: inboundstore.StateIgnored}, inboundstore.KeepExisting)
		require.NoError(t, err)
	}
	clk.Advance(24 * time.Hour)
	young, _, err := store.SaveMessage(ctx, inboundstore.Message{Source: "webhook:cv", DedupeKey: "young",
		Verified: inboundstore.VerifiedToken, Action: inboundstore.ActionIgnore, State: inboundstore.StateIgnored}, inboundstore.KeepExisting)
	require.NoError(t, err)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	n, err := inbound.PurgeMessages(ctx, store, start.Add(inbound.DefaultKeepMessages), inbound.DefaultKeepMessages, log)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing is older than keep_messages yet")
	n, err = inbound.PurgeMessages(ctx, store, start.Add(inbound.DefaultKeepMessages+time.Millisecond), inbound.DefaultKeepMessages, log)
	require.NoError(t, err)
	assert.Equal(t, many, n, "every old message, batch after batch")
	assert.Contains(t, logs.String(), fmt.Sprint("messages=", many))
	ms, err := store.ListMessages(ctx, inboundstore.MessageFilter{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, young.ID, ms[0].ID)

	_, err = inbound.PurgeMessages(ctx, store, start, inbound.MinKeepMessages-time.Minute, log)
	assert.ErrorContains(t, err, "resends webhooks", "a keep shorter than Coachview's resends is refused")
}
