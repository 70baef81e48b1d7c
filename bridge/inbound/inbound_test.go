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

func TestDoneEnrolmentsAreListed(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	store := fakes.Store(t, clk)
	moodle, csv := &fakes.Enroller{}, &fakes.Enroller{}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{
		{Connection: "moodle", Patterns: []string{"MOO-*"}, Enroller: moodle},
		{Connection: "csv", Patterns: []string{"CSV-*"}, Enroller: csv},
	}, "")
	require.NoError(t, err)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(slog.New(slog.DiscardHandler)))
	w, err := inbound.NewWorker(store, proc, inbound.WorkerConfig{Owner: "w"})
	require.NoError(t, err)
	save := func(key string, action inboundstore.Action, person, code string) {
		t.Helper()
		_, _, err := store.SaveMessage(t.Context(), inboundstore.Message{Source: "webhook:cv", DedupeKey: key, Verified: "token",
			Action: action, PersonID: person, FirstName: "A", LastName: "B", Email: "a@example.org", ElearningCode: code,
			State: inboundstore.StatePending}, inboundstore.KeepExisting)
		require.NoError(t, err)
	}
	list := func() []string {
		t.Helper()
		es, err := store.ListEnrolments(t.Context(), inboundstore.EnrolmentFilter{})
		require.NoError(t, err)
		var out []string
		for _, e := range es {
			out = append(out, e.Connection+" "+e.PersonID+" "+e.ElearningCode+" "+string(e.State))
		}
		return out
	}

	save("1", inboundstore.ActionEnrol, "p1", "MOO-1")
	save("2", inboundstore.ActionEnrol, "p2", "CSV-1")
	save("3", inboundstore.ActionEnrol, "p3", "MOO-1")
	save("4", inboundstore.ActionEnrol, "p4", "NOWHERE")
	moodle.Fail(nil, errors.New("Moodle unreachable"))
	n, err := w.RunOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 4, n)
	assert.Equal(t, []string{"csv p2 CSV-1 active", "moodle p1 MOO-1 active"}, list(),
		"only done enrolments, each in the connection that carried it out")

	save("5", inboundstore.ActionUnenrol, "P1", "MOO-1")
	clk.Advance(time.Hour)
	_, err = w.RunOnce(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"csv p2 CSV-1 active", "moodle P1 MOO-1 unenrolled", "moodle p3 MOO-1 active"}, list(),
		"the retried enrolment is listed once done; the unenrolment changes the entry")
}

// TestRetentionZeroErasesAtOnce: with personal_data_retention 0 the worker
// erases a message's names and e-mail address as soon as it has carried it
// out, not at the next hourly purge; a message still pending keeps them.
func TestRetentionZeroErasesAtOnce(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	store := fakes.Store(t, clk)
	enr := &fakes.Enroller{}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"*"}, Enroller: enr}}, "")
	require.NoError(t, err)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(slog.New(slog.DiscardHandler)))
	w, err := inbound.NewWorker(store, proc, inbound.WorkerConfig{Owner: "w", Batch: 1, EraseAtOnce: store})
	require.NoError(t, err)
	for _, key := range []string{"first", "second"} {
		_, _, err := store.SaveMessage(t.Context(), inboundstore.Message{Source: "webhook:cv", DedupeKey: key, Verified: "token",
			Action: inboundstore.ActionEnrol, PersonID: "p-" + key, FirstName: "Jan", LastName: "Jansen", Email: key + "@example.org",
			ElearningCode: "e1", State: inboundstore.StatePending}, inboundstore.KeepExisting)
		require.NoError(t, err)
	}

	n, err := w.RunOnce(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ms, err := store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	require.Len(t, ms, 2)
	for _, m := range ms {
		if m.State == inboundstore.StatePending {
			assert.Equal(t, "second@example.org", m.Email, "a message not yet carried out keeps its data")
			continue
		}
		assert.Equal(t, inboundstore.StateDone, m.State)
		assert.True(t, m.Erased(), "erased as soon as it was carried out")
		assert.Empty(t, m.FirstName+m.LastName+m.Email)
	}
}
