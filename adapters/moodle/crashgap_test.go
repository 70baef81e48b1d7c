package moodle

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
)

// TestCrashBeforeThePollLosesNoEnrolment drives the whole path with the
// core's real parts: an enrolment from Coachview is carried out by the
// inbound processor through the Moodle enroller and recorded done, with its
// list entry, in a real store; the process dies before any poll (a fresh
// source with no cursor stands for the restarted one); the next poll still
// watches the person and queues their completion.
func TestCrashBeforeThePollLosesNoEnrolment(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	site := newSite(t)
	site.AddCourse(moodletest.Course{ID: 5, ShortName: "intro", FullName: "Introductie", IDNumber: "E-INTRO"})
	clk := clock.NewFake(time.Unix(t0, 0))
	quiet := slog.New(slog.DiscardHandler)
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "outbox.db"), sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })

	before := wsSource(t, site, "full", "", clk, nil)
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "academy", Patterns: []string{"E-*"}, Enroller: before}}, "")
	require.NoError(t, err)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(quiet))
	worker, err := inbound.NewWorker(store, proc, inbound.WorkerConfig{Owner: "daemon-1"})
	require.NoError(t, err)
	_, _, err = store.SaveMessage(ctx, inboundstore.Message{Source: inboundstore.SourceLink, DedupeKey: "k1",
		Verified: inboundstore.VerifiedBearer, Action: inboundstore.ActionEnrol, PersonID: "P7", FirstName: "Fleur",
		LastName: "Visser", Email: "fleur@example.nl", ElearningCode: "E-INTRO", State: inboundstore.StatePending}, inboundstore.KeepExisting)
	require.NoError(t, err)
	n, err := worker.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	listed, err := store.ListEnrolments(ctx, inboundstore.EnrolmentFilter{Connection: "academy", State: inboundstore.EnrolmentActive})
	require.NoError(t, err)
	require.Len(t, listed, 1, "the enrolment is done and listed")
	user, ok := site.User(100)
	require.True(t, ok)
	require.Equal(t, "P7", user.IDNumber, "Moodle created and enrolled the person")

	// kill -9: the enroller's in-memory watch is gone, no poll ever committed.
	schema, err := xsdschema.Bundled()
	require.NoError(t, err)
	t.Cleanup(schema.Close)
	renderer, err := result.NewRenderer(result.DefaultOptions(), schema)
	require.NoError(t, err)
	sink := intake.NewSink(store, renderer, intake.SinkConfig{Connection: "academy", Target: "cv", Logger: quiet})
	cursor, err := sink.Cursor(ctx)
	require.NoError(t, err)
	require.Nil(t, cursor, "no poll committed before the crash")

	after := wsSource(t, site, "full", "", clk, nil)
	site.SetProgress(100, 5, moodletest.Progress{Completed: true, CriteriaDone: []int64{t0 + 60}})
	require.NoError(t, after.Poll(ctx, sink))
	items, err := store.List(ctx, outbox.Filter{Connection: "academy"})
	require.NoError(t, err)
	require.Len(t, items, 1, "the completion is queued for Coachview")
	assert.Equal(t, "P7", items[0].PersonID)
	assert.Equal(t, "E-INTRO", items[0].ElearningCode)
	assert.Equal(t, outbox.StatePending, items[0].State)
}
