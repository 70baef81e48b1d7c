package intake_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// enrolled carries out an enrol (or unenrol) message through the store, as
// the inbound processor does, routed to connection.
func enrolled(t *testing.T, s *sqlite.Store, key, connection, person, code string, action inboundstore.Action) int64 {
	t.Helper()
	ctx := t.Context()
	m, _, err := s.SaveMessage(ctx, inboundstore.Message{Source: "link", DedupeKey: key, Verified: inboundstore.VerifiedBearer,
		Action: action, PersonID: person, ElearningCode: code, State: inboundstore.StatePending}, inboundstore.KeepExisting)
	require.NoError(t, err)
	_, ok, err := s.ClaimMessage(ctx, m.ID, "w", time.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.FinishMessage(ctx, inboundstore.Finish{ID: m.ID, Owner: "w", State: inboundstore.StateDone, Connection: connection}))
	return m.ID
}

func TestSinkListsItsConnectionsEnrolments(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "outbox.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	first := enrolled(t, store, "1", "moodle", "P1", "E1", inboundstore.ActionEnrol)
	enrolled(t, store, "2", "csv", "P2", "E1", inboundstore.ActionEnrol)
	gone := enrolled(t, store, "3", "moodle", "P3", "E2", inboundstore.ActionUnenrol)
	sink := intake.NewSink(store, newRenderer(t), intake.SinkConfig{Connection: "moodle", Target: "cv", Logger: quiet})

	got, err := sink.Enrolments(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []source.Enrolled{
		{PersonID: "P1", ElearningCode: "E1", Active: true, Ref: first},
		{PersonID: "P3", ElearningCode: "E2", Active: false, Ref: gone},
	}, got, "only this connection's entries")

	// The runner hands the source a sink through which the list is still seen.
	src := &listingSource{polled: make(chan struct{}, 1)}
	yearly, err := cron.ParseStandard("@yearly")
	require.NoError(t, err)
	r := intake.NewRunner([]intake.Job{{Name: "moodle", Source: src, Sink: sink, Schedule: yearly}},
		intake.RunnerOptions{Logger: quiet, Clock: clock.System{}})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	<-src.polled
	cancel()
	wg.Wait()
	require.NoError(t, src.err)
	assert.Equal(t, got, src.seen)
}

// listingSource reads its sink's enrolment list at each poll.
type listingSource struct {
	polled chan struct{}
	seen   []source.Enrolled
	err    error
}

func (l *listingSource) Poll(ctx context.Context, sink source.Sink) error {
	l.seen, l.err = sink.Enrolments(ctx)
	l.polled <- struct{}{}
	return nil
}
