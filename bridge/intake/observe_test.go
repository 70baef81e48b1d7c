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
