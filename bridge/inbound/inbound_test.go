package inbound_test

import (
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

func TestCodeRouter(t *testing.T) {
	t.Parallel()
	moodle, scorm := &fakes.Enroller{}, &fakes.Enroller{}
	r, err := inbound.NewCodeRouter([]inbound.CodeRule{
		{Connection: "moodle", Patterns: []string{"MOO-*", "E100"}, Enroller: moodle},
		{Connection: "scorm", Patterns: []string{"S*"}, Enroller: scorm},
	}, "scorm")
	require.NoError(t, err)
	for code, want := range map[string]string{"MOO-1": "moodle", "E100": "moodle", "E1000": "scorm", "S9": "scorm"} {
		got, err := r.Route(code)
		require.NoError(t, err, code)
		assert.Equal(t, want, got.Connection, code)
	}
	noDefault, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"MOO-*"}, Enroller: moodle}}, "")
	require.NoError(t, err)
	_, err = noDefault.Route("X")
	assert.ErrorIs(t, err, inbound.ErrNoRoute)

	_, err = inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "m", Patterns: []string{"["}, Enroller: moodle}}, "")
	assert.ErrorContains(t, err, `pattern "["`)
	_, err = inbound.NewCodeRouter(nil, "missing")
	assert.ErrorContains(t, err, `default connection "missing"`)
}

func TestRetryDelays(t *testing.T) {
	t.Parallel()
	p := inbound.RetryPolicy{Base: time.Minute, Max: 10 * time.Minute}
	var got []time.Duration
	for a := 1; a <= 6; a++ {
		got = append(got, p.Delay(a))
	}
	assert.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}, got)
}

func TestGiveUpAfter(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	store := fakes.Store(t, clk)
	enr := &fakes.Enroller{}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"*"}, Enroller: enr}}, "")
	require.NoError(t, err)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(slog.New(slog.DiscardHandler)),
		inbound.WithRetryPolicy(inbound.RetryPolicy{Base: time.Hour, GiveUpAfter: 90 * time.Minute}))
	w, err := inbound.NewWorker(store, proc, inbound.WorkerConfig{Owner: "w"})
	require.NoError(t, err)
	_, _, err = store.SaveMessage(t.Context(), inboundstore.Message{Source: "webhook:cv", DedupeKey: "k", Verified: "token",
		Action: inboundstore.ActionUnenrol, PersonID: "p1", ElearningCode: "e1", State: inboundstore.StatePending}, inboundstore.KeepExisting)
	require.NoError(t, err)
	enr.Fail(errors.New("timeout"), errors.New("timeout again"))

	n, err := w.RunOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	clk.Advance(time.Hour)
	n, err = w.RunOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ms, err := store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Equal(t, inboundstore.StatePending, ms[0].State, "still within the retry time")
	clk.Advance(time.Hour)
	enr.Fail(errors.New("still down"))
	_, err = w.RunOnce(t.Context())
	require.NoError(t, err)
	ms, err = store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Equal(t, inboundstore.StateFailed, ms[0].State)
	assert.Contains(t, ms[0].LastError, "gave up")
	assert.Len(t, enr.Calls(), 3)
	assert.Equal(t, "unenrol", enr.Calls()[0].Action)
}
