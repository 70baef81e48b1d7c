package intake_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func TestSinkReportsEachCommit(t *testing.T) {
	t.Parallel()
	type report struct {
		connection string
		sum        source.Summary
	}
	var reports []report
	sink := intake.NewSink(openStore(t), newRenderer(t), intake.SinkConfig{
		Connection: "lms", Target: "cv", Logger: quiet,
		Committed: func(connection string, sum source.Summary) { reports = append(reports, report{connection, sum}) },
	})
	fill := func(cs ...result.Completion) func(func(result.Completion) error) error {
		return func(add func(result.Completion) error) error {
			for _, c := range cs {
				if err := add(c); err != nil {
					return err
				}
			}
			return nil
		}
	}
	ctx := context.Background()
	_, err := sink.Commit(ctx, source.Checkpoint{}, fill(completion("p1"), completion("p2")))
	require.NoError(t, err)
	_, err = sink.Commit(ctx, source.Checkpoint{}, fill(completion("p1")))
	require.NoError(t, err)
	_, err = sink.Commit(ctx, source.Checkpoint{}, func(func(result.Completion) error) error { return errors.New("LMS gone") })
	require.Error(t, err)
	assert.Equal(t, []report{
		{"lms", source.Summary{Queued: 2}},
		{"lms", source.Summary{Unchanged: 1}},
	}, reports, "one report per successful commit, none for a rolled-back one")
}

func TestRunnerReportsEachPoll(t *testing.T) {
	t.Parallel()
	type report struct {
		connection string
		err        error
	}
	var (
		mu      sync.Mutex
		reports []report
	)
	polled := func(connection string, took time.Duration, err error) {
		assert.GreaterOrEqual(t, took, time.Duration(0))
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, report{connection, err})
	}
	boom := errors.New("database unreachable")
	yearly, err := cron.ParseStandard("@yearly")
	require.NoError(t, err)
	r := intake.NewRunner([]intake.Job{
		{Name: "good", Source: &fakeSource{wake: make(chan func(), 1)}, Schedule: yearly, Polled: polled},
		{Name: "bad", Source: &fakeSource{wake: make(chan func(), 1), err: boom}, Schedule: yearly, Polled: polled},
	}, intake.RunnerOptions{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 1 && r.Statuses()[1].Polls == 1 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	assert.ElementsMatch(t, []report{{"good", nil}, {"bad", boom}}, reports)
}

// scriptSource runs one step per poll, the last one again once they run out.
type scriptSource struct {
	mu    sync.Mutex
	steps []func(ctx context.Context, sink source.Sink) error
	polls int
}

func (s *scriptSource) Poll(ctx context.Context, sink source.Sink) error {
	s.mu.Lock()
	step := s.steps[min(s.polls, len(s.steps)-1)]
	s.polls++
	s.mu.Unlock()
	return step(ctx, sink)
}

func TestRunnerKeepsLastActivePollAndProblems(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	commit := func(ctx context.Context, sink source.Sink, persons ...string) error {
		_, err := sink.Commit(ctx, source.Checkpoint{}, func(add func(result.Completion) error) error {
			for _, p := range persons {
				if err := add(completion(p)); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	}
	src := &scriptSource{steps: []func(context.Context, source.Sink) error{
		func(ctx context.Context, sink source.Sink) error { // a file with good and bad rows
			sink.ReportProblems(source.Problems{BadRows: 3, Last: "a.csv: 3 bad rows skipped"})
			return commit(ctx, sink, "p1", "p2")
		},
		func(context.Context, source.Sink) error { return nil }, // an empty rescan
		func(_ context.Context, sink source.Sink) error { // a file set aside whole
			sink.ReportProblems(source.Problems{FailedFiles: 1, Last: "b.csv failed"})
			return nil
		},
		func(context.Context, source.Sink) error { return nil },
	}}
	var (
		mu       sync.Mutex
		reported []source.Problems
	)
	sink := intake.NewSink(openStore(t), newRenderer(t), intake.SinkConfig{Connection: "drop", Target: "cv", Logger: quiet})
	yearly, err := cron.ParseStandard("@yearly")
	require.NoError(t, err)
	r := intake.NewRunner([]intake.Job{{Name: "drop", Source: src, Sink: sink, Schedule: yearly,
		Problems: func(connection string, p source.Problems) {
			assert.Equal(t, "drop", connection)
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, p)
		}}}, intake.RunnerOptions{Logger: quiet, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 1 })
	first := clk.Now()
	st := r.Statuses()[0]
	assert.Equal(t, source.Summary{Queued: 2}, st.LastSummary)
	assert.Equal(t, first, st.LastActive)
	assert.Equal(t, source.Problems{BadRows: 3, Last: "a.csv: 3 bad rows skipped"}, st.Problems)

	clk.Advance(time.Minute)
	r.Trigger("drop")
	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 2 })
	st = r.Statuses()[0]
	assert.Equal(t, source.Summary{Queued: 2}, st.LastSummary, "an empty rescan keeps the last poll that did something")
	assert.Equal(t, first, st.LastActive)
	assert.Equal(t, first.Add(time.Minute), st.LastEnd)

	clk.Advance(time.Minute)
	r.Trigger("drop")
	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 3 })
	st = r.Statuses()[0]
	assert.Equal(t, source.Summary{}, st.LastSummary, "a poll that only met a bad file is the last that did something")
	assert.Equal(t, first.Add(2*time.Minute), st.LastActive)
	assert.Equal(t, source.Problems{BadRows: 3, FailedFiles: 1, Last: "b.csv failed"}, st.Problems, "added up, with the latest report")
	assert.Equal(t, first.Add(2*time.Minute), st.ProblemAt)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []source.Problems{{BadRows: 3, Last: "a.csv: 3 bad rows skipped"}, {FailedFiles: 1, Last: "b.csv failed"}}, reported)
}
