package intake

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Job is one LMS connection to poll.
type Job struct {
	Name   string
	Source source.Source
	// Watcher, when set, is the source's own watch for new input (declared
	// by its adapter, source.Built.Watcher): it runs beside the schedule
	// and wakes the job.
	Watcher  source.Watcher
	Sink     source.Sink
	Schedule cron.Schedule
	// Polled, when set, is called after each poll that was not cut short by
	// shutdown, with how long it took and its error (nil when it succeeded),
	// for metrics. It must be quick.
	Polled func(connection string, took time.Duration, err error)
	// Problems, when set, is called with each report of input the source
	// could not use (source.Sink's ReportProblems), for metrics. It must be quick.
	Problems func(connection string, p source.Problems)
}

// Status is what the operator sees of a job.
type Status struct {
	Name      string
	Running   bool
	LastStart time.Time
	LastEnd   time.Time
	LastError string
	// LastSummary is what the last poll that committed anything or met
	// bad input did, and LastActive when that poll ended: a rescan that
	// found nothing new leaves both as they were. Zero until such a poll.
	LastSummary source.Summary
	LastActive  time.Time
	// Problems adds up the input the source could not use (bad rows
	// skipped, files set aside) since the daemon started, Last being the
	// latest report; ProblemAt is when it came. Zero until one came.
	Problems  source.Problems
	ProblemAt time.Time
	NextRun   time.Time
	Polls     int
	// Failures counts the polls in a row that ended in an error (a poll
	// lease the store could not give counts too), FailingSince being when
	// the first of them started; 0 and zero after a poll without one.
	Failures     int
	FailingSince time.Time
	// Skipped counts ticks left to another daemon holding the lease.
	Skipped int
}

// Runner polls each job on its schedule, when its source's watcher wakes
// it, and once at start. Polls of one job never overlap; a wake-up during a
// poll runs one more poll after it.
//
// With a Leaser (a store shared by several daemons), each poll first takes
// the connection's lease, renews it while the poll runs and releases it
// after, so one daemon at a time polls a connection. The others skip that
// tick; when a daemon dies, another takes over at its next tick, within one
// poll interval.
type Runner struct {
	jobs     []*jobState
	log      *slog.Logger
	clock    clock.Clock
	leaser   outbox.Leaser
	owner    string
	leaseTTL time.Duration
}

// RunnerOptions configure a Runner; zero values mean the defaults.
type RunnerOptions struct {
	Logger *slog.Logger
	Clock  clock.Clock
	// Leaser, when set, makes polls of a connection exclusive across daemons.
	Leaser outbox.Leaser
	// Owner names this daemon in leases (required with a Leaser).
	Owner string
	// LeaseTTL is how long a poll's lease lasts between renewals (30s).
	LeaseTTL time.Duration
}

type jobState struct {
	Job
	wake chan struct{}

	mu     sync.Mutex
	status Status
}

// NewRunner returns a runner for jobs.
func NewRunner(jobs []Job, opts RunnerOptions) *Runner {
	r := &Runner{log: opts.Logger, clock: opts.Clock, leaser: opts.Leaser, owner: opts.Owner, leaseTTL: opts.LeaseTTL}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.clock == nil {
		r.clock = clock.System{}
	}
	if r.leaseTTL <= 0 {
		r.leaseTTL = 30 * time.Second
	}
	for _, j := range jobs {
		r.jobs = append(r.jobs, &jobState{Job: j, wake: make(chan struct{}, 1), status: Status{Name: j.Name}})
	}
	return r
}

// Run polls until ctx ends, then waits for running polls to return.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, j := range r.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, j)
		}()
		if w := j.Watcher; w != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.Watch(ctx, j.trigger); err != nil && ctx.Err() == nil {
					r.log.Error("watch stopped; the schedule still polls", "connection", j.Name, "error", err)
				}
			}()
		}
	}
	wg.Wait()
}

// Trigger asks for a poll of the named job as soon as possible. It reports
// whether the job exists.
func (r *Runner) Trigger(name string) bool {
	for _, j := range r.jobs {
		if j.Name == name {
			j.trigger()
			return true
		}
	}
	return false
}

// CarryFailures takes over from the runner before it (the configuration
// before a reload) the run of failed polls of each job of the same name, so
// /readyz and the dashboard do not forget, nor since when, an LMS
// connection that keeps failing across a reload. Call it before Run.
func (r *Runner) CarryFailures(from *Runner) {
	before := map[string]Status{}
	for _, st := range from.Statuses() {
		before[st.Name] = st
	}
	for _, j := range r.jobs {
		if st, ok := before[j.Name]; ok && st.Failures > 0 {
			j.mu.Lock()
			j.status.Failures, j.status.FailingSince, j.status.LastError = st.Failures, st.FailingSince, st.LastError
			j.mu.Unlock()
		}
	}
}

// Statuses returns each job's status, in configuration order.
func (r *Runner) Statuses() []Status {
	out := make([]Status, 0, len(r.jobs))
	for _, j := range r.jobs {
		j.mu.Lock()
		out = append(out, j.status)
		j.mu.Unlock()
	}
	return out
}

func (j *jobState) trigger() {
	select {
	case j.wake <- struct{}{}:
	default: // a poll is already asked for
	}
}

// loop polls j at start, at each time its schedule names on the runner's
// clock, and when woken.
func (r *Runner) loop(ctx context.Context, j *jobState) {
	j.trigger() // poll once at start
	for {
		now := r.clock.Now()
		next := j.Schedule.Next(now)
		j.mu.Lock()
		j.status.NextRun = next
		j.mu.Unlock()
		timer := r.clock.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-j.wake:
		case <-timer.Chan():
		}
		timer.Stop()
		r.poll(ctx, j)
	}
}

func (r *Runner) poll(ctx context.Context, j *jobState) {
	if r.leaser != nil {
		release, ok := r.lease(ctx, j)
		if !ok {
			return
		}
		defer release()
	}
	start := r.clock.Now()
	j.mu.Lock()
	j.status.Running, j.status.LastStart = true, start
	j.mu.Unlock()

	counting := &countingSink{Sink: j.Sink, report: func(p source.Problems) {
		if j.Problems != nil {
			j.Problems(j.Name, p)
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		j.status.Problems, j.status.ProblemAt = j.status.Problems.Add(p), r.clock.Now()
	}}
	err := j.Source.Poll(ctx, counting)

	end := r.clock.Now()
	if j.Polled != nil && ctx.Err() == nil {
		j.Polled(j.Name, end.Sub(start), err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status.Running, j.status.LastEnd = false, end
	j.status.Polls++
	if counting.sum.Total() > 0 || counting.problems {
		j.status.LastSummary, j.status.LastActive = counting.sum, end
	}
	switch {
	case err == nil:
		if j.status.Failures > 0 {
			r.log.Info("poll succeeded again", "connection", j.Name, "failed_polls", j.status.Failures,
				"failing_since", j.status.FailingSince)
		}
		j.status.cleared()
	case !errors.Is(err, context.Canceled):
		j.status.LastError = err.Error()
		j.status.failed(start)
		r.log.Error("poll failed; the next poll starts again from the last committed position",
			"connection", j.Name, "error", err, "failed_polls", j.status.Failures)
	}
}

// cleared ends a run of failed polls.
func (s *Status) cleared() {
	s.Failures, s.FailingSince, s.LastError = 0, time.Time{}, ""
}

// failed counts a failed poll that started at start.
func (s *Status) failed(start time.Time) {
	if s.Failures == 0 {
		s.FailingSince = start
	}
	s.Failures++
}

// lease takes the job's poll lease and keeps renewing it until the
// returned release is called. ok is false when another daemon holds it or
// the store could not be asked; the tick is then skipped.
func (r *Runner) lease(ctx context.Context, j *jobState) (release func(), ok bool) {
	name := "poll:" + j.Name
	held, err := r.leaser.AcquireLease(ctx, name, r.owner, r.leaseTTL, r.clock.Now())
	if err != nil {
		r.log.Error("cannot take the poll lease; skipping this poll", "connection", j.Name, "error", err)
		j.mu.Lock()
		j.status.LastError = err.Error()
		j.status.failed(r.clock.Now())
		j.mu.Unlock()
		return nil, false
	}
	if !held {
		r.log.Debug("another daemon is polling this connection", "connection", j.Name)
		j.mu.Lock()
		j.status.Skipped++
		// Its polls are that daemon's now, and the store answered: failures
		// counted here (the lease it could not give) are over.
		j.status.cleared()
		j.mu.Unlock()
		return nil, false
	}
	renewCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := r.clock.NewTicker(r.leaseTTL / 3)
		defer ticker.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-ticker.Chan():
				if held, err := r.leaser.AcquireLease(renewCtx, name, r.owner, r.leaseTTL, r.clock.Now()); err != nil || !held {
					// The poll goes on: its commits are idempotent, so a
					// lost lease costs at most duplicate reading.
					r.log.Warn("could not renew the poll lease", "connection", j.Name, "held", held, "error", err)
				}
			}
		}
	}()
	return func() {
		stop()
		<-done
		// Released with a fresh context: the poll's may be cancelled at shutdown.
		relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.leaser.ReleaseLease(relCtx, name, r.owner); err != nil {
			r.log.Warn("could not release the poll lease; it expires by itself", "connection", j.Name, "error", err)
		}
	}, true
}

// countingSink is the job's sink for one poll: it adds up what the poll
// committed, and passes the source's reports of bad input on to report.
// Everything else is the job's sink's.
type countingSink struct {
	source.Sink
	sum      source.Summary
	report   func(source.Problems)
	problems bool // the poll reported bad input
}

// ReportProblems records a report of input the source could not use.
func (c *countingSink) ReportProblems(p source.Problems) {
	c.problems = true
	c.report(p)
}

func (c *countingSink) Commit(ctx context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	s, err := c.Sink.Commit(ctx, cp, fill)
	c.sum = c.sum.Add(s)
	return s, err
}
