package intake_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// tallySource counts its polls.
type tallySource struct{ polls atomic.Int32 }

func (s *tallySource) Poll(context.Context, source.Sink) error {
	s.polls.Add(1)
	return nil
}

// TestRunnerPollsWhenFakeTimeReachesTheSchedule: the runner waits for its
// schedule on its own clock, so advancing a fake clock to the next minute
// gives exactly one more poll and advancing it short of that gives none,
// however much wall-clock time passes while the fake clock stands. (The
// runner once waited for the fake time's next tick by the wall clock.)
// synctest.Wait returns once every goroutine waits, and the wall clock in
// the bubble is fake too, so no real time is waited for.
func TestRunnerPollsWhenFakeTimeReachesTheSchedule(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		everyMinute, err := cron.ParseStandard("* * * * *")
		require.NoError(t, err)
		src := &tallySource{}
		clk := clock.NewFake(time.Date(2024, 3, 1, 10, 0, 30, 0, time.UTC))
		r := intake.NewRunner([]intake.Job{{Name: "lms", Source: src, Schedule: everyMinute}},
			intake.RunnerOptions{Logger: quiet, Clock: clk})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		defer func() { cancel(); <-done }()

		synctest.Wait()
		assert.Equal(t, int32(1), src.polls.Load(), "the poll at start")
		assert.Equal(t, time.Date(2024, 3, 1, 10, 1, 0, 0, time.UTC), r.Statuses()[0].NextRun)

		time.Sleep(time.Hour) // the bubble's wall clock moves on; the fake clock stands
		synctest.Wait()
		assert.Equal(t, int32(1), src.polls.Load(), "polls while the fake clock stood still")
		assert.Equal(t, 1, r.Statuses()[0].Polls)

		clk.Advance(29 * time.Second)
		synctest.Wait()
		assert.Equal(t, int32(1), src.polls.Load(), "a second before the next minute")

		clk.Advance(time.Second)
		synctest.Wait()
		assert.Equal(t, int32(2), src.polls.Load(), "at the next minute")
		assert.Equal(t, time.Date(2024, 3, 1, 10, 2, 0, 0, time.UTC), r.Statuses()[0].NextRun)

		clk.Advance(10 * time.Minute) // a jump past several ticks polls once, then waits for the next
		synctest.Wait()
		assert.Equal(t, int32(3), src.polls.Load())
		assert.Equal(t, time.Date(2024, 3, 1, 10, 12, 0, 0, time.UTC), r.Statuses()[0].NextRun)
	})
}

// renewals records the time of each AcquireLease a Leaser is asked.
type renewals struct {
	outbox.Leaser
	mu sync.Mutex
	at []time.Time
}

func (r *renewals) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (bool, error) {
	held, err := r.Leaser.AcquireLease(ctx, name, owner, ttl, now)
	r.mu.Lock()
	r.at = append(r.at, now)
	r.mu.Unlock()
	return held, err
}

// times returns the times of the AcquireLease calls so far.
func (r *renewals) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.at)
}

// TestRunnerRenewsThePollLeaseOnItsClock: a long poll's lease is renewed
// every third of its TTL of the runner's clock, so a fake clock's lease
// does not run out while the poll runs, and is not renewed by the wall clock.
// In the synctest bubble the wall clock is fake too: an hour of it passes at
// once, and synctest.Wait lets every renewal that causes happen before the
// test looks.
func TestRunnerRenewsThePollLeaseOnItsClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var leaser outbox.Leaser = openStore(t)
		rec := &renewals{Leaser: leaser}
		t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
		clk := clock.NewFake(t0)
		src := &blockingSource{release: make(chan struct{})}
		yearly, err := cron.ParseStandard("@yearly")
		require.NoError(t, err)
		r := intake.NewRunner([]intake.Job{{Name: "lms", Source: src, Schedule: yearly}},
			intake.RunnerOptions{Logger: quiet, Clock: clk, Leaser: rec, Owner: "daemon-a", LeaseTTL: 30 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		defer func() { close(src.release); cancel(); <-done }()

		synctest.Wait()
		assert.Equal(t, int32(1), src.polls.Load(), "polling")
		assert.Equal(t, 1, clk.Timers(), "the renewal ticker waits on the fake clock")
		assert.Equal(t, []time.Time{t0}, rec.times(), "the lease taken for the poll at start")

		time.Sleep(time.Hour) // the bubble's wall clock moves on; the fake clock stands
		synctest.Wait()
		assert.Equal(t, []time.Time{t0}, rec.times(), "renewed while the fake clock stood still")

		clk.Advance(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, []time.Time{t0, t0.Add(10 * time.Second)}, rec.times(), "renewed a third of the TTL on")

		held, err := leaser.AcquireLease(ctx, "poll:lms", "daemon-b", 30*time.Second, t0.Add(35*time.Second))
		require.NoError(t, err)
		assert.False(t, held, "the renewed lease runs to 40 s, past the first one's 30 s")
	})
}
