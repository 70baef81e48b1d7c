package intake_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func openStore(t *testing.T) outbox.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "outbox.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func newRenderer(t *testing.T) *result.Renderer {
	t.Helper()
	schema, err := xsdschema.Bundled()
	require.NoError(t, err)
	t.Cleanup(schema.Close)
	r, err := result.NewRenderer(result.DefaultOptions(), schema)
	require.NoError(t, err)
	return r
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func completion(person string) result.Completion {
	return result.Completion{PersonID: person, ElearningCode: "E1", Passed: true,
		CompletedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), SourceRef: "test:" + person}
}

func TestSinkCommitsResultsCursorAndMarksTogether(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	var woken atomic.Int32
	sink := intake.NewSink(store, newRenderer(t), intake.SinkConfig{
		Connection: "lms", Target: "cv", Policy: outbox.EnqueuePolicy{ReplacePending: true},
		Logger: quiet, Queued: func() { woken.Add(1) },
	})
	ctx := context.Background()

	tooLong := completion("p3")
	tooLong.Remark = string(make([]rune, 300))
	unreadable := completion("p4")
	unreadable.Unreadable = `unreadable SCORM value: score.raw = "8O"`
	sum, err := sink.Commit(ctx, source.Checkpoint{Cursor: []byte(`{"t":1}`), Marks: []string{"m1"}},
		func(add func(result.Completion) error) error {
			for _, c := range []result.Completion{completion("p1"), completion("p2"), tooLong, completion("p1"), unreadable} {
				if err := add(c); err != nil {
					return err
				}
			}
			return nil
		})
	require.NoError(t, err)
	assert.Equal(t, source.Summary{Queued: 2, Unchanged: 1, Rejected: 2}, sum)
	assert.EqualValues(t, 1, woken.Load(), "the dispatcher is woken once per commit that queued something")

	cursor, err := sink.Cursor(ctx)
	require.NoError(t, err)
	assert.Equal(t, `{"t":1}`, string(cursor))
	seen, err := sink.Seen(ctx, "m1")
	require.NoError(t, err)
	assert.True(t, seen)

	rejected, err := store.List(ctx, outbox.Filter{State: outbox.StateRejected})
	require.NoError(t, err)
	require.Len(t, rejected, 2)
	for _, r := range rejected { // newest first
		assert.Empty(t, r.Body, "a rejected result has nothing to send")
	}
	assert.Equal(t, "p3", rejected[1].PersonID)
	assert.Contains(t, rejected[1].LastError, "Opmerking")
	assert.Equal(t, "p4", rejected[0].PersonID)
	assert.Equal(t, `LMS data: unreadable SCORM value: score.raw = "8O"`, rejected[0].LastError,
		"an unreadable LMS value is recorded with its reason")
}

func TestSinkRollsBackWhenFillFails(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	sink := intake.NewSink(store, newRenderer(t), intake.SinkConfig{Connection: "lms", Target: "cv", Logger: quiet})
	ctx := context.Background()
	boom := errors.New("LMS went away mid-page")
	_, err := sink.Commit(ctx, source.Checkpoint{Cursor: []byte("x"), Marks: []string{"m"}},
		func(add func(result.Completion) error) error {
			require.NoError(t, add(completion("p1")))
			return boom
		})
	require.ErrorIs(t, err, boom)
	counts, err := store.Counts(ctx, "")
	require.NoError(t, err)
	assert.Zero(t, counts[outbox.StatePending], "nothing enqueued")
	cursor, err := sink.Cursor(ctx)
	require.NoError(t, err)
	assert.Nil(t, cursor, "the cursor did not move")
	seen, err := sink.Seen(ctx, "m")
	require.NoError(t, err)
	assert.False(t, seen)
}

// fakeSource counts polls and, as a Watcher, lets the test wake it. Its
// polls fail with err, or with what fail holds once the test set it (a
// pointer to nil: they succeed).
type fakeSource struct {
	polls atomic.Int32
	wake  chan func()
	err   error
	fail  atomic.Pointer[error]
}

func (f *fakeSource) Poll(ctx context.Context, sink source.Sink) error {
	f.polls.Add(1)
	if err := f.fail.Load(); err != nil {
		return *err
	}
	return f.err
}

func (f *fakeSource) Watch(ctx context.Context, wake func()) error {
	f.wake <- wake
	<-ctx.Done()
	return nil
}

func TestRunnerPollsAtStartOnWakeAndRecordsErrors(t *testing.T) {
	t.Parallel()
	src := &fakeSource{wake: make(chan func(), 1), err: errors.New("database unreachable")}
	yearly, err := cron.ParseStandard("@yearly")
	require.NoError(t, err)
	r := intake.NewRunner([]intake.Job{{Name: "lms", Source: src, Watcher: src, Schedule: yearly}}, intake.RunnerOptions{Logger: quiet, Clock: clock.System{}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()

	wake := <-src.wake
	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 1 }) // the poll at start
	firstStart := r.Statuses()[0].LastStart
	wake()
	waitUntil(t, func() bool { return src.polls.Load() == 2 })
	require.True(t, r.Trigger("lms"))
	assert.False(t, r.Trigger("nope"))
	waitUntil(t, func() bool { return src.polls.Load() == 3 })
	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 3 })

	st := r.Statuses()[0]
	assert.Equal(t, "database unreachable", st.LastError)
	assert.Equal(t, 3, st.Failures, "three failed polls in a row")
	assert.Equal(t, st.FailingSince, firstStart, "failing since the first poll started")
	assert.True(t, st.NextRun.After(time.Now().Add(24*time.Hour)), "next run from the @yearly schedule")

	// A poll that succeeds ends the run of failures.
	var ok error
	src.fail.Store(&ok)
	require.True(t, r.Trigger("lms"))
	waitUntil(t, func() bool { return r.Statuses()[0].Polls == 4 })
	st = r.Statuses()[0]
	assert.Empty(t, st.LastError)
	assert.Zero(t, st.Failures)
	assert.True(t, st.FailingSince.IsZero())
	cancel()
	wg.Wait()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond)
}

// blockingSource records how many polls run at once across runners.
type blockingSource struct {
	running, maxRunning, polls atomic.Int32
	release                    chan struct{}
}

func (b *blockingSource) Poll(ctx context.Context, _ source.Sink) error {
	n := b.running.Add(1)
	defer b.running.Add(-1)
	for {
		m := b.maxRunning.Load()
		if n <= m || b.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	b.polls.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

// TestRunnersSharingAStorePollOneAtATime: two daemons' runners on one store
// never poll the same connection at once; the one that finds the lease
// taken skips its tick, and takes the next once the lease is free.
func TestRunnersSharingAStorePollOneAtATime(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	var leaser outbox.Leaser = store
	src := &blockingSource{release: make(chan struct{})}
	yearly, err := cron.ParseStandard("@yearly")
	require.NoError(t, err)
	newRunner := func(owner string) *intake.Runner {
		return intake.NewRunner([]intake.Job{{Name: "lms", Source: src, Schedule: yearly}},
			intake.RunnerOptions{Logger: quiet, Leaser: leaser, Owner: owner, LeaseTTL: 3 * time.Second})
	}
	a, b := newRunner("daemon-a"), newRunner("daemon-b")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range []*intake.Runner{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	// Both poll at start: one gets the lease and blocks, the other skips.
	waitUntil(t, func() bool { return src.polls.Load() == 1 && a.Statuses()[0].Skipped+b.Statuses()[0].Skipped == 1 })
	holder, other := a, b
	if b.Statuses()[0].Running {
		holder, other = b, a
	}
	// While the holder polls, the other daemon's ticks are skipped.
	other.Trigger("lms")
	waitUntil(t, func() bool { return other.Statuses()[0].Skipped == 2 })
	assert.EqualValues(t, 1, src.polls.Load())

	// The holder's poll ends and releases the lease: the other's next tick polls.
	src.release <- struct{}{}
	waitUntil(t, func() bool { return holder.Statuses()[0].Polls == 1 })
	// The poll is recorded just before its lease is released: a tick in
	// between is still skipped, a later one polls.
	waitUntil(t, func() bool {
		other.Trigger("lms")
		return other.Statuses()[0].Running
	})
	assert.EqualValues(t, 2, src.polls.Load())
	close(src.release)
	cancel()
	wg.Wait()
	assert.EqualValues(t, 1, src.maxRunning.Load(), "never two polls of one connection at once")
}

// TestRenderFaultIsRetriedNotRejected: when the validator itself fails (here
// a closed schema, as after a reload gone wrong), the learner's result is not
// parked as rejected: the commit fails with ErrRenderFault, nothing is
// stored, and the next poll reads it again. A result the checks refuse is
// still rejected, and told to the source through Checkpoint.Rejected.
func TestRenderFaultIsRetriedNotRejected(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	schema, err := xsdschema.Bundled()
	require.NoError(t, err)
	renderer, err := result.NewRenderer(result.DefaultOptions(), schema)
	require.NoError(t, err)
	sink := intake.NewSink(store, renderer, intake.SinkConfig{Connection: "lms", Target: "cv", Logger: quiet})
	ctx := context.Background()

	var told []string
	cp := source.Checkpoint{Marks: []string{"m"}, Rejected: func(ref, reason string) error {
		told = append(told, ref+" "+reason)
		return nil
	}}
	tooLong := completion("p2")
	tooLong.Remark = strings.Repeat("x", 300)
	sum, err := sink.Commit(ctx, cp, func(add func(result.Completion) error) error {
		require.NoError(t, add(completion("p1")))
		return add(tooLong)
	})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rejected)
	require.Len(t, told, 1)
	assert.Contains(t, told[0], "test:p2 Opmerking:")

	schema.Close()
	_, err = sink.Commit(ctx, source.Checkpoint{Marks: []string{"m2"}}, func(add func(result.Completion) error) error {
		return add(completion("p3"))
	})
	require.ErrorIs(t, err, intake.ErrRenderFault)
	rows, err := store.List(ctx, outbox.Filter{})
	require.NoError(t, err)
	assert.Len(t, rows, 2, "p3 is neither queued nor rejected")
	seen, err := sink.Seen(ctx, "m2")
	require.NoError(t, err)
	assert.False(t, seen, "the mark did not move, so the next poll reads p3 again")
}

// leaseRefuser is a Leaser whose store fails while down is set and which
// otherwise finds the lease held by another daemon.
type leaseRefuser struct {
	outbox.Leaser
	down atomic.Bool
}

func (l *leaseRefuser) AcquireLease(context.Context, string, string, time.Duration, time.Time) (bool, error) {
	if l.down.Load() {
		return false, errors.New("outbox store unreachable")
	}
	return false, nil
}

// TestFailuresAcrossLeaseAndReload: ticks whose poll lease the store could
// not give count as failed polls; once the store answers that another
// daemon holds the lease, the connection is that daemon's and the count
// ends (else this daemon's /readyz stayed 503 for good). A reload's new
// runner carries on the count of the runner before it.
func TestFailuresAcrossLeaseAndReload(t *testing.T) {
	t.Parallel()
	yearly, err := cron.ParseStandard("@yearly")
	require.NoError(t, err)
	leaser := &leaseRefuser{}
	leaser.down.Store(true)
	src := &fakeSource{wake: make(chan func(), 1)}
	r := intake.NewRunner([]intake.Job{{Name: "lms", Source: src, Schedule: yearly}},
		intake.RunnerOptions{Logger: quiet, Clock: clock.System{}, Leaser: leaser, Owner: "daemon-a"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	waitUntil(t, func() bool { return r.Statuses()[0].Failures == 1 }) // the tick at start
	require.True(t, r.Trigger("lms"))
	waitUntil(t, func() bool { return r.Statuses()[0].Failures == 2 })
	st := r.Statuses()[0]
	assert.Equal(t, "outbox store unreachable", st.LastError)
	assert.Zero(t, src.polls.Load(), "no poll without the lease")

	// A reload: the new runner starts from the old one's count.
	next := intake.NewRunner([]intake.Job{{Name: "lms", Source: src, Schedule: yearly}, {Name: "new", Source: src, Schedule: yearly}},
		intake.RunnerOptions{Logger: quiet, Clock: clock.System{}, Leaser: leaser, Owner: "daemon-a"})
	next.CarryFailures(r)
	carried := next.Statuses()
	assert.Equal(t, 2, carried[0].Failures)
	assert.Equal(t, st.FailingSince, carried[0].FailingSince)
	assert.Equal(t, st.LastError, carried[0].LastError)
	assert.Zero(t, carried[1].Failures, "a connection the old runner did not have")

	leaser.down.Store(false)
	require.True(t, r.Trigger("lms"))
	waitUntil(t, func() bool { return r.Statuses()[0].Skipped == 1 })
	st = r.Statuses()[0]
	assert.Zero(t, st.Failures)
	assert.True(t, st.FailingSince.IsZero())
	assert.Empty(t, st.LastError)
	cancel()
	wg.Wait()
}
