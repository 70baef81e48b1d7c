package inbound_test

import (
	"context"
	"errors"
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

// TestWorkerPollsOnItsClock: the worker's interval runs on its clock, so
// on a fake clock a failed message is retried once the fake time reaches
// the next interval, not by the wall clock.
func TestWorkerPollsOnItsClock(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	store := fakes.Store(t, clk)
	enr := &fakes.Enroller{}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"*"}, Enroller: enr}}, "")
	require.NoError(t, err)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(slog.New(slog.DiscardHandler)),
		inbound.WithRetryPolicy(inbound.RetryPolicy{Base: 30 * time.Second}))
	w, err := inbound.NewWorker(store, proc, inbound.WorkerConfig{Owner: "w", Interval: time.Minute})
	require.NoError(t, err)
	_, _, err = store.SaveMessage(t.Context(), inboundstore.Message{Source: "webhook:cv", DedupeKey: "k", Verified: "token",
		Action: inboundstore.ActionUnenrol, PersonID: "p1", ElearningCode: "e1", State: inboundstore.StatePending}, inboundstore.KeepExisting)
	require.NoError(t, err)
	enr.Fail(errors.New("timeout"))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	message := func() inboundstore.Message {
		ms, err := store.ListMessages(t.Context(), inboundstore.MessageFilter{})
		require.NoError(t, err)
		require.Len(t, ms, 1)
		return ms[0]
	}
	require.Eventually(t, func() bool { m := message(); return m.State == inboundstore.StatePending && m.Attempts == 1 },
		10*time.Second, time.Millisecond, "the failed first attempt recorded")
	assert.Equal(t, t0.Add(30*time.Second), message().NextAttemptAt)

	clk.Advance(time.Minute)
	require.Eventually(t, func() bool { return message().State == inboundstore.StateDone },
		10*time.Second, time.Millisecond, "the retry at the next interval")
	assert.Len(t, enr.Calls(), 2)
}
